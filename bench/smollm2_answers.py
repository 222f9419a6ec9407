"""Real answers of the embedded model, for checking the detector on what a sweep produces.

SmolLM2-135M (the default local model, greedy decoding) answers clapnq test-half questions
from their passages with the project's `concise` prompt. The answers are written outside git
(`bench/data/`); their hand labels live in `bench/labels/smollm2_clapnq.jsonl`, keyed by
question id and the sha256 of the answer, so a label never attaches to another answer.

    .venv/bin/python bench/smollm2_answers.py --answerable 40 --unanswerable 30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

import intrinsic_set  # noqa: E402

from llmops_mlflow.chain import number_contexts  # noqa: E402

logger = logging.getLogger("smollm2_answers")

CLAPNQ = REPO_ROOT / ".." / "shared" / "datasets" / "clapnq_dev" / "qa.jsonl"
ANSWERS = BENCH_DIR / "data" / "smollm2_clapnq_answers.jsonl"
LABELS = BENCH_DIR / "labels" / "smollm2_clapnq.jsonl"
PROMPT = REPO_ROOT / "experiments" / "prompts" / "concise.txt"
MAX_TOKENS = 64


def answer_digest(answer: str) -> str:
    return hashlib.sha256(answer.encode("utf-8")).hexdigest()[:16]


def chosen_questions(answerable: int, unanswerable: int) -> list[dict[str, Any]]:
    """The first questions of each kind in the test half, in file order."""
    rows = [json.loads(line) for line in CLAPNQ.read_text(encoding="utf-8").splitlines()]
    test = [r for r in rows if intrinsic_set.split_of(r["id"]) == "test" and r["contexts"]]
    return [r for r in test if r["answerable"]][:answerable] + [
        r for r in test if not r["answerable"]
    ][:unanswerable]


def generate(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from langchain_core.messages import HumanMessage

    from llmops_mlflow.config import LLMConfig
    from llmops_mlflow.llms import get_chat_model

    llm = get_chat_model(LLMConfig(max_tokens=MAX_TOKENS, temperature=0.0, seed=0))
    template = PROMPT.read_text(encoding="utf-8")
    rows = []
    for n, row in enumerate(questions, 1):
        prompt = template.format(question=row["question"], context=number_contexts(row["contexts"]))
        answer = llm.invoke([HumanMessage(prompt)]).content.strip()
        rows.append(
            {
                "id": row["id"],
                "question": row["question"],
                "answerable": row["answerable"],
                "contexts": row["contexts"],
                "answer": answer,
                "answer_sha256": answer_digest(answer),
            }
        )
        logger.info("%d/%d %s", n, len(questions), row["id"])
    return rows


def labelled(answers: Path = ANSWERS, labels: Path = LABELS) -> list[dict[str, Any]]:
    """Generated answers that carry a hand label for that very answer text."""
    if not (answers.is_file() and labels.is_file()):
        return []
    by_key = {}
    for line in labels.read_text(encoding="utf-8").splitlines():
        label = json.loads(line)
        by_key[(label["id"], label["answer_sha256"])] = label
    rows, stale = [], 0
    for line in answers.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label = by_key.get((row["id"], row["answer_sha256"]))
        if label is None:
            stale += 1
            continue
        rows.append({**row, "hallucinated": label["hallucinated"]})
    if stale:
        logger.warning("%d generated answers differ from the labelled ones; left out", stale)
    return rows


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answerable", type=int, default=40)
    parser.add_argument("--unanswerable", type=int, default=30)
    parser.add_argument("--output", type=Path, default=ANSWERS)
    args = parser.parse_args(argv)
    if not CLAPNQ.is_file():
        logger.warning("skipped: %s is absent", CLAPNQ.resolve())
        return 0
    rows = generate(chosen_questions(args.answerable, args.unanswerable))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    logger.info("wrote %d answers to %s", len(rows), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
