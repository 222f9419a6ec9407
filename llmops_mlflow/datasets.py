"""Evaluation questions: loading, validation and a digest that pins the exact rows."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_mlflow.errors import DataError
from llmops_mlflow.jsonl import read_jsonl

FIELDS = ("id", "question", "reference_answer", "gold_doc_ids")


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
    _check_keys(row, path, number)
    for key in ("id", "question"):
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(
                f"{path}:{number}: field {key!r} is missing or empty (got {value!r}); "
                "each row needs a non-empty 'id' and 'question'"
            )
        if not _is_id(value):
            raise DataError(
                f"{path}:{number}: field {key!r} must be a string or an integer, got "
                f"{type(value).__name__} {value!r}"
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
    if not isinstance(value, list) or not all(_is_id(v) and str(v).strip() for v in value):
        raise DataError(
            f"{path}:{number}: 'gold_doc_ids' must be a list of doc ids (strings), got {value!r}"
        )
    return tuple(str(v) for v in value)


def _is_id(value: Any) -> bool:
    # bool is an int to Python, but `true` as an id is a mistake, not the id "True".
    return isinstance(value, str | int) and not isinstance(value, bool)


def _check_keys(row: dict[str, Any], path: Path, number: int) -> None:
    """Extra keys (a category, a source) are kept out of the way; a misspelt one is an error,
    since it would silently turn off the metric that needs the field."""
    for key in row:
        if key in FIELDS:
            continue
        close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.8)
        if close:
            raise DataError(
                f"{path}:{number}: unknown field {key!r}; did you mean {close[0]!r}? "
                f"(fields: {', '.join(FIELDS)})"
            )


def _digest(questions: tuple[Question, ...]) -> str:
    rows = [[q.id, q.question, q.reference_answer, q.gold_doc_ids] for q in questions]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def check_gold_ids(dataset: EvalDataset, doc_ids: Collection[str], corpus: Path) -> None:
    """Every gold id must name a corpus document; a stray one makes recall silently 0."""
    known = set(doc_ids)
    for question in dataset.questions:
        unknown = [d for d in question.gold_doc_ids or () if d not in known]
        if not unknown:
            continue
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(
            f"{dataset.path}: question {question.id!r} names gold doc id(s) {unknown} that the "
            f"corpus {str(corpus)!r} does not hold; {hint}doc ids are file paths without the "
            "suffix, or the 'doc_id' of a JSONL corpus"
        )
