"""The offline hallucination detector, run with the real packaged SmolLM2 model."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_mlflow.detector import Detection, HallucinationDetector, detect_file, lexical_signals
from llmops_mlflow.errors import ConfigError, DataError

CONTEXT = (
    "Marie Curie was born in Warsaw in 1867. Her husband Pierre Curie was born in Paris in "
    "1859. Marie Curie won the Nobel Prize in Physics in 1903 and the Nobel Prize in "
    "Chemistry in 1911. She died in 1934."
)
QUESTION = "Where and when was Marie Curie born?"
FAITHFUL = "Marie Curie was born in Warsaw in 1867."
LLMOPS = str(Path(sys.executable).parent / "llmops")


@pytest.fixture(scope="module")
def detector() -> HallucinationDetector:
    return HallucinationDetector()


@pytest.fixture(scope="module")
def faithful(detector: HallucinationDetector) -> Detection:
    return detector.detect([CONTEXT], FAITHFUL, QUESTION)


def test_faithful_extractive_answer_is_not_flagged(faithful: Detection) -> None:
    assert not faithful.hallucinated
    assert faithful.reason.startswith("supported")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param("Marie Curie was born in Warsaw in 1859.", id="number-swap"),
        pytest.param("Marie Curie was born in Paris in 1867.", id="name-swap"),
        pytest.param("Marie Curie was not born in Warsaw in 1867.", id="negation"),
        pytest.param("Pierre Curie was born in Warsaw in 1867.", id="subject-swap"),
    ],
)
def test_perturbed_answer_scores_higher_than_faithful(
    detector: HallucinationDetector, faithful: Detection, answer: str
) -> None:
    perturbed = detector.detect([CONTEXT], answer, QUESTION)
    assert perturbed.score > faithful.score + 0.2


def test_inserted_negation_is_flagged(detector: HallucinationDetector) -> None:
    detection = detector.detect([CONTEXT], "Marie Curie was not born in Warsaw in 1867.", QUESTION)
    assert detection.hallucinated
    assert detection.reason == (
        "unsupported: negation differs from the closest context sentence (negation_mismatch=1.00)"
    )


def test_answer_with_invented_facts_is_flagged(detector: HallucinationDetector) -> None:
    detection = detector.detect([CONTEXT], "Marie Curie was born in Vienna in 1872.", QUESTION)
    assert detection.hallucinated
    assert detection.signals["unsupported_numbers"] == 1.0


@pytest.mark.parametrize("answer", ["", "   \n"], ids=["empty", "whitespace"])
def test_empty_answer_is_not_hallucinated(detector: HallucinationDetector, answer: str) -> None:
    assert detector.detect([CONTEXT], answer) == Detection(
        0.0, False, "empty answer: nothing to check", {}
    )


@pytest.mark.parametrize("contexts", [[], ["", "  "]], ids=["no-contexts", "blank-contexts"])
def test_answer_without_contexts_is_hallucinated(
    detector: HallucinationDetector, contexts: list[str]
) -> None:
    assert detector.detect(contexts, FAITHFUL) == Detection(
        1.0, True, "no contexts: nothing supports the answer", {}
    )


def test_contexts_given_as_one_string_is_rejected(detector: HallucinationDetector) -> None:
    with pytest.raises(DataError, match="contexts must be a list of strings, got str"):
        detector.detect(CONTEXT, FAITHFUL)  # type: ignore[arg-type]


def test_row_without_answer_is_rejected(detector: HallucinationDetector) -> None:
    with pytest.raises(DataError, match="row 0 lacks the field 'answer'"):
        detector.detect_many([{"contexts": [CONTEXT]}])


@pytest.mark.parametrize("threshold", [-0.1, 1.5], ids=["below-zero", "above-one"])
def test_threshold_outside_unit_interval_is_rejected(threshold: float) -> None:
    with pytest.raises(ConfigError, match="threshold must be within"):
        HallucinationDetector(threshold=threshold)


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ConfigError, match="mode must be one of full, fast, got 'slow'"):
        HallucinationDetector(mode="slow")  # type: ignore[arg-type]


def test_detect_many_matches_detect(detector: HallucinationDetector, faithful: Detection) -> None:
    rows = [
        {"contexts": [CONTEXT], "answer": FAITHFUL, "question": QUESTION},
        {"contexts": [CONTEXT], "answer": ""},
    ]
    many = detector.detect_many(rows)
    assert [d.hallucinated for d in many] == [False, False]
    assert many[0].score == pytest.approx(faithful.score, abs=1e-6)


def test_detection_is_frozen(faithful: Detection) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        faithful.score = 0.0  # type: ignore[misc]


def test_fast_mode_flags_a_negation_without_the_model() -> None:
    fast = HallucinationDetector(mode="fast")
    detection = fast.detect([CONTEXT], "Marie Curie was not born in Warsaw in 1867.", QUESTION)
    assert detection.hallucinated
    assert "lp_ctx_min" not in detection.signals


@pytest.mark.parametrize(
    ("answer", "signal", "expected"),
    [
        pytest.param(FAITHFUL, "novel_bigrams", 0.0, id="extractive-has-no-novel-pairs"),
        pytest.param(
            "She was born in 1867 in Vienna.", "unsupported_names", 1.0, id="invented-name"
        ),
        pytest.param(
            "Marie Curie was not born in Warsaw.", "negation_mismatch", 1.0, id="inserted-negation"
        ),
        pytest.param(
            "Marie Curie was born in Warsaw in 1911.",
            "misplaced_entities",
            1.0,
            id="number-from-another-sentence",
        ),
    ],
)
def test_lexical_signal(answer: str, signal: str, expected: float) -> None:
    assert lexical_signals([CONTEXT], answer)[signal] == pytest.approx(expected)


# detect_file and `llmops detect`: JSONL in, the same rows out with the verdict added.


def _write_rows(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_detect_file_adds_the_verdict_to_every_row(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "contexts": [CONTEXT], "answer": FAITHFUL, "question": QUESTION},
        {"id": "b", "contexts": [CONTEXT], "answer": "Marie Curie was born in Vienna in 1872."},
    ]
    source = _write_rows(tmp_path / "in.jsonl", rows)
    summary = detect_file(source, tmp_path / "out.jsonl", HallucinationDetector(mode="fast"))
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (summary.rows, summary.flagged, summary.mode) == (2, 1, "fast")
    assert [row["id"] for row in out] == ["a", "b"]
    assert [row["hallucinated"] for row in out] == [False, True]
    assert out[1]["hallucination_score"] > out[0]["hallucination_score"]
    assert out[0]["question"] == QUESTION and out[0]["contexts"] == [CONTEXT]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            {"contexts": [CONTEXT]}, r"in.jsonl:2: missing field\(s\) \['answer'\]", id="no-answer"
        ),
        pytest.param(
            {"answer": "x"}, r"in.jsonl:2: missing field\(s\) \['contexts'\]", id="no-contexts"
        ),
        pytest.param(
            {"contexts": CONTEXT, "answer": "x"},
            "in.jsonl:2: contexts must be a list",
            id="str-contexts",
        ),
        pytest.param(
            {"contexts": [1], "answer": "x"},
            "in.jsonl:2: contexts must hold strings",
            id="int-context",
        ),
        pytest.param(
            {"contexts": [], "answer": 3}, "in.jsonl:2: answer must be a string", id="int-answer"
        ),
    ],
)
def test_bad_row_is_named_and_nothing_is_written(tmp_path: Path, row: dict, message: str) -> None:
    good = {"contexts": [CONTEXT], "answer": FAITHFUL}
    source = _write_rows(tmp_path / "in.jsonl", [good, row])
    with pytest.raises(DataError, match=message):
        detect_file(source, tmp_path / "out.jsonl", HallucinationDetector(mode="fast"))
    assert list(tmp_path.iterdir()) == [source]


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no rows"):
        detect_file(source, tmp_path / "out.jsonl")


def test_llmops_detect_command_from_the_readme(tmp_path: Path) -> None:
    rows = [{"contexts": [CONTEXT], "answer": a} for a in (FAITHFUL, "Lyon is the answer.")]
    _write_rows(tmp_path / "answers.jsonl", rows)
    done = subprocess.run(
        [LLMOPS, "detect", "--input", "answers.jsonl", "--output", "scored.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "1 of 2 answers flagged (mode fast" in done.stdout
    out = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [row["hallucinated"] for row in out] == [False, True]
    assert all(row["hallucination_reason"] for row in out)


def test_llmops_detect_bad_input_exits_2(tmp_path: Path) -> None:
    source = _write_rows(tmp_path / "in.jsonl", [{"answer": "x"}])
    done = subprocess.run(
        [
            LLMOPS,
            "detect",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "in.jsonl:1: missing field(s) ['contexts']" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
