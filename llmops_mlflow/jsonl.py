"""Reading JSON Lines files with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops_mlflow.errors import DataError

MAX_FILE_BYTES = 512 * 1024 * 1024
BOM = b"\xef\xbb\xbf"


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; raise DataError on bad input."""
    _check_file(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise DataError(f"{path} cannot be read ({err.strerror}); check its permissions") from err
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(BOM)  # Windows editors save UTF-8 with one
            line = _decode(raw, path, number).strip()
            if line:
                yield number, _parse(line, path, number)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path} is a folder; name a .jsonl file with one JSON object per line")
    if not path.exists():
        raise DataError(f"file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file; name a .jsonl file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB; split it")


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
    except RecursionError as err:
        raise DataError(
            f"{path}:{number}: arrays or objects nested too deeply to read; flatten the row"
        ) from err
    except ValueError as err:  # Python refuses to convert integers of over 4,300 digits
        raise DataError(
            f"{path}:{number}: a number too long to read ({err.args[0].split(':')[0]}); write "
            "long ids as strings"
        ) from err
    if not isinstance(value, dict):
        raise DataError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
    return value
