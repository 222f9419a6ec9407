"""Embedding providers: the packaged MiniLM ONNX model, or any OpenAI-compatible endpoint."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import numpy as np
from langchain_core.embeddings import Embeddings

from llmops_mlflow import assets
from llmops_mlflow.config import EmbeddingConfig
from llmops_mlflow.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on sequences up to 256 word pieces


class LocalMiniLM(Embeddings):
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the attention mask, L2-normalised."""

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(assets.minilm_onnx()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(assets.minilm_tokenizer()))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = [
            self._embed_batch(texts[start : start + self._batch_size])
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(vectors).tolist() if vectors else []

    def embed_query(self, text: str) -> list[float]:
        return self._embed_batch([text])[0].tolist()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


@functools.cache
def local_embedder(batch_size: int = 32) -> LocalMiniLM:
    """The packaged MiniLM embedder, loaded once per process."""
    return LocalMiniLM(batch_size=batch_size)


def _make_local(config: EmbeddingConfig) -> Embeddings:
    if config.model not in LOCAL_MODELS:
        raise ConfigError(
            f"local embedding model {config.model!r} is not packaged; "
            f"choose one of {sorted(LOCAL_MODELS)} or use provider 'openai'"
        )
    return local_embedder(config.batch_size)


def _make_openai(config: EmbeddingConfig) -> Embeddings:
    from langchain_openai import OpenAIEmbeddings

    from llmops_mlflow.secrets import api_key

    return OpenAIEmbeddings(
        model=config.model,
        base_url=config.base_url,
        api_key=api_key(config.api_key_env, config.base_url),
        chunk_size=config.batch_size,
        check_embedding_ctx_length=False,
    )


LOCAL_MODELS = frozenset({"all-MiniLM-L6-v2"})
PROVIDERS: dict[str, Callable[[EmbeddingConfig], Embeddings]] = {
    "local": _make_local,
    "openai": _make_openai,
}


def embedding_identity(config: EmbeddingConfig) -> str:
    """What makes two embedders produce the same vectors (not the batch size)."""
    return f"{config.provider}:{config.model}@{config.base_url or 'default'}"


def get_embeddings(config: EmbeddingConfig) -> Embeddings:
    """The embedder registered under `config.provider`."""
    try:
        factory = PROVIDERS[config.provider]
    except KeyError as err:
        raise ConfigError(
            f"unknown embedding provider {config.provider!r}; choose one of {sorted(PROVIDERS)}"
        ) from err
    return factory(config)
