"""The corpus: loading documents, splitting them into chunks, and their digests."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmops_mlflow.config import ChunkingConfig
from llmops_mlflow.errors import ConfigError, DataError
from llmops_mlflow.jsonl import read_jsonl

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".md", ".txt")
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Document:
    """A source document; `doc_id` is what gold ids in a dataset refer to."""

    doc_id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as it is embedded and retrieved."""

    chunk_id: str
    doc_id: str
    index: int
    text: str
    title: str = ""


@dataclass(frozen=True)
class Corpus:
    """The loaded documents and the digest of their content."""

    source: Path
    documents: tuple[Document, ...]
    digest: str


def load_corpus(source: str | Path) -> Corpus:
    """Load a folder of .md/.txt files or a JSONL file of `doc_id`, `text`, `title`."""
    source = Path(source)
    if source.is_dir():
        documents = _load_folder(source)
    elif source.is_file() and source.suffix == ".jsonl":
        documents = _load_jsonl(source)
    elif source.is_file() and source.suffix in TEXT_SUFFIXES:
        documents = _load_files([source], source.parent)
    elif source.is_file():
        raise DataError(
            f"corpus {source}: unsupported file type {source.suffix!r}; use a folder, a .jsonl "
            f"file or a {'/'.join(TEXT_SUFFIXES)} file"
        )
    else:
        raise DataError(f"corpus not found: {source} (expected a folder or a .jsonl file)")
    if not documents:
        raise DataError(
            f"corpus {source} holds no documents; add .md or .txt files, or JSONL rows "
            "with 'doc_id' and 'text'"
        )
    return Corpus(source=source, documents=tuple(documents), digest=_digest(documents))


def _load_folder(folder: Path) -> list[Document]:
    files = sorted(p for p in folder.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
    return _load_files(files, folder)


def _load_files(files: list[Path], folder: Path) -> list[Document]:
    documents = []
    origin: dict[str, Path] = {}
    for path in files:
        doc_id = path.relative_to(folder).with_suffix("").as_posix()
        if doc_id in origin:
            raise DataError(
                f"{origin[doc_id]} and {path} both map to doc id {doc_id!r}; rename one of them"
            )
        origin[doc_id] = path
        text = _read_text(path)
        if text.strip():
            documents.append(Document(doc_id=doc_id, text=text, title=_title(text, path)))
        else:
            logger.warning("skipping empty document %s", path)
    return documents


def _read_text(path: Path) -> str:
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise DataError(f"{path} is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB; split it")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}); check its permissions") from err
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path} looks binary (it contains NUL bytes); corpora hold text only")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); re-save it as UTF-8"
        ) from err
    return text.removeprefix("\ufeff")  # the BOM Windows editors write is not text


def _title(text: str, path: Path) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first.lstrip("# ").strip() if first.startswith("#") else path.stem


def _load_jsonl(path: Path) -> list[Document]:
    documents: list[Document] = []
    seen: set[str] = set()
    for number, row in read_jsonl(path):
        document = _row_document(row, f"{path}:{number}")
        if document.doc_id in seen:
            raise DataError(f"{path}:{number}: duplicate doc_id {document.doc_id!r}")
        seen.add(document.doc_id)
        documents.append(document)
    return documents


def _row_document(row: dict, where: str) -> Document:
    doc_id, text, title = row.get("doc_id"), row.get("text"), row.get("title")
    if "doc_id" not in row or "text" not in row:
        raise DataError(
            f"{where}: each row needs 'doc_id' and a non-empty 'text' (got keys {sorted(row)})"
        )
    # bool is an int to Python, but `true` as an id is a mistake, not the id "True".
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or not str(doc_id).strip():
        raise DataError(f"{where}: 'doc_id' must be a non-empty string, got {doc_id!r}")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: 'text' must be a non-empty string, got {_brief(text)}")
    if title is not None and not isinstance(title, str):
        raise DataError(f"{where}: 'title' must be a string, got {_brief(title)}")
    return Document(doc_id=str(doc_id), text=text, title=title or "")


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({type(value).__name__})"


def _digest(documents: list[Document]) -> str:
    sha = hashlib.sha256()
    for doc in documents:
        for part in (doc.doc_id, doc.title, doc.text):
            sha.update(part.encode())
            sha.update(b"\x00")
    return sha.hexdigest()[:16]


Splitter = Callable[[str], list[str]]


def _recursive(config: ChunkingConfig) -> Splitter:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap
    )
    return splitter.split_text


def _token(config: ChunkingConfig) -> Splitter:
    from langchain_text_splitters import TokenTextSplitter

    from llmops_mlflow.assets import ensure_tiktoken_cache

    ensure_tiktoken_cache()
    splitter = TokenTextSplitter(
        encoding_name=config.encoding,
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
    )
    return splitter.split_text


def _markdown(config: ChunkingConfig) -> Splitter:
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    headers = MarkdownHeaderTextSplitter(
        headers_to_split_on=[("#", "h1"), ("##", "h2"), ("###", "h3")], strip_headers=False
    )
    within = _recursive(config)

    def split(text: str) -> list[str]:
        return [
            piece for section in headers.split_text(text) for piece in within(section.page_content)
        ]

    return split


CHUNKERS: dict[str, Callable[[ChunkingConfig], Splitter]] = {
    "recursive": _recursive,
    "token": _token,
    "markdown": _markdown,
}


def splitter_for(config: ChunkingConfig) -> Splitter:
    """The text splitter registered under `config.method`."""
    try:
        factory = CHUNKERS[config.method]
    except KeyError as err:
        raise ConfigError(
            f"unknown chunking method {config.method!r}; choose one of {sorted(CHUNKERS)}"
        ) from err
    return factory(config)


def chunk_corpus(corpus: Corpus, config: ChunkingConfig) -> list[Chunk]:
    """Split every document; chunk ids are stable: `<doc_id>#<n>`."""
    split = splitter_for(config)
    chunks = []
    for doc in corpus.documents:
        for index, text in enumerate(piece for piece in split(doc.text) if piece.strip()):
            chunks.append(
                Chunk(
                    chunk_id=f"{doc.doc_id}#{index}",
                    doc_id=doc.doc_id,
                    index=index,
                    text=text,
                    title=doc.title,
                )
            )
    return chunks
