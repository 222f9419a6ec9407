"""API keys never reach the tracking store, the artifacts, the cache, a model or the logs."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest

from llmops_mlflow.registry import register_champion
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


def test_a_registered_and_served_model_leaves_no_trace_of_the_api_key(
    write_sweep, tmp_path, monkeypatch, caplog
):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_CANARY_KEY", CANARY)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    caplog.set_level(logging.DEBUG)
    script = FaultScript()
    with fault_server(script) as url:
        path = write_sweep(SWEEP.replace("@URL@", url))
        run_sweep(path, tracking_uri=store, cache_dir=tmp_path / "cache")
        info = register_champion(model_name="canary-rag")
        model = mlflow.pyfunc.load_model(info.champion_uri)
        answer = model.predict(pd.DataFrame({"question": ["How often is a chain oiled?"]}))
    assert answer["answer"].tolist() == [script.answer]
    assert len(script.requests) >= 6  # 4 in the sweep, then the model's own calls with the key
    mlflow.artifacts.download_artifacts(info.champion_uri, dst_path=str(tmp_path / "model"))
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == []
    assert (tmp_path / "model" / "MLmodel").is_file()
    assert CANARY not in caplog.text


def test_a_key_can_come_from_the_file_named_in_the_environment(tmp_path, monkeypatch):
    from llmops_mlflow.secrets import api_key

    secret = tmp_path / "openai.key"
    secret.write_text(CANARY + "\n", encoding="utf-8")
    monkeypatch.delenv("LLMOPS_CANARY_KEY", raising=False)
    monkeypatch.setenv("LLMOPS_CANARY_KEY_FILE", str(secret))
    assert api_key("LLMOPS_CANARY_KEY", None) == CANARY


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot be read", id="missing-file"),
        pytest.param("  \n", "which is empty", id="empty-file"),
    ],
)
def test_an_unusable_secret_file_is_a_config_error(tmp_path, monkeypatch, content, message):
    from llmops_mlflow.errors import ConfigError
    from llmops_mlflow.secrets import api_key

    secret = tmp_path / "openai.key"
    if content is not None:
        secret.write_text(content, encoding="utf-8")
    monkeypatch.delenv("LLMOPS_CANARY_KEY", raising=False)
    monkeypatch.setenv("LLMOPS_CANARY_KEY_FILE", str(secret))
    with pytest.raises(ConfigError, match=f"LLMOPS_CANARY_KEY_FILE names .*{message}"):
        api_key("LLMOPS_CANARY_KEY", None)


def test_without_a_key_the_error_says_where_to_put_it(monkeypatch):
    from llmops_mlflow.errors import ConfigError
    from llmops_mlflow.secrets import api_key

    monkeypatch.delenv("LLMOPS_CANARY_KEY", raising=False)
    monkeypatch.delenv("LLMOPS_CANARY_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match=r"LLMOPS_CANARY_KEY is not set.*LLMOPS_CANARY_KEY_FILE"):
        api_key("LLMOPS_CANARY_KEY", None)


@pytest.mark.parametrize(
    ("variable", "content", "where"),
    [
        pytest.param(
            "LLMOPS_CANARY_KEY_FILE", CANARY + "\nsecond line\n", "the file .*openai.key", id="file"
        ),
        pytest.param("LLMOPS_CANARY_KEY", f"Bearer {CANARY}", "LLMOPS_CANARY_KEY", id="env"),
    ],
)
def test_a_key_with_whitespace_inside_is_refused_without_showing_it(
    tmp_path, monkeypatch, variable, content, where
):
    from llmops_mlflow.errors import ConfigError
    from llmops_mlflow.secrets import api_key

    secret = tmp_path / "openai.key"
    secret.write_text(content, encoding="utf-8")
    monkeypatch.delenv("LLMOPS_CANARY_KEY", raising=False)
    monkeypatch.setenv(variable, str(secret) if variable.endswith("_FILE") else content)
    with pytest.raises(ConfigError, match=f"API key in {where}.* contains whitespace") as caught:
        api_key("LLMOPS_CANARY_KEY", None)
    assert CANARY not in str(caught.value)
