"""Persistent Chroma collections, one per distinct (corpus, chunking, embedding)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from llmops_mlflow.config import ChunkingConfig, EmbeddingConfig
from llmops_mlflow.documents import Corpus, chunk_corpus
from llmops_mlflow.embeddings import embedding_identity, get_embeddings

logger = logging.getLogger(__name__)

COMPLETE_KEY = "llmops_complete"
ADD_BATCH = 256


@dataclass(frozen=True)
class IndexKey:
    """What an index is built from; equal keys share one collection."""

    corpus_digest: str
    chunking: ChunkingConfig
    embedding: str

    @property
    def digest(self) -> str:
        payload = {
            "corpus": self.corpus_digest,
            "chunking": self.chunking.model_dump(mode="json"),
            "embedding": self.embedding,
        }
        blob = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def collection_name(self) -> str:
        return f"llmops-{self.digest}"


@dataclass(frozen=True)
class Index:
    """A ready collection and how it came to be."""

    key: IndexKey
    store: VectorStore
    chunks: int
    built: bool


@dataclass
class IndexStore:
    """A folder of Chroma collections, reused across configs, sweeps and processes."""

    root: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import chromadb
        from chromadb.config import Settings

        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._client = chromadb.PersistentClient(
            path=str(self.root), settings=Settings(anonymized_telemetry=False)
        )

    def get(self, corpus: Corpus, chunking: ChunkingConfig, embedding: EmbeddingConfig) -> Index:
        """Return the collection for this triple, building it only when it does not exist."""
        key = IndexKey(corpus.digest, chunking, embedding_identity(embedding))
        embedder = get_embeddings(embedding)
        with self._lock(key):
            collection = self._complete_collection(key)
            built = collection is None
            if built:
                collection = self._build(key, corpus, embedder)
                self.built.append(key.collection_name)
            else:
                self.reused.append(key.collection_name)
        store = self._wrap(key, embedder)
        return Index(key=key, store=store, chunks=collection.count(), built=built)

    def _complete_collection(self, key: IndexKey):
        try:
            collection = self._client.get_collection(key.collection_name)
        except Exception:  # chromadb raises NotFoundError or ValueError by version
            return None
        if (collection.metadata or {}).get(COMPLETE_KEY):
            return collection
        logger.warning("index %s was left half-built; rebuilding it", key.collection_name)
        self._client.delete_collection(key.collection_name)
        return None

    def _build(self, key: IndexKey, corpus: Corpus, embedder: Embeddings):
        chunks = chunk_corpus(corpus, key.chunking)
        logger.info("building index %s: %d chunks", key.collection_name, len(chunks))
        collection = self._client.create_collection(
            key.collection_name, embedding_function=None, metadata=_metadata(key, done=False)
        )
        for start in range(0, len(chunks), ADD_BATCH):
            batch = chunks[start : start + ADD_BATCH]
            collection.add(
                ids=[c.chunk_id for c in batch],
                documents=[c.text for c in batch],
                embeddings=embedder.embed_documents([c.text for c in batch]),
                metadatas=[
                    {"doc_id": c.doc_id, "chunk_index": c.index, "title": c.title} for c in batch
                ],
            )
        collection.modify(metadata=_metadata(key, done=True))
        return collection

    def _wrap(self, key: IndexKey, embedder: Embeddings) -> VectorStore:
        from langchain_chroma import Chroma

        return Chroma(
            client=self._client,
            collection_name=key.collection_name,
            embedding_function=embedder,
            create_collection_if_not_exists=False,
        )

    @contextlib.contextmanager
    def _lock(self, key: IndexKey) -> Iterator[None]:
        # Two sweeps on one index folder must not build the same collection at once.
        lock_path = self.root / f"{key.collection_name}.lock"
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _metadata(key: IndexKey, done: bool) -> dict[str, str | int | bool]:
    return {
        COMPLETE_KEY: done,
        "corpus_digest": key.corpus_digest,
        "chunking": json.dumps(key.chunking.model_dump(mode="json"), sort_keys=True),
        "embedding": key.embedding,
    }
