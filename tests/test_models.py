"""The packaged models, run for real: MiniLM embeddings and SmolLM2 through llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.messages import HumanMessage

from llmops_mlflow import assets
from llmops_mlflow.config import EmbeddingConfig, LLMConfig
from llmops_mlflow.embeddings import get_embeddings, local_embedder
from llmops_mlflow.errors import ConfigError
from llmops_mlflow.llms import get_chat_model


def test_assets_are_inside_installed_packages():
    assert assets.smollm2_gguf().stat().st_size > 90_000_000
    assert assets.minilm_onnx().stat().st_size == 22_928_619
    assert assets.minilm_tokenizer().name == "tokenizer.json"


def test_tiktoken_vocabularies_load_without_network():
    import tiktoken

    assets.ensure_tiktoken_cache()
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_local_embeddings_are_normalised_and_meaningful():
    embedder = local_embedder()
    docs = np.array(
        embedder.embed_documents(["Green tea is brewed at 80 C.", "Bikes have chains."])
    )
    query = np.array(embedder.embed_query("What temperature for green tea?"))
    assert docs.shape == (2, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert docs[0] @ query > docs[1] @ query + 0.3


def test_local_embeddings_do_not_depend_on_batching():
    texts = [f"sentence number {i} about tea" for i in range(5)]
    one = np.array(local_embedder(batch_size=1).embed_documents(texts))
    many = np.array(local_embedder(batch_size=4).embed_documents(texts))
    assert np.allclose(one, many, atol=1e-4)


@pytest.mark.slow
def test_local_chat_model_answers_with_usage_and_is_deterministic():
    model = get_chat_model(LLMConfig(max_tokens=16))
    prompt = [HumanMessage("Context: The capital of Freedonia is Zelmar.\nWhat is the capital?")]
    first, second = model.invoke(prompt), model.invoke(prompt)
    assert "Zelmar" in first.text
    assert first.text == second.text
    usage = first.usage_metadata
    assert usage["input_tokens"] > 15 and 0 < usage["output_tokens"] <= 16


@pytest.mark.parametrize(
    ("factory", "config", "match"),
    [
        pytest.param(
            get_chat_model,
            LLMConfig(provider="anthropic"),
            r"unknown llm provider 'anthropic'; choose one of \['local', 'openai'\]",
            id="llm-provider",
        ),
        pytest.param(
            get_chat_model, LLMConfig(model="llama-70b"), "is not packaged", id="llm-local-model"
        ),
        pytest.param(
            get_embeddings,
            EmbeddingConfig(provider="cohere"),
            "unknown embedding provider 'cohere'",
            id="embedding-provider",
        ),
        pytest.param(
            get_embeddings,
            EmbeddingConfig(model="bge-large"),
            "is not packaged",
            id="embedding-local-model",
        ),
    ],
)
def test_unknown_models_list_the_valid_names(factory, config, match):
    with pytest.raises(ConfigError, match=match):
        factory(config)


def test_openai_provider_needs_a_key_unless_self_hosted(monkeypatch):
    monkeypatch.delenv("LLMOPS_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="LLMOPS_TEST_KEY is not set"):
        get_chat_model(
            LLMConfig(provider="openai", model="gpt-4o-mini", api_key_env="LLMOPS_TEST_KEY")
        )
    hosted = get_chat_model(
        LLMConfig(
            provider="openai",
            model="m",
            base_url="http://127.0.0.1:9",
            api_key_env="LLMOPS_TEST_KEY",
        )
    )
    assert hosted.openai_api_base == "http://127.0.0.1:9"
