"""Evaluation questions: required fields, duplicate ids, optional fields, digests."""

from __future__ import annotations

import pytest

from llmops_mlflow.datasets import load_questions
from llmops_mlflow.errors import DataError

from .conftest import REPO


def _file(tmp_path, *lines: str):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_optional_fields_and_limit(tmp_path):
    path = _file(
        tmp_path,
        '{"id": 1, "question": "a?", "reference_answer": "A", "gold_doc_ids": ["d1", 2]}',
        '{"id": "two", "question": "b?"}',
        '{"id": "three", "question": "c?"}',
    )
    dataset = load_questions(path, limit=2)
    assert [(q.id, q.reference_answer, q.gold_doc_ids) for q in dataset.questions] == [
        ("1", "A", ("d1", "2")),
        ("two", None, None),
    ]
    assert dataset.has_gold_ids and dataset.has_references


def test_digest_pins_the_rows(tmp_path):
    first = load_questions(_file(tmp_path, '{"id": 1, "question": "a?"}')).digest
    second = load_questions(_file(tmp_path, '{"id": 1, "question": "b?"}')).digest
    assert first != second
    assert load_questions(_file(tmp_path, '{"id": 1, "question": "a?"}')).digest == first


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        pytest.param(['{"question": "a?"}'], r"q.jsonl:1: field 'id' is missing", id="no-id"),
        pytest.param(
            ['{"id": 1, "question": ""}'],
            r"field 'question' is missing or empty",
            id="empty-question",
        ),
        pytest.param(
            ['{"id": 1, "question": "a"}', '{"id": 1, "question": "b"}'],
            r"q.jsonl:2: duplicate id '1' \(first on line 1\)",
            id="duplicate",
        ),
        pytest.param(
            ['{"id": 1, "question": "a", "gold_doc_ids": "d1"}'],
            r"'gold_doc_ids' must be a list",
            id="gold-not-list",
        ),
        pytest.param(
            ['{"id": 1, "question": "a", "reference_answer": 5}'],
            r"'reference_answer' must be a string",
            id="reference-not-string",
        ),
        pytest.param([""], r"holds no questions", id="empty"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, lines, match):
    with pytest.raises(DataError, match=match):
        load_questions(_file(tmp_path, *lines))


def test_the_project_dataset_is_complete():
    dataset = load_questions(REPO / "eval_datasets" / "kestrel" / "questions.jsonl")
    corpus = {p.stem for p in (REPO / "eval_datasets" / "kestrel" / "corpus").glob("*.md")}
    assert len(dataset.questions) >= 30
    assert all(q.reference_answer and q.gold_doc_ids for q in dataset.questions)
    assert {d for q in dataset.questions for d in q.gold_doc_ids} <= corpus
