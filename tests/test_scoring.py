"""Scorers: exact values on hand-made samples, and unscorable samples with their reasons."""

from __future__ import annotations

import pytest

from llmops_mlflow.chain import Answer
from llmops_mlflow.datasets import Question
from llmops_mlflow.errors import ConfigError
from llmops_mlflow.scoring import Sample, Score, get_scorer, score_all


def _sample(
    sources=("a", "b", "c"),
    gold=("b",),
    answer="Green tea at 80 degrees.",
    reference="Green tea is brewed at 80 degrees.",
) -> Sample:
    return Sample(
        Question("q", "?", reference, gold),
        Answer(answer, ("ctx",) * len(sources), tuple(sources), tuple(sources), 10, 5, 1.0, 0.1),
    )


FAILED = Sample(Question("q", "?", "ref", ("a",)), None, "TimeoutError: slow")


@pytest.mark.parametrize(
    ("name", "sample", "expected"),
    [
        pytest.param("recall_at_k", _sample(gold=("b", "z")), 0.5, id="recall-half"),
        pytest.param("recall_at_k", _sample(gold=("a", "c")), 1.0, id="recall-all"),
        pytest.param("mrr", _sample(gold=("c",)), 1 / 3, id="mrr-third"),
        pytest.param("mrr", _sample(gold=("z",)), 0.0, id="mrr-miss"),
        pytest.param("hit_rate", _sample(gold=("c", "z")), 1.0, id="hit"),
        pytest.param("hit_rate", _sample(gold=("z",)), 0.0, id="no-hit"),
        pytest.param(
            "answer_f1", _sample(answer="80 degrees", reference="80 degrees"), 1.0, id="f1-exact"
        ),
        pytest.param(
            "answer_f1", _sample(answer="The cat", reference="a dog"), 0.0, id="f1-disjoint"
        ),
        pytest.param(
            "answer_f1",
            _sample(answer="green tea 80", reference="green tea 90"),
            2 / 3,
            id="f1-partial",
        ),
    ],
)
def test_scores(name, sample, expected):
    assert get_scorer(name)([sample])[0] == Score(pytest.approx(expected))


@pytest.mark.parametrize(
    ("name", "sample", "reason"),
    [
        pytest.param("recall_at_k", FAILED, "no answer: TimeoutError: slow", id="failed-call"),
        pytest.param("mrr", _sample(gold=None), "question has no gold_doc_ids", id="no-gold"),
        pytest.param(
            "answer_similarity",
            _sample(reference=None),
            "question has no reference_answer",
            id="no-reference",
        ),
        pytest.param("answer_f1", FAILED, "no answer: TimeoutError: slow", id="f1-failed"),
    ],
)
def test_unscorable_samples_carry_a_reason(name, sample, reason):
    assert get_scorer(name)([sample]) == [Score(None, reason)]


def test_answer_similarity_ranks_a_paraphrase_above_a_wrong_answer():
    right = _sample(answer="They brew green tea at eighty degrees.")
    wrong = _sample(answer="Bike chains are oiled every 300 kilometres.")
    scores = get_scorer("answer_similarity")([right, FAILED, wrong])
    assert scores[1] == Score(None, "no answer: TimeoutError: slow")
    assert scores[0].value > 0.7 > 0.3 > scores[2].value


def test_unknown_scorer_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"unknown scorer 'faith'.*'answer_f1'"):
        score_all([], ["faith"])
