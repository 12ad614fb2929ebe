"""Where a cell stands: done (its record exists), failed before, changed input, or new."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["cell_status", "failure_path", "record_file"]


def record_file(results_dir: Path, kind: str, key: str) -> Path:
    return Path(results_dir) / "records" / f"{kind}-{key}.json"


def failure_path(results_dir: Path, kind: str, key: str) -> Path:
    return Path(results_dir) / "failures" / f"{kind}-{key}.json"


@cache
def _known_ids(results_dir: Path, mtime: float) -> dict[tuple[str, str, str], str]:
    """(kind, model, stage) -> a key seen before, to tell 'changed input' from 'new'."""
    out: dict[tuple[str, str, str], str] = {}
    for path in (Path(results_dir) / "records").glob("*.json"):
        try:
            data = json.loads(path.read_text())
            out[(data["kind"], data["model_id"], data.get("stage", "base"))] = data["cell_key"]
        except (OSError, ValueError, KeyError):
            continue
    return out


def cell_status(cell, results_dir: str | Path) -> tuple[str, str]:
    results_dir = Path(results_dir)
    if record_file(results_dir, cell.kind, cell.key).exists():
        return "done", "record exists"
    failed = failure_path(results_dir, cell.kind, cell.key)
    if failed.exists():
        try:
            reason = json.loads(failed.read_text()).get("error", "")
        except ValueError:
            reason = ""
        return "failed", f"failed before: {reason}"[:120]
    records = results_dir / "records"
    mtime = records.stat().st_mtime if records.exists() else 0.0
    if (cell.kind, cell.model, cell.stage) in _known_ids(results_dir, mtime):
        return "changed", "input changed since the last record"
    return "new", "no record yet"
