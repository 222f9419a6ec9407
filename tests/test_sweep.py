"""A whole sweep on real parts: SQLite MLflow store, Chroma on disk, the local model."""

from __future__ import annotations

import json

import mlflow
import pytest

from llmops_mlflow import tracking
from llmops_mlflow.sweep import run_sweep, summary_frame
from llmops_mlflow.tracking import git_commit

pytestmark = pytest.mark.slow

SWEEP = """\
name: itest
experiment: itest-{suffix}
dataset: {{corpus: "@CORPUS@", questions: "@QUESTIONS@", limit: 2}}
options: {{index_dir: "@INDEX@"}}
base:
  chunking: {{chunk_size: 120, chunk_overlap: 0}}
  retriever: {{k: 2}}
  llm: {{max_tokens: 24}}
grid:
  chunking.chunk_size: [120, 200]
  prompt: [concise, cite]
"""
REQUIRED_METRICS = {
    "latency_p50_ms",
    "latency_p95_ms",
    "tokens_prompt",
    "tokens_completion",
    "cost_usd_total",
    "cost_usd_per_request",
    "errors",
    "recall_at_k",
    "mrr",
    "hit_rate",
    "answer_similarity",
    "answer_f1",
    "recall_at_k_ci_low",
    "recall_at_k_ci_high",
    "unscorable_recall_at_k",
    "hallucination_rate",
    "hallucination_rate_ci_low",
    "hallucination_rate_ci_high",
    "unscorable_hallucination_rate",
    "groundedness",
    "unscorable_groundedness",
}


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory, tracking_uri):
    """The same sweep run twice against one index folder and one tracking store."""
    import textwrap

    from .conftest import DOCS, QUESTIONS

    root = tmp_path_factory.mktemp("sweep")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / f"{name}.md").write_text(text, encoding="utf-8")
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    prompts = root / "prompts"
    prompts.mkdir()
    from .conftest import REPO

    for name in ("concise", "cite"):
        (prompts / f"{name}.txt").write_bytes(
            (REPO / "experiments/prompts" / f"{name}.txt").read_bytes()
        )
    body = textwrap.dedent(SWEEP).format(suffix=root.name)
    body = body.replace("@CORPUS@", str(corpus)).replace("@QUESTIONS@", str(questions))
    path = root / "sweep.yaml"
    path.write_text(body.replace("@INDEX@", str(root / "index")), encoding="utf-8")
    first = run_sweep(path, tracking_uri=tracking_uri, cache_dir=root / "cache")
    second = run_sweep(path, tracking_uri=tracking_uri, cache_dir=root / "cache")
    return first, second


def test_one_index_per_distinct_chunking_and_none_the_second_time(two_sweeps):
    first, second = two_sweeps
    assert (first.indexes_built, first.indexes_reused) == (2, 2)
    assert (second.indexes_built, second.indexes_reused) == (0, 4)


def test_parent_run_has_one_child_per_config(two_sweeps):
    first, _ = two_sweeps
    client = mlflow.MlflowClient()
    parent = client.get_run(first.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first.parent_run_id}'",
    )
    assert sorted(r.info.run_name for r in children) == sorted(c.name for c in first.configs)
    assert all(r.info.status == "FINISHED" for r in [parent, *children])
    assert parent.data.metrics["indexes_built"] == 2


def test_child_runs_carry_params_tags_metrics_table_and_artifacts(two_sweeps):
    first, _ = two_sweeps
    client = mlflow.MlflowClient()
    result = first.configs[0]
    run = client.get_run(result.run_id)
    assert run.data.params["chunking.chunk_size"] == "120"
    assert run.data.params["config_hash"] == result.config_hash
    assert run.data.tags["llmops.config_hash"] == result.config_hash
    assert len(run.data.tags["llmops.dataset_digest"]) == 16
    if git_commit():
        assert run.data.tags["llmops.git_commit"] == git_commit()
    assert REQUIRED_METRICS <= set(run.data.metrics)
    assert run.data.metrics["samples"] == 2 and run.data.metrics["errors"] == 0
    assert run.data.metrics["cost_usd_total"] == 0.0
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"eval_results.json", "config.yaml", "run_info.json", "prompt"} <= artifacts
    prompt_files = {a.path for a in client.list_artifacts(result.run_id, "prompt")}
    assert prompt_files == {"prompt/concise.txt", "prompt/rendered_example.txt"}


def test_per_sample_table_matches_the_metrics(two_sweeps):
    first, _ = two_sweeps
    result = first.configs[0]
    table = tracking.load_table(result.run_id, "eval_results.json")
    assert list(table["question_id"]) == ["t1", "b1"]
    assert table["tokens_prompt"].sum() == result.metrics["tokens_prompt"]
    assert table["recall_at_k"].mean() == pytest.approx(result.metrics["recall_at_k"])
    assert all(len(c) == 2 for c in table["contexts"])


def test_an_unchanged_rerun_makes_no_model_call_and_logs_identical_metrics(two_sweeps):
    first, second = two_sweeps
    assert (first.model_calls, first.cache_hits) == (8, 0)
    assert (second.model_calls, second.cache_hits) == (0, 8)
    for a, b in zip(first.configs, second.configs, strict=True):
        assert a.config_hash == b.config_hash
        assert a.metrics == b.metrics
        assert mlflow.get_run(b.run_id).data.tags["llmops.model_calls"] == "0"


def test_without_the_cache_the_model_is_called_and_quality_is_unchanged(two_sweeps, tracking_uri):
    first, _ = two_sweeps
    path = first.sweep_file
    fresh = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    assert (fresh.model_calls, fresh.cache_hits) == (8, 0)
    for a, b in zip(first.configs, fresh.configs, strict=True):
        for metric in ("recall_at_k", "mrr", "answer_f1", "tokens_prompt", "tokens_completion"):
            assert a.metrics[metric] == b.metrics[metric], metric


def test_a_changed_prompt_misses_the_cache(two_sweeps, tracking_uri):
    first, _ = two_sweeps
    prompt = first.sweep_file.parent / "prompts" / "cite.txt"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nBe brief.\n", encoding="utf-8")
    changed = run_sweep(
        first.sweep_file, tracking_uri=tracking_uri, cache_dir=first.sweep_file.parent / "cache"
    )
    calls = {c.name: c.model_calls for c in changed.configs}
    assert calls == {
        "chunk_size=120,prompt=concise": 0,
        "chunk_size=120,prompt=cite": 2,
        "chunk_size=200,prompt=concise": 0,
        "chunk_size=200,prompt=cite": 2,
    }


def test_summary_frame_has_a_row_per_config(two_sweeps):
    first, _ = two_sweeps
    frame = summary_frame(first)
    assert list(frame["config"]) == [c.name for c in first.configs]
    assert {"recall_at_k", "latency_p50_ms", "cost_usd_per_request"} <= set(frame.columns)


def test_parent_run_compares_configs_and_logs_the_pareto_front(two_sweeps):
    first, _ = two_sweeps
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(first.parent_run_id)}
    assert {"comparison.json", "pareto.json", "pareto.png", "sweep_summary.json"} <= artifacts
    tags = client.get_run(first.parent_run_id).data.tags
    assert tags["llmops.primary_metric"] == "answer_similarity"
    comparison = first.comparison
    assert set(comparison["config"]) == {c.name for c in first.configs}
    assert tags["llmops.best_config"] in set(comparison["best_config"])
    assert {"p_value", "p_adjusted", "significant", "ci_low", "ci_high"} <= set(comparison.columns)
    assert first.pareto["pareto"].any()


def test_without_a_judge_the_offline_detector_scores_every_answer(two_sweeps):
    first, _ = two_sweeps
    for config in first.configs:
        table = config.table
        assert set(table["hallucination_rate"]) <= {0.0, 1.0}
        assert table["hallucination_rate_reason"].str.match(r"(supported|unsupported): ").all()
        assert config.metrics["hallucination_rate"] == pytest.approx(
            table["hallucination_rate"].mean()
        )
        assert config.metrics["groundedness"] == pytest.approx(table["groundedness"].mean())
        assert config.metrics["unscorable_hallucination_rate"] == 0
        assert "faithfulness" not in config.metrics


@pytest.mark.parametrize("metric", ["hit_rate", "groundedness"])
def test_a_metric_outside_the_summary_table_can_rank_the_configs(
    write_sweep, tracking_uri, tmp_path, metric
):
    body = SWEEP.format(suffix=f"{metric}-{tmp_path.name}").replace(
        "options: {", f"options: {{primary_metric: {metric}, "
    )
    result = run_sweep(write_sweep(body), tracking_uri=tracking_uri, cache_dir=None)

    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.tags["llmops.primary_metric"] == metric
    assert metric in result.pareto.columns
    assert len(result.comparison) == 4
