"""Per-sample scorers behind one registry; a sample that cannot be scored says why."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmops_mlflow.chain import Answer
from llmops_mlflow.datasets import Question
from llmops_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from llmops_mlflow.detector import HallucinationDetector


@dataclass(frozen=True)
class Sample:
    """A question and what the chain made of it (`answer` is None when the call failed)."""

    question: Question
    answer: Answer | None
    error: str | None = None


@dataclass(frozen=True)
class Score:
    """A value in [0, 1], or None with the reason it could not be computed."""

    value: float | None
    reason: str = ""

    @property
    def scored(self) -> bool:
        return self.value is not None


Scorer = Callable[[Sequence[Sample]], list[Score]]


def _unscorable_reason(sample: Sample) -> str | None:
    if sample.answer is None:
        return f"no answer: {sample.error or 'the chain failed'}"
    return None


def recall_at_k(samples: Sequence[Sample]) -> list[Score]:
    """Share of a question's gold documents among the retrieved ones."""
    return [_retrieval(s, _recall) for s in samples]


def reciprocal_rank(samples: Sequence[Sample]) -> list[Score]:
    """1 / rank of the first retrieved gold document (0 when none was retrieved)."""
    return [_retrieval(s, _rr) for s in samples]


def hit_rate(samples: Sequence[Sample]) -> list[Score]:
    """1 when any gold document was retrieved."""
    return [_retrieval(s, lambda gold, got: float(bool(gold & set(got)))) for s in samples]


def _retrieval(sample: Sample, measure: Callable[[set[str], tuple[str, ...]], float]) -> Score:
    if reason := _unscorable_reason(sample):
        return Score(None, reason)
    gold = set(sample.question.gold_doc_ids or ())
    if not gold:
        return Score(None, "question has no gold_doc_ids")
    return Score(measure(gold, sample.answer.sources))


def _recall(gold: set[str], got: tuple[str, ...]) -> float:
    return len(gold & set(got)) / len(gold)


def _rr(gold: set[str], got: tuple[str, ...]) -> float:
    return next((1 / rank for rank, doc in enumerate(got, 1) if doc in gold), 0.0)


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _normal_tokens(text: str) -> list[str]:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return _ARTICLES.sub(" ", text).split()


def answer_f1(samples: Sequence[Sample]) -> list[Score]:
    """SQuAD-style token F1 between the answer and the reference answer."""
    return [_with_reference(s, _f1) for s in samples]


def _f1(answer: str, reference: str) -> float:
    got, want = _normal_tokens(answer), _normal_tokens(reference)
    common = sum((Counter(got) & Counter(want)).values())
    if not got or not want or not common:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def answer_similarity(samples: Sequence[Sample]) -> list[Score]:
    """Cosine similarity of answer and reference under the local MiniLM embedder.

    The same embedder is used whatever the config retrieves with, so scores compare
    across configs.
    """
    from llmops_mlflow.embeddings import local_embedder

    pairs = [(i, s) for i, s in enumerate(samples) if _reference_problem(s) is None]
    scores = [Score(None, _reference_problem(s) or "") for s in samples]
    if pairs:
        embedder = local_embedder()
        answers = np.array(embedder.embed_documents([s.answer.answer for _, s in pairs]))
        refs = np.array(embedder.embed_documents([s.question.reference_answer for _, s in pairs]))
        for (i, _), value in zip(pairs, (answers * refs).sum(axis=1), strict=True):
            scores[i] = Score(float(np.clip(value, 0.0, 1.0)))
    return scores


def _reference_problem(sample: Sample) -> str | None:
    if reason := _unscorable_reason(sample):
        return reason
    if not sample.question.reference_answer:
        return "question has no reference_answer"
    return None


def _with_reference(sample: Sample, measure: Callable[[str, str], float]) -> Score:
    if reason := _reference_problem(sample):
        return Score(None, reason)
    return Score(measure(sample.answer.answer, sample.question.reference_answer))


def hallucination_scores(
    samples: Sequence[Sample], detector: HallucinationDetector
) -> dict[str, list[Score]]:
    """The offline detector's verdict per sample: `hallucination_rate` (1 when the answer is
    flagged as unsupported by its contexts, else 0) and `groundedness` (1 - its score)."""
    flags, grounded = [], []
    for sample in samples:
        if reason := _unscorable_reason(sample):
            flags.append(Score(None, reason))
            grounded.append(Score(None, reason))
            continue
        answer = sample.answer
        found = detector.detect(list(answer.contexts), answer.answer, sample.question.question)
        flags.append(Score(float(found.hallucinated), found.reason))
        grounded.append(Score(1.0 - found.score, found.reason))
    return {"hallucination_rate": flags, "groundedness": grounded}


SCORERS: dict[str, Scorer] = {
    "recall_at_k": recall_at_k,
    "mrr": reciprocal_rank,
    "hit_rate": hit_rate,
    "answer_similarity": answer_similarity,
    "answer_f1": answer_f1,
}


def get_scorer(name: str) -> Scorer:
    """The scorer registered under `name`."""
    try:
        return SCORERS[name]
    except KeyError as err:
        raise ConfigError(f"unknown scorer {name!r}; choose from {sorted(SCORERS)}") from err


def score_all(samples: Sequence[Sample], names: Sequence[str]) -> dict[str, list[Score]]:
    """Run each named scorer over all samples."""
    return {name: get_scorer(name)(samples) for name in names}
