"""Evaluation questions: required fields, duplicate ids, optional fields, digests."""

from __future__ import annotations

import pytest

from llmops_mlflow.datasets import check_gold_ids, load_questions
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
        pytest.param(
            ['{"id": true, "question": "a"}'],
            r"q.jsonl:1: field 'id' must be a string or an integer, got bool True",
            id="id-bool",
        ),
        pytest.param(
            ['{"id": 1.5, "question": "a"}'],
            r"field 'id' must be a string or an integer, got float 1.5",
            id="id-float",
        ),
        pytest.param(
            ['{"id": 1, "question": ["a"]}'],
            r"field 'question' must be a string or an integer, got list",
            id="question-list",
        ),
        pytest.param(
            ['{"id": 1, "question": "a", "gold_doc_ids": [true]}'],
            r"'gold_doc_ids' must be a list of doc ids \(strings\), got \[True\]",
            id="gold-bool",
        ),
        pytest.param(
            ['{"id": 1, "question": "a", "referense_answer": "b"}'],
            r"q.jsonl:1: unknown field 'referense_answer'; did you mean 'reference_answer'\?",
            id="misspelt-field",
        ),
        pytest.param(
            ['{"id": 1, "question": "a"}', '{"id": 2, "question": "b", "gold_doc_id": ["d"]}'],
            r"q.jsonl:2: unknown field 'gold_doc_id'; did you mean 'gold_doc_ids'\?",
            id="misspelt-gold-field",
        ),
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


def test_other_extra_fields_are_ignored(tmp_path):
    dataset = load_questions(_file(tmp_path, '{"id": 1, "question": "a?", "category": "tea"}'))
    assert [q.id for q in dataset.questions] == ["1"]


def test_a_bom_blank_lines_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"id": 1, "question": "a?"}\r\n\r\n{"id": 2, "question": "b?"}\r\n'
    )
    assert [(q.id, q.question) for q in load_questions(path).questions] == [
        ("1", "a?"),
        ("2", "b?"),
    ]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(lambda p: p, r"is a folder; name a \.jsonl file", id="folder"),
        pytest.param(lambda p: p / "nope.jsonl", r"file not found: .*nope\.jsonl", id="missing"),
        pytest.param(lambda p: "/dev/null", r"/dev/null is not a regular file", id="device"),
    ],
)
def test_a_path_that_is_not_a_jsonl_file(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        load_questions(make(tmp_path))


def test_gold_ids_the_corpus_lacks_are_named_with_the_nearest_one(tmp_path):
    path = _file(tmp_path, '{"id": "q1", "question": "a?", "gold_doc_ids": ["tea", "bikez"]}')
    dataset = load_questions(path)
    check_gold_ids(dataset, ["tea", "bikez"], tmp_path / "corpus")
    with pytest.raises(
        DataError,
        match=r"q.jsonl: question 'q1' names gold doc id\(s\) "
        r"\['bikez'\] that the corpus .* does not hold; did you mean 'bikes'\?",
    ):
        check_gold_ids(dataset, ["tea", "bikes", "moon"], tmp_path / "corpus")
