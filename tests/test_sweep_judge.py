"""Sweeps with a RAGAS judge: metrics, judge tokens and cost, unscorable counts, faults,
cache and budget, against loopback OpenAI-compatible servers (and the real local model)."""

from __future__ import annotations

import json

import mlflow
import pytest

from llmops_mlflow import tracking
from llmops_mlflow.sweep import estimate_sweep, run_sweep

from .servers import LLAMA_ALIAS, Fault, FaultScript, fault_server, llama_server

pytestmark = pytest.mark.slow

JUDGED = """\
name: judged
experiment: judged-@NAME@
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@"}
options: {index_dir: "@INDEX@"}
base:
  retriever: {k: 2}
  llm: {provider: openai, model: fake, base_url: "@CHAIN@", max_tokens: 16, max_retries: 0,
        timeout_s: 5, price: {input_per_million: 0, output_per_million: 0}}
judge: {model: @JUDGE_MODEL@, base_url: "@JUDGE@", metrics: [@METRICS@], max_retries: @RETRIES@,
        http_retries: 2, timeout_s: @TIMEOUT@, max_tokens: 256,
        price: {input_per_million: 1000, output_per_million: 2000}}
"""
RECALL_2_OF_3 = {
    "classifications": [
        {"statement": "First.", "reason": "in [1]", "attributed": 1},
        {"statement": "Second.", "reason": "in [1]", "attributed": 1},
        {"statement": "Third.", "reason": "absent", "attributed": 0},
    ]
}
# The fault server's usage per call: 11 prompt and 7 completion tokens.
CALL_COST = 11 * 1000 / 1e6 + 7 * 2000 / 1e6


def _sweep(write_sweep, tmp_path, chain: str, judge: str, **fields) -> object:
    values = {
        "@NAME@": tmp_path.name,
        "@CHAIN@": chain,
        "@JUDGE@": judge,
        "@JUDGE_MODEL@": fields.pop("model", "judge"),
        "@METRICS@": fields.pop("metrics", "context_recall"),
        "@TIMEOUT@": str(fields.pop("timeout", 5)),
        "@RETRIES@": str(fields.pop("retries", 0)),
    }
    body = JUDGED
    for marker, value in values.items():
        body = body.replace(marker, value)
    return write_sweep(body + fields.pop("extra", ""))


def _recall_judge(**kwargs) -> FaultScript:
    return FaultScript(answer=json.dumps(RECALL_2_OF_3), **kwargs)


def test_judge_metrics_tokens_and_cost_are_logged(write_sweep, tmp_path, tracking_uri):
    judge = _recall_judge()
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    run = mlflow.get_run(result.configs[0].run_id)
    metrics = run.data.metrics
    assert metrics["context_recall"] == pytest.approx(2 / 3)
    assert metrics["unscorable_context_recall"] == 0
    assert len(judge.requests) == 3
    assert metrics["judge_tokens"] == 3 * 18
    assert metrics["judge_cost_usd"] == pytest.approx(3 * CALL_COST)
    assert metrics["tokens_prompt"] == 3 * 11  # the chain's own tokens stay apart
    assert run.data.tags["llmops.judge_calls"] == "3"


def test_unparseable_judge_output_is_unscorable_with_the_reason(
    write_sweep, tmp_path, tracking_uri
):
    judge = FaultScript(answer="I think the answer is fine.")
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    run = mlflow.get_run(result.configs[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["unscorable_context_recall"] == 3
    assert "context_recall" not in run.data.metrics
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    assert table["context_recall"].isna().all()
    assert table["context_recall_reason"].str.startswith("judge call failed").all()


@pytest.mark.parametrize(
    ("faults", "retries"),
    [
        pytest.param([Fault(429, retry_after="1")], 0, id="429-retry-after"),
        pytest.param([Fault(500), Fault(503)], 0, id="5xx"),
        pytest.param([Fault(body="{not json")], 1, id="invalid-json-body-asked-again"),
    ],
)
def test_transient_judge_faults_are_retried(write_sweep, tmp_path, tracking_uri, faults, retries):
    judge = _recall_judge(faults=list(faults))
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url, retries=retries)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    metrics = mlflow.get_run(result.configs[0].run_id).data.metrics
    assert metrics["unscorable_context_recall"] == 0
    assert metrics["context_recall"] == pytest.approx(2 / 3)


def test_invalid_json_body_without_retries_is_unscorable(write_sweep, tmp_path, tracking_uri):
    judge = _recall_judge(faults=[Fault(body="{not json")])
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    run = mlflow.get_run(result.configs[0].run_id)
    assert run.data.metrics["unscorable_context_recall"] == 1
    assert run.data.metrics["context_recall"] == pytest.approx(2 / 3)  # over the 2 scored
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    assert table["context_recall_reason"].str.contains("JSONDecodeError").sum() == 1


def test_persistent_judge_failure_never_crashes_the_sweep(write_sweep, tmp_path, tracking_uri):
    judge = _recall_judge(then=Fault(500))
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url)
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    run = mlflow.get_run(result.configs[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["unscorable_context_recall"] == 3
    assert run.data.metrics["errors"] == 0
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    assert table["context_recall_reason"].str.contains("InternalServerError").all()


def test_unchanged_rerun_makes_no_judge_call_and_logs_identical_metrics(
    write_sweep, tmp_path, tracking_uri
):
    judge = _recall_judge()
    cache = tmp_path / "cache"
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url)
        first = run_sweep(path, tracking_uri=tracking_uri, cache_dir=cache)
        calls_after_first = len(judge.requests)
        second = run_sweep(path, tracking_uri=tracking_uri, cache_dir=cache)
    assert len(judge.requests) == calls_after_first
    one, two = (mlflow.get_run(r.configs[0].run_id) for r in (first, second))
    assert two.data.tags["llmops.judge_calls"] == "0"
    assert two.data.metrics == one.data.metrics


def test_judge_spend_counts_against_the_budget(write_sweep, tmp_path, tracking_uri):
    # Each judge call holds its worst case first (about 2.23 USD at the stated price: the
    # ragas prompt and 256 completion tokens) and settles at 0.025 USD: room for one or two.
    judge = _recall_judge()
    with fault_server(FaultScript()) as chain_url, fault_server(judge) as judge_url:
        path = _sweep(write_sweep, tmp_path, chain_url, judge_url, extra="budget_usd: 2.26\n")
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    assert result.stopped and "budget_usd 2.26 reached" in result.stopped
    assert 0 < len(judge.requests) < 3
    assert result.spent_usd <= 2.26
    assert result.configs == []  # the stopped config is logged, FAILED, not counted as done
    parent = mlflow.get_run(result.parent_run_id)
    (run,) = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
        output_format="list",
    )
    assert run.info.status == "FAILED"
    assert run.data.metrics["unscorable_context_recall"] >= 1
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    reasons = table["context_recall_reason"].dropna()
    assert reasons.str.startswith("not judged: budget_usd 2.26 reached").any()


def test_dry_run_estimates_judge_calls_and_cost(write_sweep, tmp_path):
    path = _sweep(
        write_sweep,
        tmp_path,
        "http://127.0.0.1:9/v1",
        "http://127.0.0.1:9/v1",
        metrics="faithfulness, context_recall",
    )
    frame = estimate_sweep(path, cache_dir=None)
    row = frame.iloc[0]
    assert row["judge_calls_est"] == 3 * (2 + 1)
    assert row["judge_cost_usd_est"] > 0


def test_real_local_model_as_judge_over_http(write_sweep, tmp_path, tracking_uri):
    with fault_server(FaultScript(answer="Kestrel")) as chain_url, llama_server() as judge_url:
        path = _sweep(
            write_sweep,
            tmp_path,
            chain_url,
            judge_url,
            model=LLAMA_ALIAS,
            metrics="faithfulness",
            timeout=120,
        )
        result = run_sweep(path, tracking_uri=tracking_uri, cache_dir=None)
    run = mlflow.get_run(result.configs[0].run_id)
    metrics = run.data.metrics
    assert run.info.status == "FINISHED"
    assert metrics.get("faithfulness") is not None or metrics["unscorable_faithfulness"] > 0
    assert metrics["judge_tokens"] > 0
    table = tracking.load_table(run.info.run_id, "eval_results.json")
    for value, reason in zip(table["faithfulness"], table["faithfulness_reason"], strict=True):
        assert (value == value and value is not None) or reason
