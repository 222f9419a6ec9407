"""Chroma indexes on disk: built once per (corpus, chunking, embedding), then reused."""

from __future__ import annotations

import pytest

from llmops_mlflow.config import ChunkingConfig, EmbeddingConfig
from llmops_mlflow.documents import load_corpus
from llmops_mlflow.index import COMPLETE_KEY, IndexKey, IndexStore

SMALL = ChunkingConfig(chunk_size=60, chunk_overlap=10)
LOCAL = EmbeddingConfig()


def test_second_request_reuses_the_index_even_in_a_new_store(tmp_path, corpus_dir):
    corpus = load_corpus(corpus_dir)
    first = IndexStore(tmp_path / "idx").get(corpus, SMALL, LOCAL)
    again = IndexStore(tmp_path / "idx").get(corpus, SMALL, LOCAL)
    assert (first.built, again.built) == (True, False)
    assert first.chunks == again.chunks > 3


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("chunking", id="chunking"),
        pytest.param("corpus", id="corpus"),
        pytest.param("embedding", id="embedding-batch-size-is-not-a-change"),
    ],
)
def test_what_triggers_a_rebuild(tmp_path, corpus_dir, change):
    store = IndexStore(tmp_path / "idx")
    store.get(load_corpus(corpus_dir), SMALL, LOCAL)
    chunking, embedding = SMALL, LOCAL
    if change == "chunking":
        chunking = ChunkingConfig(chunk_size=90, chunk_overlap=10)
    elif change == "corpus":
        (corpus_dir / "new.md").write_text("A new document.", encoding="utf-8")
    else:
        embedding = EmbeddingConfig(batch_size=4)
    rebuilt = store.get(load_corpus(corpus_dir), chunking, embedding).built
    assert rebuilt is (change != "embedding")


def test_retrieval_finds_the_right_document(tmp_path, corpus_dir):
    index = IndexStore(tmp_path / "idx").get(load_corpus(corpus_dir), SMALL, LOCAL)
    docs = index.store.similarity_search("how hot should the water be for green tea", k=2)
    assert docs[0].metadata["doc_id"] == "tea"
    assert "80 degrees" in docs[0].page_content


def test_a_half_built_index_is_rebuilt(tmp_path, corpus_dir, caplog):
    corpus = load_corpus(corpus_dir)
    store = IndexStore(tmp_path / "idx")
    index = store.get(corpus, SMALL, LOCAL)
    # Simulate a process killed mid-build: the completion mark is missing.
    collection = store._client.get_collection(index.key.collection_name)
    collection.modify(metadata={**collection.metadata, COMPLETE_KEY: False})
    collection.delete(ids=[collection.get(limit=1)["ids"][0]])
    again = store.get(corpus, SMALL, LOCAL)
    assert again.built and again.chunks == index.chunks
    assert "left half-built" in caplog.text


def test_key_digest_is_stable():
    key = IndexKey("abc", SMALL, "local:all-MiniLM-L6-v2@default")
    assert key.collection_name == "llmops-" + key.digest
    assert key.digest == IndexKey("abc", SMALL, "local:all-MiniLM-L6-v2@default").digest
