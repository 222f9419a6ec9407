"""Benchmark: the quick-start sweep, then the same sweep again with the answer cache.

The second run must make no model call and log identical metrics; its time is reported as a
ratio to the first, measured back to back in one process. The project's own quick-start files
are used in place, with a fresh tracking store, index folder and cache in a temporary folder.

    .venv/bin/python bench/rerun_unchanged.py --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default="experiments/quickstart.yaml")
    parser.add_argument("--repeats", type=int, default=1, help="fresh first-and-second pairs")
    args = parser.parse_args()

    from llmops_mlflow.sweep import run_sweep

    os.chdir(REPO)  # the sweep file's paths are relative to the project
    pairs = []
    for repeat in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
        uri, cache = f"sqlite:///{work / 'mlflow.db'}", work / "cache"
        index = REPO / ".llmops" / f"bench-index-{work.name}"
        sweep_file = _with_index(REPO / args.sweep, index, work)
        try:
            first_s, first = _timed(run_sweep, sweep_file, tracking_uri=uri, cache_dir=cache)
            second_s, second = _timed(run_sweep, sweep_file, tracking_uri=uri, cache_dir=cache)
        finally:
            shutil.rmtree(index, ignore_errors=True)
            sweep_file.unlink(missing_ok=True)
        identical = all(
            a.metrics == b.metrics for a, b in zip(first.configs, second.configs, strict=True)
        )
        pairs.append((first_s, second_s, first.model_calls, second.model_calls, identical))
        print(
            f"repeat {repeat + 1}: first {first_s:.1f} s, second {second_s:.1f} s", file=sys.stderr
        )
    print(
        json.dumps(
            {
                "sweep": args.sweep,
                "configs": len(first.configs),
                "first_run_s_median": round(statistics.median(p[0] for p in pairs), 1),
                "second_run_s_median": round(statistics.median(p[1] for p in pairs), 1),
                "time_ratio_second_to_first": round(
                    statistics.median(p[1] / p[0] for p in pairs), 3
                ),
                "model_calls_first": pairs[-1][2],
                "model_calls_second": pairs[-1][3],
                "metrics_identical": all(p[4] for p in pairs),
            }
        )
    )
    return 0


def _with_index(source: Path, index: Path, work: Path) -> Path:
    """The sweep file with its own index folder (kept inside the project, as required)."""
    import yaml

    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    spec.setdefault("options", {})["index_dir"] = str(index)
    for key in ("corpus", "questions"):
        spec["dataset"][key] = str((REPO / spec["dataset"][key]).resolve())
    # Beside the original, so that its prompt names resolve to experiments/prompts/.
    target = source.with_name(f".bench-{work.name}.yaml")
    target.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return target


def _timed(action, *args, **kwargs):
    started = time.perf_counter()
    result = action(*args, **kwargs)
    return time.perf_counter() - started, result


if __name__ == "__main__":
    sys.exit(main())
