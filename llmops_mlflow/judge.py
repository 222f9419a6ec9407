"""Judge-based RAGAS scoring: ragas 0.4 collections metrics behind one concurrent scorer.

A judge call that fails (unparseable output after the bounded retries, a timeout, an HTTP
error after the client's own retries) gives an unscorable Score that names the error, never
a NaN or a zero. Judge tokens are counted from the responses, apart from the chain's tokens.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops_mlflow.budget import Budget, BudgetExceeded, count_tokens
from llmops_mlflow.cache import ResultCache, cache_key
from llmops_mlflow.config import JudgeConfig
from llmops_mlflow.cost import Pricing, _catalogue
from llmops_mlflow.scoring import Sample, Score

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from openai import AsyncOpenAI
    from ragas.metrics.collections import BaseMetric

logger = logging.getLogger(__name__)

EMBEDDER_IDENTITY = "local:all-MiniLM-L6-v2"
_REASON_CHARS = 240


@dataclass(frozen=True)
class JudgeUsage:
    """What one `score()` call's judgments took; cost is None when the price is unknown.

    Tokens and cost count every judgment, including those replayed from the cache (at what
    they took when first made), so an unchanged rerun reports the same figures; `calls` is
    the judge calls actually made this time.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class _Metric:
    """How to build one ragas metric and what it needs from a sample."""

    build: Callable[[Any, Any], BaseMetric]
    inputs: Callable[[Sample], dict[str, Any]]
    calls: Callable[[int], int]  # judge calls per sample, given k retrieved contexts
    prompt_tokens: int  # the ragas prompt's own tokens per call, before the sample's text
    needs_reference: bool = False
    needs_contexts: bool = True
    needs_embeddings: bool = False


def _build_faithfulness(llm: Any, _embeddings: Any) -> BaseMetric:
    from ragas.metrics.collections import Faithfulness

    return Faithfulness(llm=llm)


def _build_relevancy(llm: Any, embeddings: Any) -> BaseMetric:
    from ragas.metrics.collections import AnswerRelevancy

    return AnswerRelevancy(llm=llm, embeddings=embeddings)


def _build_precision(llm: Any, _embeddings: Any) -> BaseMetric:
    from ragas.metrics.collections import ContextPrecisionWithReference

    return ContextPrecisionWithReference(llm=llm)


def _build_recall(llm: Any, _embeddings: Any) -> BaseMetric:
    from ragas.metrics.collections import ContextRecall

    return ContextRecall(llm=llm)


def _question_answer_contexts(sample: Sample) -> dict[str, Any]:
    return {
        "user_input": sample.question.question,
        "response": sample.answer.answer,
        "retrieved_contexts": list(sample.answer.contexts),
    }


def _question_answer(sample: Sample) -> dict[str, Any]:
    return {"user_input": sample.question.question, "response": sample.answer.answer}


def _question_reference_contexts(sample: Sample) -> dict[str, Any]:
    return {
        "user_input": sample.question.question,
        "reference": sample.question.reference_answer,
        "retrieved_contexts": list(sample.answer.contexts),
    }


METRICS: dict[str, _Metric] = {
    # Statements, then verdicts.
    "faithfulness": _Metric(_build_faithfulness, _question_answer_contexts, lambda _k: 2, 650),
    # One generated question per `strictness` (3 by default).
    "response_relevancy": _Metric(
        _build_relevancy,
        _question_answer,
        lambda _k: 3,
        610,
        needs_contexts=False,
        needs_embeddings=True,
    ),
    # One verdict per retrieved context.
    "context_precision": _Metric(
        _build_precision, _question_reference_contexts, lambda k: k, 1060, needs_reference=True
    ),
    "context_recall": _Metric(
        _build_recall, _question_reference_contexts, lambda _k: 1, 1580, needs_reference=True
    ),
}
# The prompt_tokens above: what each metric's ragas 0.4 prompts (instructions, examples and
# instructor's output schema) send per call, less the sample's own text, in cl100k_base tokens,
# as captured on the wire. Faithfulness averages its two prompts: statements (480) and
# verdicts on them (about 820).


@dataclass(frozen=True)
class JudgeEstimate:
    """What judging some samples would take: calls, tokens and the cost upper bound."""

    calls: int
    prompt_tokens: float
    completion_tokens_max: int
    cost_usd: float | None


def estimate_judge(
    config: JudgeConfig, samples: int, k: int, sample_tokens: float
) -> JudgeEstimate:
    """Calls per metric times samples; each call carries the ragas prompt and the sample's
    question, answer and contexts (`sample_tokens`), and writes at most max_tokens."""
    per_sample = {name: METRICS[name].calls(k) for name in config.metrics}
    calls = samples * sum(per_sample.values())
    prompt = samples * sum(
        n * (METRICS[name].prompt_tokens + sample_tokens) for name, n in per_sample.items()
    )
    completion = calls * config.max_tokens
    cost = judge_pricing(config).cost(round(prompt), completion)
    return JudgeEstimate(calls, prompt, completion, cost)


def judge_pricing(config: JudgeConfig) -> Pricing:
    """The judge's price: stated in the config, else the catalogue for OpenAI, else unknown."""
    if config.price is not None:
        return Pricing(
            config.price.input_per_million / 1e6, config.price.output_per_million / 1e6, "config"
        )
    if config.base_url is None:
        found = _catalogue(config.model, provider=config.provider)
        if found is not None:
            return found
    logger.warning(
        "no price known for judge model %r at %s; judge cost is not reported (set judge.price "
        "to state one)",
        config.model,
        config.base_url or config.provider,
    )
    return Pricing(None, None, "unknown")


class _UsageCounter:
    """Adds up `response.usage` of judge responses (one event loop, so no lock)."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.calls = 0

    def add(self, prompt_tokens: int, completion_tokens: int, calls: int = 1) -> None:
        self.calls += calls
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def add_usage(self, usage: Any) -> None:
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        completion = getattr(usage, "completion_tokens", 0) or 0
        self.add(prompt, completion)


# The counter of the judgment (one metric on one sample) the current task is making.
_JUDGMENT: contextvars.ContextVar[_UsageCounter | None] = contextvars.ContextVar(
    "judgment", default=None
)


def _gate_and_count(
    client: AsyncOpenAI,
    gate: asyncio.Semaphore,
    calls: _UsageCounter,
    spend: _Spend,
) -> None:
    """Wrap the client's `chat.completions.create` (before instructor patches it).

    The gate bounds the HTTP calls in flight, not the metric tasks, so a task's parsing and
    prompt building overlap other tasks' calls. Each call reserves its worst cost against the
    budget first, and its usage is counted for the run and for the judgment that made it.
    """
    create = client.chat.completions.create

    async def gated(*args: Any, **kwargs: Any) -> Any:
        reserved = spend.reserve(kwargs.get("messages") or [])
        response = None
        try:
            async with gate:
                response = await create(*args, **kwargs)
        finally:
            usage = getattr(response, "usage", None)
            spend.settle(reserved, usage)
        calls.add_usage(usage)
        if (judgment := _JUDGMENT.get()) is not None:
            judgment.add_usage(usage)
        return response

    client.chat.completions.create = gated  # type: ignore[method-assign]


class _Spend:
    """Judge calls against the sweep's budget: the worst case is held until the call settles."""

    def __init__(self, budget: Budget | None, pricing: Pricing, max_tokens: int) -> None:
        self._budget = budget
        self._pricing = pricing
        self._max_tokens = max_tokens

    def reserve(self, messages: Sequence[Any]) -> float:
        if self._budget is None or self._budget.cap_usd is None:
            return 0.0
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        worst = self._pricing.cost(count_tokens(text) + 64, self._max_tokens) or 0.0
        self._budget.reserve(worst)
        return worst

    def settle(self, reserved: float, usage: Any) -> None:
        if self._budget is None or self._budget.cap_usd is None:
            return
        prompt = getattr(usage, "prompt_tokens", 0) or 0
        completion = getattr(usage, "completion_tokens", 0) or 0
        self._budget.settle(reserved, self._pricing.cost(prompt, completion) or 0.0)


def ragas_embedding(embedder: Embeddings) -> Any:
    """A LangChain `Embeddings` as the ragas 0.4 `BaseRagasEmbedding` that metrics require."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class _LangChainEmbedding(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return embedder.embed_query(text)

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return await asyncio.to_thread(embedder.embed_query, text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return embedder.embed_documents(list(texts))

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return await asyncio.to_thread(embedder.embed_documents, list(texts))

    return _LangChainEmbedding()


def failure_reason(err: BaseException) -> str:
    """The error's class and a short message (and its cause's), with the attempts if retried."""
    chain = [err]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    attempts = getattr(err, "n_attempts", None)
    where = f" (after {attempts} attempts)" if attempts and attempts > 1 else ""
    named = [e for e in chain if type(e).__name__ != "InstructorRetryException"] or chain
    reason = f"judge call failed{where}: {_describe(named[0])}"
    if len(named) > 1:
        reason += f" ({_describe(named[-1])})"
    return reason


def _describe(err: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(err, ValidationError) and err.errors():
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = f"{err.error_count()} error(s) in {err.title}, first: {where}: {first['msg']}"
    else:
        message = " ".join(str(err).split())
    if len(message) > _REASON_CHARS:
        message = message[: _REASON_CHARS - 3] + "..."
    return f"{type(err).__name__}: {message}"


def _precheck(sample: Sample, metric: _Metric) -> str | None:
    """Why a sample cannot be judged by `metric` without calling the judge, if it cannot."""
    if sample.answer is None:
        return f"no answer: {sample.error or 'the chain failed'}"
    if not sample.answer.answer.strip():
        return "the answer is empty"
    if metric.needs_contexts and not sample.answer.contexts:
        return "no retrieved contexts"
    if metric.needs_reference and not sample.question.reference_answer:
        return "question has no reference_answer"
    return None


def _to_score(value: Any) -> Score:
    if not isinstance(value, int | float):
        return Score(None, f"ragas returned {value!r} instead of a number")
    if math.isnan(value):
        return Score(None, "ragas returned NaN: the judge gave no statements or verdicts to rate")
    return Score(min(max(float(value), 0.0), 1.0))


class RagasJudge:
    """Score samples with RAGAS metrics through an OpenAI-compatible judge.

    Example:
        >>> judge = RagasJudge(JudgeConfig(model="gpt-4o-mini"), cache=ResultCache(folder))
        >>> scores = judge.score(samples)
        >>> scores["faithfulness"][0].value, judge.usage.total_tokens
    """

    def __init__(
        self, config: JudgeConfig, cache: ResultCache | None = None, budget: Budget | None = None
    ) -> None:
        self.config = config
        self.cache = cache or ResultCache(None)
        self.budget = budget
        self.pricing = judge_pricing(config)
        if budget is not None:
            budget.check_priced(f"judge {config.model}", self.pricing)
        self.usage = JudgeUsage(cost_usd=self.pricing.cost(0, 0))
        self.stopped: BudgetExceeded | None = None
        self._judged = _UsageCounter()

    def score(
        self, samples: Sequence[Sample], on_sample: Callable[[int], None] | None = None
    ) -> dict[str, list[Score]]:
        """One Score per sample per metric; `on_sample(i)` is called when sample i is done.

        Runs its own event loop, so call it from synchronous code.
        """
        calls, judged = _UsageCounter(), _UsageCounter()
        self.stopped = None
        scores = asyncio.run(self._score_all(samples, calls, judged, on_sample))
        cost = self.pricing.cost(judged.prompt_tokens, judged.completion_tokens)
        self.usage = JudgeUsage(judged.prompt_tokens, judged.completion_tokens, calls.calls, cost)
        for name, column in scores.items():
            _warn_unscorable(name, column)
        return scores

    async def _score_all(
        self,
        samples: Sequence[Sample],
        calls: _UsageCounter,
        judged: _UsageCounter,
        on_sample: Callable[[int], None] | None,
    ) -> dict[str, list[Score]]:
        self._judged = judged
        client = self._client(asyncio.Semaphore(self.config.max_concurrency), calls)
        try:
            metrics = self._metrics(client)
            # Twice the call limit in tasks keeps the gate busy while samples finish in order.
            gate = asyncio.Semaphore(2 * self.config.max_concurrency)
            rows = await asyncio.gather(
                *(self._score_sample(i, s, metrics, gate, on_sample) for i, s in enumerate(samples))
            )
        finally:
            await client.close()
        return {name: [row[name] for row in rows] for name in self.config.metrics}

    def _client(self, gate: asyncio.Semaphore, calls: _UsageCounter) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        from llmops_mlflow.secrets import api_key

        client = AsyncOpenAI(
            base_url=self.config.base_url,
            api_key=api_key(self.config.api_key_env, self.config.base_url),
            max_retries=self.config.http_retries,
            timeout=self.config.timeout_s,
        )
        spend = _Spend(self.budget, self.pricing, self.config.max_tokens)
        _gate_and_count(client, gate, calls, spend)
        return client

    def _metrics(self, client: AsyncOpenAI) -> dict[str, BaseMetric]:
        from ragas.llms import llm_factory

        llm = llm_factory(
            self.config.model,
            client=client,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            max_retries=self.config.max_retries,
        )
        embeddings = None
        if any(METRICS[name].needs_embeddings for name in self.config.metrics):
            from llmops_mlflow.embeddings import local_embedder

            embeddings = ragas_embedding(local_embedder())
        return {name: METRICS[name].build(llm, embeddings) for name in self.config.metrics}

    async def _score_sample(
        self,
        index: int,
        sample: Sample,
        metrics: dict[str, BaseMetric],
        gate: asyncio.Semaphore,
        on_sample: Callable[[int], None] | None,
    ) -> dict[str, Score]:
        names = list(metrics)
        results = await asyncio.gather(
            *(self._score_one(name, sample, metrics[name], gate) for name in names)
        )
        if on_sample is not None:
            on_sample(index)
        return dict(zip(names, results, strict=True))

    async def _score_one(
        self, name: str, sample: Sample, metric: BaseMetric, gate: asyncio.Semaphore
    ) -> Score:
        spec = METRICS[name]
        if reason := _precheck(sample, spec):
            return Score(None, reason)
        inputs = spec.inputs(sample)
        key = self._key(name, inputs)
        if (hit := self.cache.get(key)) is not None:
            self._judged.add(hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0), 0)
            return Score(hit["value"])
        if self.stopped is not None:
            return Score(None, f"not judged: {self.stopped}")
        judgment = _UsageCounter()
        _JUDGMENT.set(judgment)  # this task's own context: other judgments do not see it
        async with gate:
            score = await self._ascore(metric, inputs)
        self._judged.add(judgment.prompt_tokens, judgment.completion_tokens, 0)
        if score.scored:
            tokens = {"prompt_tokens": judgment.prompt_tokens}
            tokens["completion_tokens"] = judgment.completion_tokens
            self.cache.put(key, "judge", {"value": score.value, **tokens})
        return score

    async def _ascore(self, metric: BaseMetric, inputs: dict[str, Any]) -> Score:
        """Run one ragas metric; any failure becomes an unscorable Score naming the error."""
        try:
            result = await metric.ascore(**inputs)
        except Exception as err:  # any judge or parse failure is a result, not a crash
            if (over := _budget_error(err)) is not None:
                self.stopped = self.stopped or over
                return Score(None, f"not judged: {over}")
            logger.debug("judge call for %s failed", metric.name, exc_info=True)
            return Score(None, failure_reason(err))
        return _to_score(result.value)

    def _key(self, name: str, inputs: dict[str, Any]) -> str:
        from ragas import __version__ as ragas_version

        judge = self.config.model_dump(
            mode="json", include={"provider", "model", "base_url", "temperature", "max_tokens"}
        )
        parts = {"metric": name, "inputs": inputs, "judge": judge, "ragas": ragas_version}
        if METRICS[name].needs_embeddings:
            parts["embeddings"] = EMBEDDER_IDENTITY
        return cache_key("judge", parts)


def _budget_error(err: BaseException) -> BudgetExceeded | None:
    """The budget stop behind an error, however deep ragas or instructor wrapped it."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, BudgetExceeded):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _warn_unscorable(name: str, scores: list[Score]) -> None:
    failed = [s for s in scores if not s.scored]
    if failed:
        logger.warning(
            "%s: %d of %d samples unscorable (first: %s)",
            name,
            len(failed),
            len(scores),
            failed[0].reason,
        )
