"""Two sweeps at once on one tracking store and one index folder do not corrupt each other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from .servers import Fault, FaultScript, fault_server

pytestmark = pytest.mark.slow

LLMOPS = str(Path(sys.executable).parent / "llmops")
SWEEP = """\
name: twin
experiment: twin-@NAME@
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@"}
options: {index_dir: "@INDEX@"}
base:
  llm: {provider: openai, model: fake, base_url: "@URL@", max_tokens: 16, max_retries: 0,
        timeout_s: 10, max_concurrency: 2}
grid:
  retriever.k: [1, 2]
  chunking.chunk_size: [200, 400]
"""


def test_the_same_sweep_twice_at_once(write_sweep, tracking_uri, tmp_path):
    script = FaultScript(then=Fault(delay_s=0.1))
    with fault_server(script) as url:
        path = write_sweep(SWEEP.replace("@URL@", url).replace("@NAME@", tmp_path.name))
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
        command = [LLMOPS, "sweep", "--no-progress", "--no-cache", str(path)]
        processes = [
            subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()

    experiment = mlflow.get_experiment_by_name(f"twin-{tmp_path.name}")
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2  # neither took the other's live run for an interrupted one
    for parent in parents:
        assert parent.info.status == "FINISHED"
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(children) == 4
        assert all(c.info.status == "FINISHED" and c.data.metrics["errors"] == 0 for c in children)
        assert len({c.data.tags["llmops.config_hash"] for c in children}) == 4
    # Two chunkings: built once between them (the index lock), reused everywhere else.
    built = sum(p.data.metrics["indexes_built"] for p in parents)
    assert built == 2
    assert len(script.requests) == 2 * 4 * 3
