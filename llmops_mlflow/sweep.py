"""Run a sweep: every config over the dataset, scored and logged as MLflow child runs."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from langchain_core.runnables import Runnable
from mlflow.entities import Run

from llmops_mlflow import tracking
from llmops_mlflow.budget import Budget, BudgetExceeded, chunk_stats, count_tokens, estimate_call
from llmops_mlflow.cache import DEFAULT_CACHE_DIR, ResultCache, cache_key
from llmops_mlflow.chain import (
    Answer,
    answer_from_json,
    answer_to_json,
    ask,
    build_chain,
    number_contexts,
)
from llmops_mlflow.compare import paired_comparison, pareto_front, pareto_plot
from llmops_mlflow.config import (
    REFERENCE_SCORERS,
    RETRIEVAL_SCORERS,
    JudgeConfig,
    RagConfig,
    ResolvedConfig,
    Sweep,
    flatten,
    load_sweep,
)
from llmops_mlflow.cost import Pricing, pricing_for
from llmops_mlflow.datasets import EvalDataset, Question, load_questions
from llmops_mlflow.detector import HallucinationDetector
from llmops_mlflow.documents import Corpus, load_corpus
from llmops_mlflow.embeddings import embedding_identity
from llmops_mlflow.index import Index, IndexKey, IndexStore
from llmops_mlflow.judge import RagasJudge, estimate_judge
from llmops_mlflow.llms import get_chat_model, is_deterministic, model_identity
from llmops_mlflow.preflight import check_cache, check_sweep
from llmops_mlflow.prompts import PromptTemplate
from llmops_mlflow.scoring import Sample, Score, hallucination_scores, score_all
from llmops_mlflow.stats import bootstrap_mean, percentile

logger = logging.getLogger(__name__)


Progress = Callable[[str], None]


@dataclass(frozen=True)
class ConfigResult:
    """What one config produced: its run, its metrics and its per-sample rows."""

    name: str
    config_hash: str
    run_id: str
    metrics: dict[str, float | None]
    table: pd.DataFrame
    index_built: bool
    model_calls: int = 0
    cache_hits: int = 0


@dataclass
class SweepResult:
    """The parent run and every config's result, in sweep order."""

    parent_run_id: str
    experiment: str
    tracking_uri: str
    sweep_file: Path
    configs: list[ConfigResult] = field(default_factory=list)
    indexes_built: int = 0
    indexes_reused: int = 0
    spent_usd: float = 0.0
    stopped: str | None = None
    resumed: bool = False
    comparison: pd.DataFrame | None = None
    pareto: pd.DataFrame | None = None

    @property
    def model_calls(self) -> int:
        return sum(c.model_calls for c in self.configs)

    @property
    def cache_hits(self) -> int:
        return sum(c.cache_hits for c in self.configs)


def run_sweep(
    sweep_file: str | Path,
    on_sample: Progress | None = None,
    tracking_uri: str | None = None,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> SweepResult:
    """Run every config of a sweep file and log it to MLflow.

    `cache_dir=None` turns the result cache off; with it on, an unchanged config replays its
    stored answers and makes no model call.

    Example:
        >>> result = run_sweep("experiments/quickstart.yaml")
        >>> result.parent_run_id
    """
    sweep = load_sweep(sweep_file)
    dataset = load_questions(sweep.spec.dataset.questions, sweep.spec.dataset.limit)
    corpus = load_corpus(sweep.spec.dataset.corpus)
    check_sweep(sweep, dataset, corpus)  # before anything is written, as every input error is
    if cache_dir is not None:
        check_cache(cache_dir)
    uri = tracking.configure(tracking_uri)
    store = IndexStore(Path(sweep.spec.options.index_dir))
    logger.info(
        "sweep %s: %d configs x %d questions, corpus of %d documents",
        sweep.spec.name,
        len(sweep.configs),
        len(dataset.questions),
        len(corpus.documents),
    )

    budget = Budget(sweep.spec.budget_usd)
    for resolved in sweep.configs:  # before anything is written, as every input error is
        budget.check_priced(resolved.name, pricing_for(resolved.config.llm))

    tags = _sweep_tags(sweep, dataset, corpus)
    run_name = f"{sweep.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cache = ResultCache(cache_dir)
    detector = _detector(sweep)
    judge = RagasJudge(sweep.spec.judge, cache, budget) if sweep.spec.judge else None
    chosen = sweep.spec.options.scorers
    context = _Context(
        dataset,
        corpus,
        store,
        cache,
        budget,
        tags,
        on_sample,
        detector,
        judge,
        tuple(chosen) if chosen is not None else None,
    )
    resume_id = tracking.find_resumable(sweep.experiment_name, _identity_tags(tags))
    if resume_id:
        logger.info("resuming interrupted sweep run %s", resume_id)
    with tracking.parent_run(sweep.experiment_name, run_name, tags, resume_id) as parent_id:
        result = SweepResult(parent_id, sweep.experiment_name, uri, sweep.path)
        result.resumed = resume_id is not None
        tracking.log_dict(sweep.spec.model_dump(mode="json"), "sweep.yaml")
        earlier = _earlier_children(parent_id) if resume_id else {}
        try:
            for resolved in sweep.configs:
                result.configs.append(_run_or_restore(resolved, context, earlier))
        except BudgetExceeded as err:
            result.stopped = str(err)
            tracking.set_tags({"llmops.stopped": result.stopped})
            logger.warning("sweep stopped: %s", err)
        result.indexes_built, result.indexes_reused = len(store.built), len(store.reused)
        result.spent_usd = budget.spent_usd
        _log_summary(result, sweep.spec.options.primary_metric)
    cache.close()
    return result


@dataclass(frozen=True)
class _Context:
    """What every config of one sweep shares."""

    dataset: EvalDataset
    corpus: Corpus
    store: IndexStore
    cache: ResultCache
    budget: Budget
    tags: dict[str, str]
    on_sample: Progress | None
    detector: HallucinationDetector | None = None
    judge: RagasJudge | None = None
    scorers: tuple[str, ...] | None = None


def _detector(sweep: Sweep) -> HallucinationDetector | None:
    settings = sweep.spec.detector
    if not settings.enabled:
        return None
    return HallucinationDetector(threshold=settings.threshold, mode=settings.mode)


IDENTITY_TAGS = ("llmops.sweep_digest", "llmops.dataset_digest", "llmops.corpus_digest")


def _identity_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags that say two sweep runs did the same work: same file, dataset and corpus."""
    return {key: tags[key] for key in IDENTITY_TAGS}


def _earlier_children(parent_id: str) -> dict[str, Run]:
    """The newest child run per config hash of an interrupted sweep."""
    earlier: dict[str, Run] = {}
    for run in tracking.child_runs(parent_id):
        earlier.setdefault(run.data.tags.get("llmops.config_hash", ""), run)
    return earlier


def _run_or_restore(
    resolved: ResolvedConfig, ctx: _Context, earlier: dict[str, Run]
) -> ConfigResult:
    """A config finished before the interruption is restored from its run, never re-run;
    an interrupted one is redone in its own run (its answered questions come from the cache)."""
    prior = earlier.get(resolved.config_hash)
    if prior is not None and prior.info.status == "FINISHED":
        logger.info("config %s finished in run %s; not re-run", resolved.name, prior.info.run_id)
        if ctx.on_sample:
            for question in ctx.dataset.questions:
                ctx.on_sample(question.id)
        return _restore(resolved, prior)
    return _run_config(resolved, ctx, prior.info.run_id if prior is not None else None)


def _restore(resolved: ResolvedConfig, run: Run) -> ConfigResult:
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    return ConfigResult(
        resolved.name,
        resolved.config_hash,
        run.info.run_id,
        dict(run.data.metrics),
        table,
        index_built=False,
    )


def _sweep_tags(sweep: Sweep, dataset: EvalDataset, corpus: Corpus) -> dict[str, str]:
    return {
        "llmops.sweep": sweep.spec.name,
        "llmops.sweep_file": str(sweep.path),
        "llmops.sweep_digest": sweep.file_digest,
        "llmops.dataset_digest": dataset.digest,
        "llmops.dataset": str(dataset.path),
        "llmops.corpus_digest": corpus.digest,
        "llmops.corpus": str(corpus.source),
    }


def _run_config(
    resolved: ResolvedConfig, ctx: _Context, resume_id: str | None = None
) -> ConfigResult:
    config = resolved.config
    index = ctx.store.get(ctx.corpus, config.chunking, config.embedding)
    template = PromptTemplate(resolved.prompt_path, resolved.prompt_text)
    chain = build_chain(index.store, config.retriever, template, get_chat_model(config.llm))
    pricing = pricing_for(config.llm)
    answerer = Answerer(chain, resolved, index, ctx, pricing)
    tags = {
        **ctx.tags,
        "llmops.config_hash": resolved.config_hash,
        "llmops.index": index.key.collection_name,
        "llmops.index_built": str(index.built).lower(),
    }
    with tracking.child_run(config.name, tags, resume_id) as run_id:
        samples, stopped = _answer_all(answerer, ctx.dataset.questions, config, ctx.on_sample)
        scores = score_all(samples, _scorer_names(ctx.dataset, ctx.scorers))
        if ctx.detector is not None:
            scores |= hallucination_scores(samples, ctx.detector)
        metrics = _metrics(samples, scores, pricing, config.retriever.k)
        if ctx.judge is not None:
            scores, judge_metrics = _judge(ctx.judge, samples, scores)
            metrics |= judge_metrics
            stopped = stopped or ctx.judge.stopped
        table = _table(samples, scores, pricing)
        _log_config(resolved, index, pricing, metrics, table, template)
        # Cache use is a tag, not a metric: a replayed run must log identical metrics.
        tracking.set_tags(
            {"llmops.model_calls": answerer.calls, "llmops.cache_hits": answerer.hits}
        )
        if ctx.judge is not None:
            tracking.set_tags({"llmops.judge_calls": ctx.judge.usage.calls})
        if stopped is not None:
            # The partial results stay logged; the run ends FAILED and says why.
            tracking.set_tags({"llmops.stopped": str(stopped)})
            raise stopped
    logger.info("config %s done: %s", config.name, _brief(metrics))
    return ConfigResult(
        config.name,
        resolved.config_hash,
        run_id,
        metrics,
        table,
        index.built,
        model_calls=answerer.calls,
        cache_hits=answerer.hits,
    )


def _judge(
    judge: RagasJudge, samples: Sequence[Sample], scores: dict[str, list[Score]]
) -> tuple[dict[str, list[Score]], dict[str, float | None]]:
    """The RAGAS metrics of every sample, and what the judge took, apart from the chain."""
    logger.info("judging %d answers with %s", len(samples), judge.config.model)
    judged = judge.score(samples)
    metrics: dict[str, float | None] = {}
    for name, values in judged.items():
        metrics |= _mean_metrics(name, values)
    usage = judge.usage
    metrics |= {
        "judge_tokens": float(usage.total_tokens),
        "judge_tokens_prompt": float(usage.prompt_tokens),
        "judge_tokens_completion": float(usage.completion_tokens),
        "judge_cost_usd": usage.cost_usd,
    }
    return {**scores, **judged}, metrics


def answer_identity(resolved: ResolvedConfig, key: IndexKey) -> dict[str, str]:
    """What a cached answer depends on, besides the question itself.

    The config hash covers prompt text, chunking, embedding, retriever and LLM settings; the
    index digest covers the corpus content; the model identity covers weights and runtime.
    """
    return {
        "config": resolved.config_hash,
        "index": key.digest,
        **model_identity(resolved.config.llm),
    }


def estimate_sweep(
    sweep_file: str | Path, cache_dir: Path | None = DEFAULT_CACHE_DIR
) -> pd.DataFrame:
    """What a sweep would call and spend, per config, without calling or spending anything.

    Answers already in the cache cost nothing. Prompt tokens are the template, the question
    and k chunks of mean length; completion tokens are the max_tokens upper bound.
    """
    sweep = load_sweep(sweep_file)
    dataset = load_questions(sweep.spec.dataset.questions, sweep.spec.dataset.limit)
    corpus = load_corpus(sweep.spec.dataset.corpus)
    check_sweep(sweep, dataset, corpus)
    if cache_dir is not None and cache_dir.exists():
        check_cache(cache_dir)
    cache = ResultCache(cache_dir if cache_dir and cache_dir.exists() else None)
    judge = sweep.spec.judge
    rows = [_estimate_config(resolved, dataset, corpus, cache, judge) for resolved in sweep.configs]
    cache.close()
    return pd.DataFrame(rows)


def _estimate_config(
    resolved: ResolvedConfig,
    dataset: EvalDataset,
    corpus: Corpus,
    cache: ResultCache,
    judge: JudgeConfig | None = None,
) -> dict[str, object]:
    config = resolved.config
    key = IndexKey(corpus.digest, config.chunking, embedding_identity(config.embedding))
    identity = answer_identity(resolved, key)
    stats = chunk_stats(corpus, config.chunking)
    pricing = pricing_for(config.llm)
    to_call = [
        q
        for q in dataset.questions
        if cache.get(cache_key("answer", {**identity, "question": q.question})) is None
    ]
    estimates = [estimate_call(resolved, q.question, stats) for q in to_call]
    prompt = sum(e.prompt_tokens for e in estimates)
    completion = sum(e.completion_tokens_max for e in estimates)
    row: dict[str, object] = {
        "config": resolved.name,
        "questions": len(dataset.questions),
        "cached": len(dataset.questions) - len(to_call),
        "calls": len(to_call),
        "prompt_tokens_est": round(prompt),
        "completion_tokens_max": completion,
        "cost_usd_est": pricing.cost(round(prompt), completion),
        "price_source": pricing.source,
    }
    if judge is not None:
        # Every answer is judged, cached or not: an upper bound, like the completion tokens.
        k = config.retriever.k
        sample_tokens = (
            sum(count_tokens(q.question) for q in dataset.questions) / len(dataset.questions)
            + config.llm.max_tokens
            + k * stats.mean_tokens
        )
        found = estimate_judge(judge, len(dataset.questions), k, sample_tokens)
        row |= {"judge_calls_est": found.calls, "judge_cost_usd_est": found.cost_usd}
    return row


class Answerer:
    """Answers questions with the chain: replays cached answers, and respects the budget."""

    def __init__(
        self,
        chain: Runnable,
        resolved: ResolvedConfig,
        index: Index,
        ctx: _Context,
        pricing: Pricing,
    ) -> None:
        self._chain = chain
        self._resolved = resolved
        self._budget = ctx.budget
        self._pricing = pricing
        self._cache = ctx.cache if is_deterministic(resolved.config.llm) else ResultCache(None)
        if ctx.cache.enabled and not self._cache.enabled:
            logger.warning(
                "config %s samples without a seed; its answers are not cached", resolved.name
            )
        self._stats = (
            chunk_stats(ctx.corpus, resolved.config.chunking)
            if ctx.budget.cap_usd is not None
            else None
        )
        self._identity = answer_identity(resolved, index.key)
        self._lock = threading.Lock()
        self.calls = 0
        self.hits = 0

    def __call__(self, question: str) -> Answer:
        key = cache_key("answer", {**self._identity, "question": question})
        if (stored := self._cache.get(key)) is not None:
            with self._lock:
                self.hits += 1
            return answer_from_json(stored)
        reserved = self._reserve(question)
        with self._lock:
            self.calls += 1
        try:
            answer = ask(self._chain, question)
        except BaseException:
            self._budget.settle(reserved, 0.0)
            raise
        cost = self._pricing.cost(answer.tokens_prompt, answer.tokens_completion)
        self._budget.settle(reserved, cost or 0.0)
        self._cache.put(key, "answer", answer_to_json(answer))
        return answer

    def _reserve(self, question: str) -> float:
        if self._stats is None:
            return 0.0
        estimate = estimate_call(self._resolved, question, self._stats)
        worst = self._pricing.cost(estimate.prompt_tokens_max, estimate.completion_tokens_max)
        self._budget.reserve(worst or 0.0)
        return worst or 0.0


def _scorer_names(dataset: EvalDataset, chosen: Sequence[str] | None) -> list[str]:
    """The scorers the sweep names, else every one the dataset has the fields for."""
    if chosen is not None:
        return list(chosen)
    names = list(RETRIEVAL_SCORERS) if dataset.has_gold_ids else []
    return names + (list(REFERENCE_SCORERS) if dataset.has_references else [])


def _answer_all(
    answerer: Answerer, questions: Sequence[Question], config: RagConfig, on_sample: Progress | None
) -> tuple[list[Sample], BudgetExceeded | None]:
    """Answer every question (remote models in parallel); stop early only on the budget."""
    workers = 1 if config.llm.provider == "local" else config.llm.max_concurrency
    samples: dict[int, Sample] = {}
    stopped: BudgetExceeded | None = None
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmops-ask")
    futures = {pool.submit(_answer, answerer, q): i for i, q in enumerate(questions)}
    try:
        for future in as_completed(futures):
            if future.cancelled():
                continue
            try:
                samples[futures[future]] = future.result()
            except BudgetExceeded as err:
                stopped = stopped or err
                for pending in futures:  # as_completed still yields them, as cancelled
                    pending.cancel()
                continue
            if on_sample:
                on_sample(questions[futures[future]].id)
    finally:
        # On Ctrl-C, questions not yet started are dropped rather than answered first.
        pool.shutdown(wait=True, cancel_futures=True)
    return [samples[i] for i in sorted(samples)], stopped


def _answer(answerer: Answerer, question: Question) -> Sample:
    try:
        return Sample(question, answerer(question.question))
    except BudgetExceeded:
        raise
    except Exception as err:  # one failed call is recorded, never fatal to the sweep
        logger.warning("question %s failed: %s: %s", question.id, type(err).__name__, err)
        return Sample(question, None, f"{type(err).__name__}: {err}")


def _metrics(
    samples: Sequence[Sample], scores: dict[str, list[Score]], pricing: Pricing, k: int
) -> dict[str, float | None]:
    answers = [s.answer for s in samples if s.answer is not None]
    latencies = [a.latency_ms for a in answers]
    costs = [pricing.cost(a.tokens_prompt, a.tokens_completion) for a in answers]
    metrics: dict[str, float | None] = {
        "samples": float(len(samples)),
        "errors": float(len(samples) - len(answers)),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "retrieval_p50_ms": percentile([a.retrieval_ms for a in answers], 50),
        "tokens_prompt": float(sum(a.tokens_prompt for a in answers)),
        "tokens_completion": float(sum(a.tokens_completion for a in answers)),
        "cost_usd_total": sum(costs) if pricing.known else None,
        "cost_usd_per_request": sum(costs) / len(costs) if pricing.known and costs else None,
        "retriever_k": float(k),
    }
    for name, values in scores.items():
        metrics |= _mean_metrics(name, values)
    return metrics


def _mean_metrics(name: str, values: list[Score]) -> dict[str, float | None]:
    estimate = bootstrap_mean([s.value for s in values if s.scored])
    unscorable = float(sum(not s.scored for s in values))
    if estimate is None:
        return {f"unscorable_{name}": unscorable}
    return {
        name: estimate.mean,
        f"{name}_ci_low": estimate.ci_low,
        f"{name}_ci_high": estimate.ci_high,
        f"unscorable_{name}": unscorable,
    }


def _table(
    samples: Sequence[Sample], scores: dict[str, list[Score]], pricing: Pricing
) -> pd.DataFrame:
    rows = []
    for i, sample in enumerate(samples):
        answer: Answer | None = sample.answer
        row = {
            "question_id": sample.question.id,
            "question": sample.question.question,
            "reference_answer": sample.question.reference_answer,
            "gold_doc_ids": list(sample.question.gold_doc_ids or ()),
            "answer": answer.answer if answer else None,
            "contexts": list(answer.contexts) if answer else [],
            "sources": list(answer.sources) if answer else [],
            "tokens_prompt": answer.tokens_prompt if answer else None,
            "tokens_completion": answer.tokens_completion if answer else None,
            "cost_usd": pricing.cost(answer.tokens_prompt, answer.tokens_completion)
            if answer
            else None,
            "latency_ms": answer.latency_ms if answer else None,
            "error": sample.error,
        }
        for name, values in scores.items():
            row[name] = values[i].value
            row[f"{name}_reason"] = values[i].reason or None
        rows.append(row)
    return pd.DataFrame(rows)


def _log_config(
    resolved: ResolvedConfig,
    index: Index,
    pricing: Pricing,
    metrics: dict[str, float | None],
    table: pd.DataFrame,
    template: PromptTemplate,
) -> None:
    tracking.log_params({**flatten(resolved.config), "config_hash": resolved.config_hash})
    tracking.log_metrics(metrics)
    tracking.log_table(table, "eval_results.json")
    tracking.log_dict(resolved.config.model_dump(mode="json"), "config.yaml")
    tracking.log_text(template.text, f"prompt/{resolved.prompt_path.name}")
    # The prompt exactly as the model saw it, for the first question that got an answer.
    answered = table[table["answer"].notna()] if len(table) else table
    if len(answered):
        first = answered.iloc[0]
        context = number_contexts(first["contexts"])
        rendered = template.render(question=first["question"], context=context)
        tracking.log_text(rendered, "prompt/rendered_example.txt")
    tracking.log_dict(
        {
            "price_source": pricing.source,
            "index": index.key.collection_name,
            "index_chunks": index.chunks,
            "index_built": index.built,
        },
        "run_info.json",
    )


def _log_summary(result: SweepResult, primary: str | None) -> None:
    frame = summary_frame(result)
    tracking.log_table(frame, "sweep_summary.json")
    tracking.log_metrics(
        {
            "configs": float(len(result.configs)),
            "indexes_built": float(result.indexes_built),
            "indexes_reused": float(result.indexes_reused),
        }
    )
    tracking.set_tags(
        {
            "llmops.model_calls": result.model_calls,
            "llmops.cache_hits": result.cache_hits,
            "llmops.spent_usd": f"{result.spent_usd:.6f}",
        }
    )
    metric = primary or next(
        (m for m in PRIMARY_METRICS if m in frame.columns and frame[m].notna().any()), None
    )
    if metric is not None and len(result.configs) > 1:
        _log_comparison(result, summary_frame(result, extra=(metric,)), metric)


PRIMARY_METRICS = ("answer_similarity", "answer_f1", "recall_at_k")


def _log_comparison(result: SweepResult, frame: pd.DataFrame, metric: str) -> None:
    """Every config against the best on the same questions, and the quality/cost/latency front."""
    tables = {c.name: c.table for c in result.configs if metric in c.table.columns}
    comparison = paired_comparison(tables, metric)
    tracking.log_table(comparison, "comparison.json")
    objectives = {metric: "max", "cost_usd_per_request": "min", "latency_p50_ms": "min"}
    front = pareto_front(frame, objectives)
    tracking.log_table(front, "pareto.json")
    with tempfile.TemporaryDirectory() as folder:
        tracking.log_artifact(
            pareto_plot(front, "latency_p50_ms", metric, Path(folder) / "pareto.png")
        )
    best = comparison.loc[comparison["config"] == comparison["best_config"], "config"]
    tracking.set_tags({"llmops.primary_metric": metric, "llmops.best_config": best.iloc[0]})
    result.comparison, result.pareto = comparison, front


SUMMARY_METRICS = (
    "recall_at_k",
    "mrr",
    "answer_similarity",
    "answer_f1",
    "hallucination_rate",
    "faithfulness",
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_prompt",
    "tokens_completion",
    "cost_usd_per_request",
    "errors",
)


def summary_frame(result: SweepResult, extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per config with the headline metrics (and `extra` ones), in sweep order."""
    shown = [*SUMMARY_METRICS, *(m for m in extra if m not in SUMMARY_METRICS)]
    rows = [
        {
            "config": c.name,
            "config_hash": c.config_hash,
            "run_id": c.run_id,
            **{m: c.metrics.get(m) for m in shown},
        }
        for c in result.configs
    ]
    return pd.DataFrame(rows)


def _brief(metrics: dict[str, float | None]) -> str:
    shown = ("recall_at_k", "answer_similarity", "latency_p50_ms", "errors")
    return ", ".join(f"{m}={metrics[m]:.3g}" for m in shown if metrics.get(m) is not None)
