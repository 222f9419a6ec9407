"""Evaluation questions: loading, validation and a digest that pins the exact rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_mlflow.errors import DataError
from llmops_mlflow.jsonl import read_jsonl


@dataclass(frozen=True)
class Question:
    """One evaluation row; reference and gold ids are optional."""

    id: str
    question: str
    reference_answer: str | None = None
    gold_doc_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EvalDataset:
    """The questions of a sweep and the digest of their content."""

    path: Path
    questions: tuple[Question, ...]
    digest: str

    @property
    def has_gold_ids(self) -> bool:
        return any(q.gold_doc_ids for q in self.questions)

    @property
    def has_references(self) -> bool:
        return any(q.reference_answer for q in self.questions)


def load_questions(path: str | Path, limit: int | None = None) -> EvalDataset:
    """Load a questions JSONL file (see docs/datasets.md); `limit` keeps the first N rows."""
    path = Path(path)
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl(path):
        question = _question(row, path, number)
        if question.id in seen:
            raise DataError(
                f"{path}:{number}: duplicate id {question.id!r} (first on line {seen[question.id]})"
            )
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise DataError(f"{path} holds no questions; see docs/datasets.md for the format")
    kept = tuple(questions[:limit] if limit else questions)
    return EvalDataset(path=path, questions=kept, digest=_digest(kept))


def _question(row: dict[str, Any], path: Path, number: int) -> Question:
    for key in ("id", "question"):
        value = row.get(key)
        if not isinstance(value, str | int) or not str(value).strip():
            raise DataError(
                f"{path}:{number}: field {key!r} is missing or empty (got {value!r}); "
                "each row needs a non-empty 'id' and 'question'"
            )
    reference = row.get("reference_answer")
    if reference is not None and not isinstance(reference, str):
        raise DataError(f"{path}:{number}: 'reference_answer' must be a string, got {reference!r}")
    return Question(
        id=str(row["id"]),
        question=str(row["question"]),
        reference_answer=reference or None,
        gold_doc_ids=_gold_ids(row.get("gold_doc_ids"), path, number),
    )


def _gold_ids(value: Any, path: Path, number: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise DataError(f"{path}:{number}: 'gold_doc_ids' must be a list of ids, got {value!r}")
    return tuple(str(v) for v in value)


def _digest(questions: tuple[Question, ...]) -> str:
    rows = [[q.id, q.question, q.reference_answer, q.gold_doc_ids] for q in questions]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
