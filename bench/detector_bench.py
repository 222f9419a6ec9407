"""Benchmark the offline hallucination detector against two shallow baselines.

    python bench/detector_bench.py --limit 100          # quick look, full mode
    python bench/detector_bench.py --mode fast          # lexical signals only
    python bench/detector_bench.py --fit                # refit the coefficients on train halves

Reads ../shared/datasets (halueval_qa labelled answers, the intrinsic set built from
clapnq_dev by bench/intrinsic_set.py, and clapnq's human-written reference answers, all
faithful; with --split test also the local model's own answers labelled by hand, once
bench/smollm2_answers.py has generated them) and prints a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

import intrinsic_set  # noqa: E402
import smollm2_answers  # noqa: E402

from llmops_mlflow import detector as det  # noqa: E402

logger = logging.getLogger("detector_bench")

DATASETS = REPO_ROOT / ".." / "shared" / "datasets"
HALUEVAL = DATASETS / "halueval_qa" / "labelled_answers.jsonl"
CLAPNQ = DATASETS / "clapnq_dev" / "qa.jsonl"
FITTED_ON = ("halueval_qa", "intrinsic")


@dataclass(frozen=True)
class Scored:
    """One labelled answer with the detector's signals, score and latency."""

    id: str
    dataset: str
    hallucinated: bool
    answer: str
    contexts: list[str]
    signals: dict[str, float]
    score: float
    flagged: bool
    seconds: float


@dataclass(frozen=True)
class Metrics:
    balanced_accuracy: float
    precision: float
    recall: float


def load_halueval(split: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in HALUEVAL.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if split == "all" or intrinsic_set.split_of(r["question_id"]) == split]


def load_intrinsic(seed: int, split: str) -> list[dict[str, Any]]:
    return [asdict(row) for row in intrinsic_set.build(CLAPNQ, seed, None, split)]


def load_references(split: str) -> list[dict[str, Any]]:
    """Every human-written clapnq reference answer on its gold passage: all faithful.

    They merge and rephrase passage sentences, so they measure false alarms on answers
    that are right but not copied.
    """
    rows = [json.loads(line) for line in CLAPNQ.read_text(encoding="utf-8").splitlines()]
    return [
        {
            "id": f"{row['id']}-ref{n}",
            "question": row["question"],
            "contexts": row["contexts"],
            "answer": answer,
            "hallucinated": False,
        }
        for row in rows
        if row["answerable"] and (split == "all" or intrinsic_set.split_of(row["id"]) == split)
        for n, answer in enumerate(row["reference_answers"])
    ]


def sample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    """A seeded sample that keeps rows of one question together, so caches behave as in use."""
    if not limit or limit >= len(rows):
        return rows
    return sorted(random.Random(seed).sample(rows, limit), key=lambda r: r["id"])


def score_rows(
    detector: det.HallucinationDetector, rows: list[dict[str, Any]], dataset: str
) -> list[Scored]:
    scored = []
    for row in rows:
        start = time.perf_counter()
        detection = detector.detect(row["contexts"], row["answer"], row.get("question"))
        seconds = time.perf_counter() - start
        scored.append(
            Scored(
                row["id"],
                dataset,
                bool(row["hallucinated"]),
                row["answer"],
                row["contexts"],
                detection.signals,
                detection.score,
                detection.hallucinated,
                seconds,
            )
        )
    return scored


def metrics(labels: Sequence[bool], predicted: Sequence[bool]) -> Metrics:
    tp = sum(p and y for p, y in zip(predicted, labels, strict=True))
    fp = sum(p and not y for p, y in zip(predicted, labels, strict=True))
    tn = sum(not p and not y for p, y in zip(predicted, labels, strict=True))
    positives, negatives = sum(labels), len(labels) - sum(labels)
    recall = tp / positives if positives else 0.0
    specificity = tn / negatives if negatives else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return Metrics((recall + specificity) / 2, precision, recall)


def best_threshold(labels: Sequence[bool], values: Sequence[float]) -> Metrics:
    """The baseline at its best threshold and direction on these very rows (flattering it)."""
    best = Metrics(0.0, 0.0, 0.0)
    for cut in sorted(set(values)):
        for sign in (1, -1):
            predicted = [sign * v >= sign * cut for v in values]
            found = metrics(labels, predicted)
            if found.balanced_accuracy > best.balanced_accuracy:
                best = found
    return best


def absent_word_share(contexts: list[str], answer: str) -> float:
    vocabulary = {w.lower() for w in det.WORD_RE.findall(" ".join(contexts))}
    words = [w.lower() for w in det.WORD_RE.findall(answer)]
    return sum(w not in vocabulary for w in words) / len(words) if words else 0.0


def table(results: dict[str, list[Scored]], mode: str) -> str:
    lines = [
        "| set | rows | method | balanced acc. | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, scored in results.items():
        labels = [s.hallucinated for s in scored]
        if not any(labels):  # faithful only: the share flagged is the false-alarm rate
            flagged = sum(s.flagged for s in scored) / len(scored)
            lines.append(
                f"| {dataset} | {len(scored)} | detector ({mode}), false alarms "
                f"| | {flagged:.3f} flagged | |"
            )
            continue
        methods: dict[str, Metrics] = {
            f"detector ({mode})": metrics(labels, [s.flagged for s in scored]),
            "answer length, best threshold*": best_threshold(
                labels, [len(s.answer.split()) for s in scored]
            ),
            "absent-word share, best threshold*": best_threshold(
                labels, [absent_word_share(s.contexts, s.answer) for s in scored]
            ),
        }
        for name, found in methods.items():
            lines.append(
                f"| {dataset} | {len(scored)} | {name} | {found.balanced_accuracy:.3f} "
                f"| {found.precision:.3f} | {found.recall:.3f} |"
            )
    lines.append("")
    lines.append(
        "\\* baselines get their best threshold and direction on the same rows, "
        "which flatters them; the detector's threshold is fixed in advance."
    )
    return "\n".join(lines)


def throughput(results: dict[str, list[Scored]]) -> str:
    lines = ["| set | answers/s (1 / median latency) | answers/s (overall) |", "|---|---|---|"]
    for dataset, scored in results.items():
        seconds = [s.seconds for s in scored]
        lines.append(
            f"| {dataset} | {1 / statistics.median(seconds):.2f} "
            f"| {len(seconds) / sum(seconds):.2f} |"
        )
    return "\n".join(lines)


def per_perturbation(scored: list[Scored], rows: list[dict[str, Any]]) -> str:
    kinds = {r["id"]: r["perturbation"] for r in rows}
    lines = ["| perturbation | rows | flagged |", "|---|---|---|"]
    for kind in ("faithful", *intrinsic_set.PERTURBATIONS):
        chosen = [s for s in scored if kinds.get(s.id) == kind]
        if chosen:
            share = sum(s.flagged for s in chosen) / len(chosen)
            lines.append(f"| {kind} | {len(chosen)} | {share:.3f} |")
    return "\n".join(lines)


def fit(scored: list[Scored], features: Sequence[str]) -> det.Combiner:
    """A class-balanced logistic regression on standardised signals, as a Combiner."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[s.signals[f] for f in features] for s in scored])
    y = [s.hallucinated for s in scored]
    means, scales = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    model.fit((x - means) / scales, y)
    fitted = det.Combiner(
        features=tuple(features),
        means=tuple(round(float(v), 4) for v in means),
        scales=tuple(round(float(v), 4) for v in scales),
        coefficients=tuple(round(float(v), 4) for v in model.coef_[0]),
        intercept=round(float(model.intercept_[0]), 4),
        threshold=0.5,
    )
    return dataclasses.replace(fitted, threshold=_best_cut(fitted, scored))


def _best_cut(combiner: det.Combiner, scored: list[Scored]) -> float:
    labels = [s.hallucinated for s in scored]
    probabilities = [combiner.score(s.signals) for s in scored]
    cuts = sorted({round(p, 2) for p in probabilities} | {0.5})
    return max(
        cuts,
        key=lambda c: (
            metrics(labels, [p >= c for p in probabilities]).balanced_accuracy,
            -abs(c - 0.5),
        ),
    )


def univariate(scored: list[Scored]) -> str:
    """AUC of each raw signal on each set, to see which carry information where."""
    from sklearn.metrics import roc_auc_score

    lines = []
    for name in scored[0].signals:
        aucs = []
        for dataset in sorted({s.dataset for s in scored}):
            chosen = [s for s in scored if s.dataset == dataset]
            if len({s.hallucinated for s in chosen}) < 2:
                continue
            labels = [s.hallucinated for s in chosen]
            auc = roc_auc_score(labels, [s.signals[name] for s in chosen])
            aucs.append(f"{dataset}={auc:.3f}")
        lines.append(f"{name:20s} " + "  ".join(aucs))
    return "\n".join(lines)


def read_dump(path: Path) -> list[Scored]:
    try:
        return [Scored(**json.loads(line)) for line in path.read_text("utf-8").splitlines()]
    except (OSError, ValueError, TypeError) as err:
        raise SystemExit(f"cannot read scored rows from {path}: {err}") from err


def run_fit(path: Path, features: str) -> str:
    """Fit a combiner on scored rows written by --dump (use --split train for them)."""
    # The combiners were fitted on these two sets; clapnq_refs is reported, not fitted on.
    scored = [s for s in read_dump(path) if s.dataset in FITTED_ON]
    logger.info("univariate AUCs of %d rows:\n%s", len(scored), univariate(scored))
    names = features.split(",") if features else list(scored[0].signals)
    return repr(fit(scored, names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="rows per set (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the set")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the model")
    parser.add_argument("--mode", choices=det.MODES, default="full", help="detector mode")
    parser.add_argument(
        "--split",
        choices=("test", "train", "all"),
        default="test",
        help="question half to report on; coefficients were fitted on train",
    )
    parser.add_argument(
        "--fit",
        type=Path,
        default=None,
        metavar="DUMP",
        help="fit a combiner on rows written by --dump --split train; print it",
    )
    parser.add_argument("--features", default="", help="comma-separated signals for --fit")
    parser.add_argument("--dump", type=Path, default=None, help="write scored rows as JSONL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parse_args(argv)
    if not (HALUEVAL.is_file() and CLAPNQ.is_file()):
        logger.warning("skipped: the shared datasets are absent at %s", DATASETS.resolve())
        return 0
    if args.fit:
        print(run_fit(args.fit, args.features))
        return 0
    detector = det.HallucinationDetector(mode=args.mode, n_threads=args.threads)
    halueval = sample(load_halueval(args.split), args.limit, args.seed)
    intrinsic_rows = sample(load_intrinsic(args.seed, args.split), args.limit, args.seed)
    references = sample(load_references(args.split), args.limit, args.seed)
    logger.info(
        "scoring %d halueval_qa, %d intrinsic and %d clapnq reference rows (%s half, %s mode)",
        len(halueval),
        len(intrinsic_rows),
        len(references),
        args.split,
        args.mode,
    )
    results = {
        "halueval_qa": score_rows(detector, halueval, "halueval_qa"),
        "intrinsic": score_rows(detector, intrinsic_rows, "intrinsic"),
        "clapnq_refs": score_rows(detector, references, "clapnq_refs"),
    }
    if args.split == "test" and (generated := smollm2_answers.labelled()):
        # Real answers of the local model, labelled by hand (bench/smollm2_answers.py).
        results["smollm2_answers"] = score_rows(detector, generated, "smollm2_answers")
    if args.dump:
        args.dump.parent.mkdir(parents=True, exist_ok=True)
        args.dump.write_text(
            "".join(json.dumps(asdict(s)) + "\n" for rows in results.values() for s in rows),
            encoding="utf-8",
        )
    print(table(results, args.mode))
    print()
    print(throughput(results))
    print()
    print(per_perturbation(results["intrinsic"], intrinsic_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
