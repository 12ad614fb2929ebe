"""Content hashes: cell keys from JSON payloads, and file digests cached per (path, size, mtime)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["content_key", "file_digest"]


def content_key(payload: Any, length: int = 16) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@cache
def _digest(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    # size and mtime in the cache key: a rewritten file is hashed again
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime)
