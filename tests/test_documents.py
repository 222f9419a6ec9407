"""Corpus loading and chunking, with the errors a user meets on bad files."""

from __future__ import annotations

import json

import pytest

from llmops_mlflow.config import ChunkingConfig
from llmops_mlflow.documents import chunk_corpus, load_corpus
from llmops_mlflow.errors import DataError


def test_folder_corpus_ids_are_relative_paths_without_suffix(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Alpha\nText a.", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_text("Text b.", encoding="utf-8")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    corpus = load_corpus(tmp_path)
    assert [(d.doc_id, d.title) for d in corpus.documents] == [("a", "Alpha"), ("sub/b", "b")]


def test_jsonl_corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"doc_id": 7, "text": "seven", "title": "T"}, {"doc_id": "x", "text": "ex"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert [(d.doc_id, d.text, d.title) for d in corpus.documents] == [
        ("7", "seven", "T"),
        ("x", "ex", ""),
    ]


def test_a_single_text_file_is_a_one_document_corpus(tmp_path):
    path = _write(tmp_path / "notes.md", b"# Notes\nbody")
    assert [(d.doc_id, d.title) for d in load_corpus(path).documents] == [("notes", "Notes")]


def test_digest_changes_with_content_only(tmp_path, corpus_dir):
    first = load_corpus(corpus_dir).digest
    assert load_corpus(corpus_dir).digest == first
    (corpus_dir / "tea.md").write_text("changed", encoding="utf-8")
    assert load_corpus(corpus_dir).digest != first


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        pytest.param(lambda p: p / "missing", "corpus not found", id="missing"),
        pytest.param(lambda p: p, "holds no documents", id="empty-folder"),
        pytest.param(
            lambda p: _write(p / "x.md", b"caf\xe9").parent, r"not UTF-8 text \(byte 3", id="latin1"
        ),
        pytest.param(
            lambda p: _write(p / "x.txt", b"\x00\x01\x02binary").parent, "looks binary", id="binary"
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": 1}\n'),
            r"c.jsonl:1: each row needs 'doc_id' and a non-empty 'text'",
            id="no-text",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id":1,"text":"a"}\n{"doc_id":1,"text":"b"}\n'),
            r"c.jsonl:2: duplicate doc_id",
            id="duplicate-id",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": 1,\n'),
            r"c.jsonl:1: invalid JSON",
            id="bad-json",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b"[1, 2]\n"), "expected a JSON object", id="not-object"
        ),
        pytest.param(lambda p: _pair(p), "both map to doc id 'faq'", id="id-clash"),
        pytest.param(
            lambda p: _write(p / "c.csv", b"a,b\n"),
            r"use a folder, a \.jsonl file",
            id="unknown-suffix",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": true, "text": "a"}\n'),
            r"c.jsonl:1: 'doc_id' must be a non-empty string, got True",
            id="doc-id-bool",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": " ", "text": "a"}\n'),
            r"c.jsonl:1: 'doc_id' must be a non-empty string, got ' '",
            id="doc-id-blank",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": 1.5, "text": "a"}\n'),
            r"'doc_id' must be a non-empty string, got 1.5",
            id="doc-id-float",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": "a", "text": ["a"]}\n'),
            r"c.jsonl:1: 'text' must be a non-empty string, got \['a'\]",
            id="text-not-string",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": "a", "text": "a", "title": {"t": 1}}\n'),
            r"c.jsonl:1: 'title' must be a string, got \{'t': 1\}",
            id="title-not-string",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b'{"doc_id": ' + b"9" * 5000 + b', "text": "a"}\n'),
            r"c.jsonl:1: a number too long to read .*write long ids as strings",
            id="5000-digit-number",
        ),
        pytest.param(
            lambda p: _write(p / "c.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
            r"c.jsonl:1: arrays or objects nested too deeply to read",
            id="nested-100000-deep",
        ),
    ],
)
def test_bad_corpora_are_data_errors(tmp_path, setup, match):
    with pytest.raises(DataError, match=match):
        load_corpus(setup(tmp_path))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _pair(folder):
    (folder / "faq.md").write_text("one", encoding="utf-8")
    (folder / "faq.txt").write_text("two", encoding="utf-8")
    return folder


def test_empty_files_are_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    (tmp_path / "full.md").write_text("words", encoding="utf-8")
    assert [d.doc_id for d in load_corpus(tmp_path).documents] == ["full"]
    assert "skipping empty document" in caplog.text


@pytest.mark.parametrize(
    ("method", "size", "limit"),
    [
        pytest.param("recursive", 60, 60, id="recursive-chars"),
        pytest.param("markdown", 60, 60, id="markdown-chars"),
        pytest.param("token", 12, 12, id="tokens"),
    ],
)
def test_chunkers_respect_the_size(corpus_dir, method, size, limit):
    config = ChunkingConfig(method=method, chunk_size=size, chunk_overlap=0)
    chunks = chunk_corpus(load_corpus(corpus_dir), config)
    assert len(chunks) > len(load_corpus(corpus_dir).documents)
    if method == "token":
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base")
        assert max(len(encoding.encode(c.text)) for c in chunks) <= limit
    else:
        assert max(len(c.text) for c in chunks) <= limit
    assert chunks[0].chunk_id == f"{chunks[0].doc_id}#0"


def test_markdown_chunks_do_not_straddle_sections(corpus_dir):
    config = ChunkingConfig(method="markdown", chunk_size=500, chunk_overlap=0)
    texts = [c.text for c in chunk_corpus(load_corpus(corpus_dir), config) if c.doc_id == "tea"]
    assert len(texts) == 2
    assert texts[0].startswith("# Tea") or "Brewing" in texts[0]
    assert "Storage" in texts[1] and "Brewing" not in texts[1]


@pytest.mark.parametrize(
    ("name", "data", "title"),
    [
        pytest.param(
            "c.jsonl", b'\xef\xbb\xbf{"doc_id": "a", "text": "# Tea\\nx"}\n', "", id="jsonl"
        ),
        pytest.param("a.md", b"\xef\xbb\xbf# Tea\r\nx\r\n", "Tea", id="markdown-crlf"),
    ],
)
def test_a_utf8_bom_is_not_part_of_the_text(tmp_path, name, data, title):
    corpus = load_corpus(_write(tmp_path / name, data))
    assert [(d.doc_id, d.text[:5], d.title) for d in corpus.documents] == [("a", "# Tea", title)]


def test_an_unreadable_file_is_a_data_error(tmp_path, monkeypatch):
    _write(tmp_path / "a.md", b"text")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "read_bytes", denied)  # root reads a chmod-000 file
    with pytest.raises(DataError, match=r"a\.md cannot be read \(Permission denied\)"):
        load_corpus(tmp_path)
