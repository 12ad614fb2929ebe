"""The store's record and failure columns, declared once: name, DuckDB type and how the value
is read from the typed file. ``sql.TABLES`` creates the tables from these lists and ingest
builds its rows from them, so a field reaches the board by one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leaderboards.record import RunRecord, stage_lineage
from leaderboards.sidecar import FailureRecord

__all__ = ["Column", "RECORD_COLUMNS", "FAILURE_COLUMNS", "FILE_COLUMNS", "create_table", "row"]


@dataclass(frozen=True)
class Column:
    name: str
    sql: str  # DuckDB type, NOT NULL where every file has the value
    get: Callable[[Any], Any]


def _lineage(rec: RunRecord, field: str) -> str | None:
    if rec.weights_key is None:  # written without lineage (schema 1): by stage names
        return stage_lineage(rec.model_id, rec.stage)[field]
    return getattr(rec, field)


def _attr(name: str, sql: str) -> Column:
    return Column(name, sql, lambda x: getattr(x, name))


RECORD_COLUMNS: tuple[Column, ...] = (
    _attr("cell_key", "VARCHAR NOT NULL"),
    _attr("kind", "VARCHAR NOT NULL"),
    _attr("schema_version", "INTEGER"),
    _attr("grid", "VARCHAR"),
    _attr("model_id", "VARCHAR NOT NULL"),
    _attr("model_revision", "VARCHAR"),
    Column("recipe", "VARCHAR[]", lambda r: list(r.recipe)),
    _attr("stage", "VARCHAR NOT NULL"),
    _attr("parent_key", "VARCHAR"),
    *(
        Column(f, "VARCHAR", lambda r, f=f: _lineage(r, f))
        for f in ("weights_key", "parent_weights", "base_weights", "parent_stage")
    ),
    _attr("checkpoint", "VARCHAR"),
    _attr("backend", "VARCHAR"),
    _attr("dtype", "VARCHAR"),
    _attr("target", "VARCHAR"),
    _attr("seed", "BIGINT"),
    _attr("wall_s", "DOUBLE"),
    _attr("tokens_per_s", "DOUBLE"),
    _attr("peak_rss_bytes", "BIGINT"),
    _attr("peak_cuda_bytes", "BIGINT"),
    _attr("engine_peak_rss_bytes", "BIGINT"),
    _attr("engine_gpu_bytes", "BIGINT"),
    # train records: the processes it trained in (the board's device-hours)
    Column("world_size", "INTEGER", lambda r: r.train.world_size if r.train else None),
    Column("git_commit", "VARCHAR", lambda r: r.provenance.git_commit),
    Column("git_dirty", "BOOLEAN", lambda r: r.provenance.git_dirty),
    Column("container_image", "VARCHAR", lambda r: r.provenance.container_image),
    Column("container_digest", "VARCHAR", lambda r: r.provenance.container_digest),
    _attr("started_at", "TIMESTAMPTZ"),
    _attr("finished_at", "TIMESTAMPTZ"),
    Column("record_json", "VARCHAR NOT NULL", lambda r: r.model_dump_json()),
)

FAILURE_COLUMNS: tuple[Column, ...] = (
    _attr("cell_key", "VARCHAR NOT NULL"),
    _attr("kind", "VARCHAR NOT NULL"),
    _attr("version", "INTEGER"),
    _attr("model_id", "VARCHAR NOT NULL"),
    _attr("stage", "VARCHAR NOT NULL"),
    _attr("error", "VARCHAR NOT NULL"),
    Column("failed_at", "TIMESTAMPTZ", lambda f: f.at),
)

# Which file a row came from and its sha256: ingest skips an unchanged file.
FILE_COLUMNS = ("source_path VARCHAR NOT NULL", "content_hash VARCHAR NOT NULL")


def create_table(name: str, columns: tuple[Column, ...]) -> str:
    body = ",\n    ".join([*(f'"{c.name}" {c.sql}' for c in columns), *FILE_COLUMNS])
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {body}\n);\n"


def row(
    columns: tuple[Column, ...], value: RunRecord | FailureRecord, path, digest: str
) -> dict[str, Any]:
    return {
        **{c.name: c.get(value) for c in columns},
        "source_path": str(path),
        "content_hash": digest,
    }
