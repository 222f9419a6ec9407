"""The result cache: any change to an input misses; a disabled cache stores nothing."""

from __future__ import annotations

import threading

import pytest

from llmops_mlflow.cache import ResultCache, cache_key
from llmops_mlflow.config import LLMConfig
from llmops_mlflow.llms import is_deterministic, model_identity

BASE = {"config": "abc", "index": "def", "model": "local:m", "question": "why?"}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"config": "abd"}, id="config-or-prompt"),
        pytest.param({"index": "deg"}, id="index-content"),
        pytest.param({"model": "local:n"}, id="model"),
        pytest.param({"question": "why not?"}, id="input"),
        pytest.param({"extra": 1}, id="new-part"),
    ],
)
def test_any_change_gives_a_new_key(change):
    assert cache_key("answer", {**BASE, **change}) != cache_key("answer", BASE)


def test_key_is_stable_and_kind_matters():
    assert cache_key("answer", dict(reversed(BASE.items()))) == cache_key("answer", BASE)
    assert cache_key("judge", BASE) != cache_key("answer", BASE)


def test_results_persist_across_instances(tmp_path):
    first = ResultCache(tmp_path)
    first.put("k", "answer", {"answer": "42", "contexts": ["a"]})
    first.close()
    second = ResultCache(tmp_path)
    assert second.get("k") == {"answer": "42", "contexts": ["a"]}
    assert second.get("other") is None
    assert (second.hits, second.misses) == (1, 1)


def test_disabled_cache_never_hits(tmp_path):
    cache = ResultCache(None)
    cache.put("k", "answer", {"x": 1})
    assert cache.get("k") is None and not cache.enabled


def test_threads_share_one_cache(tmp_path):
    cache = ResultCache(tmp_path)

    def work(n: int) -> None:
        for i in range(50):
            cache.put(f"{n}-{i}", "answer", {"i": i})
            assert cache.get(f"{n}-{i}") == {"i": i}

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.hits == 200


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(LLMConfig(temperature=0.0, seed=None), True, id="greedy"),
        pytest.param(LLMConfig(temperature=0.7, seed=3), True, id="seeded"),
        pytest.param(LLMConfig(temperature=0.7, seed=None), False, id="unseeded-sampling"),
    ],
)
def test_only_reproducible_configs_are_cached(config, expected):
    assert is_deterministic(config) is expected


def test_local_model_identity_names_weights_and_runtime():
    identity = model_identity(LLMConfig())
    assert identity["weights"].startswith("SmolLM2-135M-Instruct.Q4_1.gguf:")
    assert identity["runtime"].startswith("llama-cpp-python==0.3.36")
