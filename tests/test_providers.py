"""Sweeps against OpenAI-compatible servers on loopback: the real local model behind
llama_cpp.server, and a fault-injecting server for 429, 5xx, garbage, drops and budgets."""

from __future__ import annotations

import os
import subprocess
import time

import mlflow
import pytest

from llmops_mlflow import tracking
from llmops_mlflow.errors import ConfigError
from llmops_mlflow.sweep import estimate_sweep, run_sweep

from .servers import Fault, FaultScript, fault_server, llama_server

pytestmark = pytest.mark.slow

REMOTE = """\
name: remote
experiment: remote-@NAME@
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@"}
options: {index_dir: "@INDEX@"}
base:
  retriever: {k: 2}
  llm: {provider: openai, model: @MODEL@, base_url: "@URL@", max_tokens: 16, max_retries: 2,
        timeout_s: 5, max_concurrency: @CONC@@PRICE@}
"""


def _sweep(
    write_sweep,
    tmp_path,
    url: str,
    model: str = "fake",
    concurrency: int = 4,
    price: str = "",
    extra: str = "",
):
    body = (
        REMOTE.replace("@URL@", url)
        .replace("@MODEL@", model)
        .replace("@CONC@", str(concurrency))
        .replace("@PRICE@", price)
        .replace("@NAME@", tmp_path.name)
    )
    return write_sweep(body + extra)


def test_sweep_against_the_local_model_served_over_http(
    write_sweep, tmp_path, tracking_uri, caplog
):
    with llama_server() as url:
        path = _sweep(write_sweep, tmp_path, url, model="smollm2", concurrency=2)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    metrics = result.configs[0].metrics
    assert metrics["errors"] == 0 and metrics["samples"] == 3
    assert metrics["tokens_prompt"] > 100 and metrics["tokens_completion"] > 0
    assert metrics["recall_at_k"] == 1.0
    assert "cost_usd_total" not in mlflow.get_run(result.configs[0].run_id).data.metrics
    assert "no price known for model 'smollm2'" in caplog.text


@pytest.mark.parametrize(
    ("faults", "expected_errors", "min_seconds"),
    [
        pytest.param([Fault(429, retry_after="1")], 0, 1.0, id="429-retry-after-honoured"),
        pytest.param([Fault(429)], 0, 0.0, id="429-without-retry-after"),
        pytest.param([Fault(503), Fault(500)], 0, 0.0, id="5xx-then-ok"),
        pytest.param([Fault(drop=True)], 0, 0.0, id="dropped-connection"),
        pytest.param([Fault(500)] * 9, 3, 0.0, id="persistent-500-recorded-per-sample"),
        pytest.param([Fault(body="{not json")] * 9, 3, 0.0, id="invalid-json"),
        pytest.param([Fault(delay_s=7.0)] * 9, 3, 0.0, id="timeouts"),
    ],
)
def test_provider_faults_never_crash_a_sweep(
    write_sweep, tmp_path, tracking_uri, faults, expected_errors, min_seconds
):
    script = FaultScript(faults=list(faults))
    with fault_server(script) as url:
        path = _sweep(write_sweep, tmp_path, url, concurrency=1)
        start = time.monotonic()
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
        elapsed = time.monotonic() - start
    run = mlflow.get_run(result.configs[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["errors"] == expected_errors
    assert elapsed >= min_seconds
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    assert table["error"].notna().sum() == expected_errors
    if expected_errors:
        assert run.data.metrics["unscorable_recall_at_k"] == expected_errors


def test_remote_calls_run_concurrently_under_the_limit(write_sweep, tmp_path, tracking_uri):
    script = FaultScript(then=Fault(delay_s=0.5))
    with fault_server(script) as url:
        path = _sweep(write_sweep, tmp_path, url, concurrency=3)
        start = time.monotonic()
        run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
        elapsed = time.monotonic() - start
    first_three = sorted(script.times)[:3]
    assert first_three[-1] - first_three[0] < 0.4  # all three started together
    assert elapsed < 3 * 0.5 + 1.0


def test_budget_stops_before_crossing_and_keeps_finished_configs(
    write_sweep, tmp_path, tracking_uri
):
    price = ", price: {input_per_million: 1000, output_per_million: 1000}"
    extra = "budget_usd: 0.25\ngrid:\n  retriever.k: [1, 2, 3]\n"
    with fault_server(FaultScript()) as url:
        path = _sweep(write_sweep, tmp_path, url, concurrency=1, price=price, extra=extra)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    assert result.stopped and "budget_usd 0.25 reached" in result.stopped
    assert 0 < result.spent_usd <= 0.25
    assert 1 <= len(result.configs) < 3
    assert all(mlflow.get_run(c.run_id).info.status == "FINISHED" for c in result.configs)
    parent = mlflow.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "budget_usd 0.25 reached" in parent.data.tags["llmops.stopped"]
    stopped_children = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}' "
        "and attributes.status = 'FAILED'",
        output_format="list",
    )
    assert len(stopped_children) == 1
    assert "llmops.stopped" in stopped_children[0].data.tags


def test_budget_with_an_unpriced_model_is_refused_before_anything_runs(
    write_sweep, tmp_path, tracking_uri
):
    path = _sweep(write_sweep, tmp_path, "http://127.0.0.1:9/v1", extra="budget_usd: 1\n")
    with pytest.raises(ConfigError, match="has no known price"):
        run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    assert mlflow.get_experiment_by_name(f"remote-{tmp_path.name}") is None


def test_dry_run_estimates_and_counts_cached_answers(write_sweep, tmp_path, tracking_uri):
    price = ", price: {input_per_million: 1000, output_per_million: 1000}"
    with fault_server(FaultScript()) as url:
        path = _sweep(write_sweep, tmp_path, url, price=price)
        before = estimate_sweep(path, tmp_path / "cache").iloc[0]
        run_sweep(path, tracking_uri=tracking_uri, cache_dir=tmp_path / "cache")
        after = estimate_sweep(path, tmp_path / "cache").iloc[0]
    assert (before["calls"], before["cached"]) == (3, 0)
    assert before["completion_tokens_max"] == 3 * 16
    assert before["prompt_tokens_est"] > 3 * 50
    assert before["cost_usd_est"] == pytest.approx((before["prompt_tokens_est"] + 48) * 1000 / 1e6)
    assert (after["calls"], after["cached"], after["cost_usd_est"]) == (0, 3, 0.0)


def test_cli_budget_stop_exits_1_and_dry_run_exits_0(write_sweep, tmp_path, use_store):
    from .test_cli import BIN

    price = ", price: {input_per_million: 1000, output_per_million: 1000}"
    extra = "budget_usd: 0.25\ngrid:\n  retriever.k: [1, 2, 3]\n"
    with fault_server(FaultScript()) as url:
        path = _sweep(write_sweep, tmp_path, url, concurrency=1, price=price, extra=extra)
        common = [str(BIN / "llmops"), "sweep", "--no-progress", "--no-cache", str(path)]
        dry = subprocess.run(
            [*common, "--dry-run"],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=300,
        )
        real = subprocess.run(
            common, capture_output=True, text=True, env=dict(os.environ), timeout=300
        )
    assert dry.returncode == 0, dry.stderr
    assert "would stop early" in dry.stdout
    assert real.returncode == 1, real.stderr
    assert "budget_usd 0.25 reached" in real.stderr
    assert "parent run:" in real.stdout


def test_a_sweep_runs_only_the_scorers_it_names(write_sweep, tmp_path, tracking_uri):
    with fault_server(FaultScript()) as url:
        path = _sweep(write_sweep, tmp_path, url)
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace('index_dir: "', 'scorers: [mrr, answer_f1], index_dir: "'),
            encoding="utf-8",
        )
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    metrics = result.configs[0].metrics
    assert "mrr" in metrics and "answer_f1" in metrics
    assert not {"recall_at_k", "hit_rate", "answer_similarity"} & set(metrics)
    assert "hallucination_rate" in metrics  # the detector has its own switch
