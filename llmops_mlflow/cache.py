"""A content-addressed cache of model results, in one SQLite file shared by processes.

A key digests everything that can change a result (model identity and version, parameters,
prompt text, retrieval settings, index content, the input itself), so a hit is exactly the
result a new call would be expected to give, and any change misses. Failed calls are never
stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".llmops") / "cache"
SCHEMA_VERSION = 1


def cache_key(kind: str, parts: Mapping[str, Any]) -> str:
    """A stable digest of a result's kind and every input that determines it."""
    payload = {"kind": kind, "schema": SCHEMA_VERSION, **parts}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultCache:
    """Get and put JSON results by key; `ResultCache(None)` is a disabled cache."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                folder / "results.sqlite", check_same_thread=False, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, kind TEXT, value TEXT)"
            )
            self._db.commit()

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result, or None (and a miss counted)."""
        row = None
        if self._db is not None:
            with self._lock:
                row = self._db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, kind: str, value: Mapping[str, Any]) -> None:
        """Store a result; a disabled cache ignores it."""
        if self._db is None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (key, kind, value) VALUES (?, ?, ?)",
                (key, kind, json.dumps(value)),
            )
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
