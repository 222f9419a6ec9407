"""RagasJudge against the real local model (plumbing) and a fault-injecting endpoint."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from llmops_mlflow.budget import count_tokens
from llmops_mlflow.cache import ResultCache
from llmops_mlflow.chain import Answer
from llmops_mlflow.config import JUDGE_METRICS, JudgeConfig, Price
from llmops_mlflow.datasets import Question
from llmops_mlflow.judge import RagasJudge, estimate_judge, failure_reason
from llmops_mlflow.scoring import Sample, Score
from tests.servers import LLAMA_ALIAS, Fault, FaultScript, fault_server, llama_server

CONTEXTS = (
    "Green tea is brewed at 80 degrees Celsius for two minutes.",
    "Keep tea leaves in an airtight tin away from light.",
)
RECALL_2_OF_3 = {
    "classifications": [
        {"statement": "Green tea is brewed at 80 degrees.", "reason": "in [1]", "attributed": 1},
        {"statement": "It is brewed for two minutes.", "reason": "in [1]", "attributed": 1},
        {"statement": "It is sweetened with honey.", "reason": "absent", "attributed": 0},
    ]
}


def _sample(
    answer: str | None = "Green tea is brewed at 80 degrees Celsius.", contexts: int = 2, **question
) -> Sample:
    fields = {"reference_answer": "Green tea is brewed at 80 degrees Celsius."} | question
    q = Question("t1", "At what temperature is green tea brewed?", **fields)
    if answer is None:
        return Sample(q, None, error="ReadTimeout: the chain timed out")
    ids = ("c1", "c2")[:contexts]
    return Sample(q, Answer(answer, CONTEXTS[:contexts], ("tea",) * contexts, ids, 30, 9, 5.0, 1.0))


def _completion(content: object) -> str:
    """A whole chat-completion body whose message is `content` as JSON."""
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": "judge",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(content)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
    )


def _judge(url: str, metrics: list[str], cache: ResultCache | None = None, **extra) -> RagasJudge:
    config = JudgeConfig(model="judge", base_url=url, metrics=metrics, **extra)
    return RagasJudge(config, cache=cache)


def _recall_script(**kwargs) -> FaultScript:
    return FaultScript(answer=json.dumps(RECALL_2_OF_3), **kwargs)


# The real local model: the plumbing holds whatever the 135M model writes. It rarely writes
# the JSON ragas expects, so without parse retries each metric costs one call (~10 s each).


@pytest.fixture(scope="module")
def real_run() -> Iterator[tuple[dict[str, list[Score]], RagasJudge]]:
    with llama_server() as url:
        config = JudgeConfig(
            model=LLAMA_ALIAS, base_url=url, max_tokens=96, max_retries=0, max_concurrency=1
        )
        judge = RagasJudge(config)
        yield judge.score([_sample(contexts=1), _sample(answer=None)]), judge


@pytest.mark.slow
def test_real_model_gives_every_sample_a_score_or_a_reason_per_metric(real_run):
    scores, _ = real_run
    assert list(scores) == list(JUDGE_METRICS)
    for column in scores.values():
        assert len(column) == 2
        for score in column:
            assert (score.value is not None and 0.0 <= score.value <= 1.0) or (
                score.value is None and score.reason
            )


@pytest.mark.slow
def test_real_model_judge_tokens_are_counted(real_run):
    _, judge = real_run
    assert judge.usage.prompt_tokens > 0
    assert judge.usage.completion_tokens > 0
    assert judge.usage.calls >= len(JUDGE_METRICS)


# Canned judge answers give exact scores: each metric's replies (one per judge call) and the
# score they give.
CANNED = [
    pytest.param("context_recall", [RECALL_2_OF_3], 2 / 3, id="recall-2-of-3-attributed"),
    pytest.param(
        "context_precision",
        [{"reason": "useful", "verdict": 1}, {"reason": "off topic", "verdict": 0}],
        1.0,  # ragas adds 1e-10 to its denominator
        id="precision-useful-context-first",
    ),
    pytest.param(
        "faithfulness",
        [
            {"statements": ["Tea is brewed at 80 C.", "Tea is brewed by monks."]},
            {
                "statements": [
                    {"statement": "Tea is brewed at 80 C.", "reason": "in [1]", "verdict": 1},
                    {"statement": "Tea is brewed by monks.", "reason": "absent", "verdict": 0},
                ]
            },
        ],
        0.5,
        id="faithfulness-1-of-2-supported",
    ),
    pytest.param(
        "response_relevancy",
        [{"question": _sample().question.question, "noncommittal": 0}] * 3,
        1.0,  # the local MiniLM embeds the same question to the same unit vector
        id="relevancy-question-regenerated-exactly",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "replies", "expected"), CANNED)
def test_canned_judge_answers_give_exact_scores(metric, replies, expected):
    script = FaultScript(faults=[Fault(body=_completion(reply)) for reply in replies])
    with fault_server(script) as url:
        scores = _judge(url, [metric]).score([_sample()])
    assert scores[metric][0].value == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize(("metric", "replies", "expected"), CANNED)
def test_dry_run_estimate_matches_the_prompt_tokens_sent(metric, replies, expected):
    sample = _sample()
    script = FaultScript(faults=[Fault(body=_completion(reply)) for reply in replies])
    with fault_server(script) as url:
        _judge(url, [metric]).score([sample])
    sent = sum(
        count_tokens(" ".join(m["content"] for m in request["messages"]))
        for request in script.requests
    )
    own = count_tokens(" ".join([sample.question.question, sample.answer.answer, *CONTEXTS]))
    config = JudgeConfig(model="judge", base_url="http://127.0.0.1:9/v1", metrics=[metric])
    estimate = estimate_judge(config, samples=1, k=len(CONTEXTS), sample_tokens=own)
    assert estimate.calls == len(script.requests)
    assert estimate.prompt_tokens == pytest.approx(sent, rel=0.15)


@pytest.mark.slow
def test_nan_from_ragas_is_unscorable_with_a_reason():
    script = FaultScript(answer=json.dumps({"statements": []}))
    with fault_server(script) as url:
        score = _judge(url, ["faithfulness"]).score([_sample()])["faithfulness"][0]
    assert score.value is None
    assert score.reason.startswith("ragas returned NaN")


@pytest.mark.slow
def test_stated_price_gives_the_judge_cost():
    with fault_server(_recall_script()) as url:
        price = Price(input_per_million=1.0, output_per_million=2.0)
        judge = _judge(url, ["context_recall"], price=price)
        judge.score([_sample()])
    assert judge.usage.cost_usd == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6, rel=1e-12)


# Faults: each becomes a result, never NaN and never a zero.


@pytest.mark.slow
def test_retry_after_is_honoured_and_the_sample_scored():
    script = _recall_script(faults=[Fault(status=429, retry_after="2")])
    with fault_server(script) as url:
        score = _judge(url, ["context_recall"]).score([_sample()])["context_recall"][0]
    assert score.value == pytest.approx(2 / 3)
    assert script.times[1] - script.times[0] >= 1.95


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(status=500), r"InternalServerError: Error code: 500", id="http-500"),
        pytest.param(Fault(body="{not json"), r"after 3 attempts.*JSONDecodeError", id="bad-json"),
        pytest.param(Fault(drop=True), r"APIConnectionError", id="dropped-connection"),
        pytest.param(
            Fault(body=_completion({"verdict": "maybe"})),
            r"after 3 attempts.*ValidationError",
            id="unparseable-judge-output",
        ),
    ],
)
def test_persistent_fault_is_unscorable_with_the_error_named(fault, expected):
    script = _recall_script(then=fault)
    with fault_server(script) as url:
        score = _judge(url, ["context_recall"], http_retries=1).score([_sample()])
    assert score["context_recall"][0].value is None
    assert re.search(expected, score["context_recall"][0].reason)


@pytest.mark.slow
def test_timeout_is_unscorable_with_the_error_named():
    script = _recall_script(then=Fault(delay_s=1.5))
    with fault_server(script) as url:
        judge = _judge(url, ["context_recall"], timeout_s=0.3, http_retries=0)
        score = judge.score([_sample()])["context_recall"][0]
    assert score.value is None
    assert "APITimeoutError" in score.reason


# Samples that cannot be judged make no call.


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sample", "metric", "reason"),
    [
        pytest.param(
            _sample(answer=None), "faithfulness", "no answer: ReadTimeout", id="no-answer"
        ),
        pytest.param(
            _sample(reference_answer=None),
            "context_recall",
            "question has no reference_answer",
            id="recall-without-reference",
        ),
        pytest.param(
            _sample(reference_answer=None),
            "context_precision",
            "question has no reference_answer",
            id="precision-without-reference",
        ),
    ],
)
def test_unjudgeable_sample_is_skipped_with_a_reason(sample, metric, reason):
    script = _recall_script()
    with fault_server(script) as url:
        score = _judge(url, [metric]).score([sample])[metric][0]
    assert score == Score(None, score.reason)
    assert score.reason.startswith(reason)
    assert script.requests == []


# Concurrency and the cache.


@pytest.mark.slow
def test_judge_calls_run_concurrently():
    script = _recall_script(then=Fault(delay_s=1.0))
    with fault_server(script) as url:
        judge = _judge(url, ["context_recall"], max_concurrency=8)
        start = time.monotonic()
        judge.score([_sample(answer=f"Answer {i}.") for i in range(8)])
        elapsed = time.monotonic() - start
    assert elapsed < 4.0  # one after another it would take 8 s


@pytest.mark.slow
def test_unchanged_rerun_with_a_cache_makes_no_judge_call(tmp_path):
    script = _recall_script()
    cache = ResultCache(tmp_path / "cache")
    with fault_server(script) as url:
        first = _judge(url, ["context_recall"], cache).score([_sample()])
        calls = len(script.requests)
        second = _judge(url, ["context_recall"], cache).score([_sample()])
    assert calls == 1
    assert len(script.requests) == calls
    assert second == first


@pytest.mark.slow
def test_failures_are_not_cached(tmp_path):
    script = _recall_script(faults=[Fault(status=400)])
    cache = ResultCache(tmp_path / "cache")
    with fault_server(script) as url:
        first = _judge(url, ["context_recall"], cache).score([_sample()])
        second = _judge(url, ["context_recall"], cache).score([_sample()])
    assert first["context_recall"][0].value is None
    assert second["context_recall"][0].value == pytest.approx(2 / 3)


# Configuration and error messages.


def test_unknown_metric_is_rejected_with_the_valid_names():
    with pytest.raises(ValidationError, match=r"unknown judge metric\(s\) \['faithfulnes'\]"):
        JudgeConfig(model="judge", metrics=["faithfulnes"])


def test_failure_reason_names_the_innermost_error_class():
    try:
        try:
            raise ValueError("judge said nothing")
        except ValueError as err:
            raise RuntimeError("wrapped") from err
    except RuntimeError as outer:
        reason = failure_reason(outer)
    assert reason == ("judge call failed: RuntimeError: wrapped (ValueError: judge said nothing)")
