"""API keys never reach the tracking store, the artifacts, the cache or the logs."""

from __future__ import annotations

import logging

import pytest

from llmops_mlflow.sweep import run_sweep

from .servers import FaultScript, fault_server

pytestmark = pytest.mark.slow

CANARY = "sk-llmops-canary-7f3a9c21e5b84d06"
SWEEP = """\
name: secrets
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@", limit: 2}
options: {index_dir: "@INDEX@"}
base:
  llm: {provider: openai, model: fake, base_url: "@URL@", api_key_env: LLMOPS_CANARY_KEY,
        max_tokens: 8}
grid:
  retriever.k: [1, 2]
"""


def test_a_sweep_leaves_no_trace_of_the_api_key(write_sweep, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_CANARY_KEY", CANARY)
    caplog.set_level(logging.DEBUG)
    script = FaultScript()
    with fault_server(script) as url:
        path = write_sweep(SWEEP.replace("@URL@", url))
        run_sweep(
            path, tracking_uri=f"sqlite:///{tmp_path / 'store.db'}", cache_dir=tmp_path / "cache"
        )
    assert len(script.requests) == 4  # the key was really used
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == []
    assert {p.name for p in tmp_path.iterdir()} >= {"store.db", "mlruns", "cache", "index"}
    assert CANARY not in caplog.text
