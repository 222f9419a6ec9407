"""Reading JSON Lines files with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops_mlflow.errors import DataError

MAX_FILE_BYTES = 512 * 1024 * 1024


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; raise DataError on bad input."""
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB; split it")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decode(raw, path, number).strip()
            if line:
                yield number, _parse(line, path, number)


def _decode(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}:{number}: not UTF-8 text ({err.reason}); re-save it as UTF-8"
        ) from err


def _parse(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{number}: invalid JSON: {err.msg} at column {err.colno}") from err
    if not isinstance(value, dict):
        raise DataError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
    return value
