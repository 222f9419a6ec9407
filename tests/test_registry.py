"""Promotion to the registry: the selection rule, and a real sweep registered twice."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.entities.model_registry import ModelVersion

from llmops_mlflow.errors import ConfigError, DataError
from llmops_mlflow.registry import (
    CHAMPION,
    PREVIOUS,
    Candidate,
    ChampionInfo,
    register_champion,
    select_champion,
)
from llmops_mlflow.sweep import SweepResult, run_sweep

from .conftest import DOCS, QUESTIONS, REPO

SWEEP = """\
name: champ
experiment: champ-{suffix}
dataset: {{corpus: "{corpus}", questions: "{questions}", limit: 2}}
options: {{index_dir: "{index}"}}
base:
  chunking: {{chunk_size: 200, chunk_overlap: 0}}
  retriever: {{k: 2}}
  llm: {{max_tokens: 24}}
grid:
  prompt: [concise, cite]
"""
GUARDRAILS = {"max_input_chars": 300, "groundedness_floor": None}


def candidate(name: str, sim: float, low: float, high: float, cost: float, p50: float):
    metrics = {
        "answer_similarity": sim,
        "answer_similarity_ci_low": low,
        "answer_similarity_ci_high": high,
        "cost_usd_per_request": cost,
        "latency_p50_ms": p50,
    }
    return Candidate(run_id=f"run-{name}", name=name, config_hash=name, metrics=metrics)


BEST = candidate("best", 0.90, 0.85, 0.95, 0.010, 900)
CHEAP_TIED = candidate("cheap-tied", 0.86, 0.80, 0.88, 0.002, 800)
CHEAPER_WORSE = candidate("cheaper-worse", 0.60, 0.55, 0.65, 0.0001, 100)
FAST_TIED = candidate("fast-tied", 0.87, 0.82, 0.90, 0.002, 400)


@pytest.mark.parametrize(
    ("candidates", "constraints", "winner"),
    [
        ([BEST, CHEAPER_WORSE], {}, "best"),
        ([BEST, CHEAP_TIED, CHEAPER_WORSE], {}, "cheap-tied"),
        ([BEST, CHEAP_TIED, FAST_TIED], {}, "fast-tied"),
        ([BEST, CHEAPER_WORSE], {"cost_usd_per_request": 0.005}, "cheaper-worse"),
        ([BEST, CHEAP_TIED], {"latency_p50_ms": 850}, "cheap-tied"),
    ],
    ids=["best-wins-alone", "cheaper-within-ci", "faster-at-equal-cost", "cost-ceiling", "p50"],
)
def test_selection(candidates, constraints, winner):
    assert select_champion(candidates, "answer_similarity", constraints).winner.name == winner


def test_selection_reports_the_tied_and_the_rejected():
    selection = select_champion(
        [BEST, CHEAP_TIED, CHEAPER_WORSE], "answer_similarity", {"cost_usd_per_request": 0.005}
    )
    assert (selection.best.name, selection.winner.name) == ("cheap-tied", "cheap-tied")
    assert selection.rejected == {"best": "cost_usd_per_request=0.01 exceeds the ceiling 0.005"}


def test_a_missing_constraint_metric_fails_that_config():
    with pytest.raises(ConfigError, match=r"best: hallucination_rate was not logged"):
        select_champion([BEST], "answer_similarity", {"hallucination_rate": 0.2})


def test_no_config_passing_lists_every_config_and_why():
    with pytest.raises(ConfigError) as caught:
        select_champion([BEST, CHEAP_TIED], "answer_similarity", {"cost_usd_per_request": 0.001})
    message = str(caught.value)
    assert "best: cost_usd_per_request=0.01 exceeds" in message
    assert "cheap-tied: cost_usd_per_request=0.002 exceeds" in message


def test_a_config_without_the_primary_metric_is_out():
    bare = Candidate("run-x", "bare", "x", {"cost_usd_per_request": 0.0})
    selection = select_champion([bare, BEST], "answer_similarity", {})
    assert selection.rejected == {"bare": "primary metric answer_similarity was not logged"}
    assert math.isclose(selection.winner.metrics["answer_similarity"], 0.9)


def test_unknown_parent_run_is_a_config_error(use_store):
    with pytest.raises(ConfigError, match="no run 'deadbeef'"):
        register_champion("deadbeef")


def test_a_sweep_without_finished_children_is_a_data_error(use_store):
    mlflow.set_experiment("champ-empty")
    with mlflow.start_run(tags={"llmops.sweep": "empty"}) as run:
        pass
    with pytest.raises(DataError, match="has no finished config run"):
        register_champion(run.info.run_id)


# The second sweep states its champion, guardrails and detector in the sweep file itself.
SECTIONS = """\
champion: {{model_name: "{name}", constraints: {{errors: 0}}}}
guardrails: {{max_input_chars: 300, extra_injection_patterns: ["\\\\bsudo mode\\\\b"]}}
detector: {{mode: fast, threshold: 0.6}}
"""
BIN = Path(sys.executable).parent
_STATE: dict[str, object] = {}


def sweep_and_register(root: Path, tracking_uri: str) -> dict[str, object]:
    """Two real sweeps, each registered (the second with `llmops register`), shared by modules.

    The second sweep replays the first one's answers from the cache, so it costs no model time.
    """
    if _STATE:
        return _STATE
    name = f"rag-{root.name}"
    mlflow.set_tracking_uri(tracking_uri)
    first = run_sweep(_write_sweep(root), tracking_uri=tracking_uri, cache_dir=root / "cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        v1 = register_champion(first.parent_run_id, name, guardrails=GUARDRAILS)
    second_file = _write_sweep(root, SECTIONS.format(name=name), "second.yaml")
    second = run_sweep(second_file, tracking_uri=tracking_uri, cache_dir=root / "cache")
    cli = subprocess.run(
        [str(BIN / "llmops"), "register"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        cwd=root,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    v2 = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    _STATE.update(first=first, second=second, v1=v1, v2=v2, cli=cli, name=name, root=root)
    return _STATE


def _write_sweep(root: Path, extra: str = "", file_name: str = "sweep.yaml") -> Path:
    corpus = root / "corpus"
    if not corpus.is_dir():
        corpus.mkdir()
        for name, text in DOCS.items():
            (corpus / f"{name}.md").write_text(text, encoding="utf-8")
        (root / "prompts").mkdir()
        for name in ("concise", "cite"):
            source = REPO / "experiments" / "prompts" / f"{name}.txt"
            (root / "prompts" / f"{name}.txt").write_bytes(source.read_bytes())
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    body = textwrap.dedent(SWEEP).format(
        suffix=root.name, corpus=corpus, questions=questions, index=root / "index"
    )
    path = root / file_name
    path.write_text(body + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tracking_uri):
    return sweep_and_register(tmp_path_factory.mktemp("champion"), tracking_uri)


def _artifact(version: ModelVersion | ChampionInfo, name: str) -> dict:
    uri = f"models:/{version.name if isinstance(version, ModelVersion) else version.model_name}"
    uri += f"/{version.version}"
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    return yaml.safe_load((folder / "artifacts" / name).read_text(encoding="utf-8"))


@pytest.mark.slow
def test_register_picks_the_best_config_of_the_sweep(registered):
    first: SweepResult = registered["first"]
    v1: ChampionInfo = registered["v1"]
    expected = select_champion(
        [
            Candidate(c.run_id, c.name, c.config_hash, mlflow.get_run(c.run_id).data.metrics)
            for c in first.configs
        ],
        "answer_similarity",
        {},
    ).winner
    assert (v1.source_run_id, v1.config_hash) == (expected.run_id, expected.config_hash)
    assert v1.parent_run_id == first.parent_run_id and v1.previous_version is None


@pytest.mark.slow
def test_version_tags_carry_source_config_and_metrics(registered):
    v1: ChampionInfo = registered["v1"]
    version = mlflow.MlflowClient().get_model_version(v1.model_name, v1.version)
    assert version.tags["llmops.source_run_id"] == v1.source_run_id
    assert version.tags["llmops.config_hash"] == v1.config_hash
    assert float(version.tags["llmops.metric.answer_similarity"]) == pytest.approx(
        v1.metrics["answer_similarity"], rel=1e-5
    )
    assert "llmops.metric.hallucination_rate" in version.tags


@pytest.mark.slow
def test_second_register_moves_champion_and_keeps_previous(registered):
    v1: ChampionInfo = registered["v1"]
    v2: ModelVersion = registered["v2"]
    client = mlflow.MlflowClient()
    assert v2.tags["llmops.parent_run_id"] == registered["second"].parent_run_id
    assert int(v2.version) == int(v1.version) + 1
    assert str(client.get_model_version_by_alias(v1.model_name, PREVIOUS).version) == v1.version


@pytest.mark.slow
def test_register_command_prints_version_uri_config_and_previous(registered):
    v2: ModelVersion = registered["v2"]
    out = registered["cli"].stdout
    assert f"registered {v2.name} version {v2.version}: models:/{v2.name}@champion" in out
    assert f"config: {v2.tags['llmops.config_name']} (hash {v2.tags['llmops.config_hash']}" in out
    assert f"previous champion: version {registered['v1'].version} (now @previous)" in out


@pytest.mark.slow
def test_model_carries_config_prompt_guardrails_detector_and_its_own_index(registered):
    v1: ChampionInfo = registered["v1"]
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{v1.model_name}/{v1.version}"))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {
        "artifacts/config.yaml",
        "artifacts/guardrails.yaml",
        "artifacts/detector.yaml",
    } <= files
    assert any(f.startswith("artifacts/index/") and f.endswith(".sqlite3") for f in files)
    prompts = [local / f for f in files if f.startswith("artifacts/") and f.endswith(".txt")]
    logged = mlflow.artifacts.load_text(f"runs:/{v1.source_run_id}/prompt/{prompts[0].name}")
    assert len(prompts) == 1 and prompts[0].read_text(encoding="utf-8") == logged
    assert _artifact(v1, "guardrails.yaml")["max_input_chars"] == GUARDRAILS["max_input_chars"]


@pytest.mark.slow
def test_sections_of_the_sweep_file_are_logged_with_the_model(registered):
    v2: ModelVersion = registered["v2"]
    guardrails = _artifact(v2, "guardrails.yaml")
    assert guardrails["extra_injection_patterns"] == [r"\bsudo mode\b"]
    assert _artifact(v2, "detector.yaml") == {"enabled": True, "mode": "fast", "threshold": 0.6}


@pytest.mark.slow
def test_model_signature_and_input_example(registered):
    info = mlflow.models.get_model_info(f"models:/{registered['name']}@champion")
    inputs = [c.name for c in info.signature.inputs.inputs]
    outputs = {c.name for c in info.signature.outputs.inputs}
    assert inputs == ["question"]
    assert {"answer", "contexts", "sources", "hallucination_score", "latency_ms"} <= outputs


@pytest.mark.slow
def test_no_config_under_the_ceilings_lists_each_config_and_why(registered):
    first: SweepResult = registered["first"]
    with pytest.raises(ConfigError) as caught:
        register_champion(first.parent_run_id, "never", {"latency_p50_ms": 0.001})
    for config in first.configs:
        assert f"{config.name}: latency_p50_ms=" in str(caught.value)
    assert "exceeds the ceiling 0.001" in str(caught.value)


@pytest.mark.slow
def test_a_config_run_is_not_a_sweep(registered):
    child = registered["first"].configs[0].run_id
    with pytest.raises(ConfigError, match=f"run {child} is one config of a sweep; pass its parent"):
        register_champion(child)


def _llmops(*args: str, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "llmops"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parent-run", "deadbeef"], "no run 'deadbeef'"),
        (["--constraint", "cost_usd_per_request"], "expected METRIC=CEILING"),
        (["--constraint", "cost=cheap"], "expected METRIC=CEILING"),
    ],
    ids=["unknown-run", "constraint-without-ceiling", "constraint-not-a-number"],
)
def test_register_command_exits_2_with_a_reason(use_store, args, message):
    result = _llmops("register", *args, store=use_store)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_register_without_any_sweep_exits_2(tmp_path):
    result = _llmops("register", store=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 2, result.stderr
    assert "no finished sweep in sqlite:///" in result.stderr
