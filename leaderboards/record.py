"""The run record: one immutable, schema-versioned JSON document per finished cell.

Records are the truth; leaderboards are queries over them. ``schema_version`` is bumped
whenever a field changes meaning; :func:`load_record` upgrades every older version so
old results keep loading.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCHEMA_VERSION",
    "MetricValue",
    "TaskResult",
    "Provenance",
    "RunRecord",
    "write_record",
    "load_record",
    "record_path",
]

SCHEMA_VERSION = 1


class MetricValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float
    stderr: float | None = None
    n: int | None = None


class TaskResult(BaseModel):
    """One task of an eval cell, with the prompt format that makes results comparable."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    primary_metric: str
    higher_is_better: bool = True
    metrics: dict[str, MetricValue]
    n_shot: int = 0
    chat_template: bool = True
    limit: int | None = None
    samples_file: str | None = None  # Parquet of per-sample rows, relative to the results dir


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    container_image: str | None = None
    container_digest: str | None = None
    hostname: str | None = None


class RunRecord(BaseModel):
    """A finished cell. ``kind='train'`` records a stage, ``kind='eval'`` its scores."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["train", "eval"]
    cell_key: str
    grid: str | None = None
    model_id: str
    model_revision: str | None = None
    recipe: list[str] = Field(default_factory=list)
    stage: str = "base"
    parent_key: str | None = None
    method_configs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checkpoint: str | None = None
    tasks: list[TaskResult] = Field(default_factory=list)
    backend: str | None = None
    dtype: str | None = None
    target: str | None = None
    seed: int = 0
    wall_s: float | None = None
    tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    train_metrics: dict[str, float] = Field(default_factory=dict)
    provenance: Provenance = Field(default_factory=Provenance)
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def record_path(results_dir: str | Path, record: RunRecord) -> Path:
    return Path(results_dir) / "records" / f"{record.kind}-{record.cell_key}.json"


def write_record(record: RunRecord, results_dir: str | Path) -> Path:
    """Write atomically (temp file + rename in the same directory): readers never see half a record."""
    path = record_path(results_dir, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(record.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    # Each future schema version adds one step here: v1 -> v2 -> ... (never edit old steps).
    return data


def load_record(path: str | Path) -> RunRecord:
    data = json.loads(Path(path).read_text())
    return RunRecord.model_validate(_upgrade(data))
