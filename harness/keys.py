"""Content-hash cell keys: stable across runs and machines, different when any input differs."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["content_key", "package_versions", "file_digest", "data_identity"]

KEY_PACKAGES = {
    "train": ("torch", "transformers", "trl", "peft"),
    "eval": ("torch", "transformers", "lm_eval"),
}


def content_key(payload: Any, length: int = 16) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@cache
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: _version(name) for name in names}


@cache
def _digest(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    st = Path(path).stat()
    return _digest(str(Path(path).resolve()), st.st_size, st.st_mtime)


def data_identity(config: Any) -> Any:
    """The config with every string that names an existing file replaced by its content hash."""
    if isinstance(config, dict):
        return {k: data_identity(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [data_identity(v) for v in config]
    if isinstance(config, str) and ("/" in config or config.endswith((".jsonl", ".csv", ".json", ".parquet"))):
        p = Path(config).expanduser()
        if p.is_file():
            return {"file": p.name, "sha256": file_digest(p)}
    return config
