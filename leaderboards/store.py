"""Ingest run records and their per-sample rows into DuckDB (``results/bench.duckdb``).

Cells only write files; this is the one process that writes the database. Ingest is
idempotent and mirrors the results dir: a record is keyed by (cell_key, kind) and by
the sha256 of its file, so an unchanged file is skipped, a re-computed one (``--force``)
replaces its rows, and rows whose file was deleted are removed. A corrupt or invalid
record is skipped with a warning naming the file; the rest load.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from leaderboards.record import RunRecord, load_record
from leaderboards.samples import SAMPLES_SCHEMA, resolve_samples_file
from leaderboards.sql import create_schema

__all__ = ["IngestReport", "IngestWarning", "ingest", "connect", "default_db_path"]

_BATCH = 2000  # samples files per read_parquet call


class IngestWarning(UserWarning):
    """A record or samples file that could not be loaded (the rest of the ingest goes on)."""


@dataclass
class IngestReport:
    db_path: Path
    loaded: int = 0  # records new in the DB
    replaced: int = 0  # records whose file changed since the last ingest
    unchanged: int = 0
    removed: int = 0  # records whose file is gone
    sample_rows: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"ingested {self.loaded} new, {self.replaced} replaced, {self.unchanged} unchanged, "
            f"{self.removed} removed records; {self.sample_rows} sample rows; "
            f"{len(self.warnings)} warning(s); {self.seconds:.2f}s -> {self.db_path}"
        )


def default_db_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / "bench.duckdb"


def connect(db_path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store; a writable connection also creates tables and views."""
    if read_only and not Path(db_path).exists():
        raise ValueError(f"{db_path}: no leaderboard database; run `bench leaderboard` to ingest")
    con = duckdb.connect(str(db_path), read_only=read_only)
    if not read_only:
        create_schema(con)
    return con


@contextmanager
def _registered(con, name: str, table: pa.Table):
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def _warn(report: IngestReport, msg: str) -> None:
    report.warnings.append(msg)
    warnings.warn(msg, IngestWarning, stacklevel=3)


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        return f"field '{loc}': {err['msg']} ({e.error_count()} error(s))"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _record_row(rec: RunRecord, path: Path, digest: str) -> dict:
    p = rec.provenance
    return {
        "cell_key": rec.cell_key, "kind": rec.kind, "schema_version": rec.schema_version,
        "grid": rec.grid, "model_id": rec.model_id, "model_revision": rec.model_revision,
        "recipe": list(rec.recipe), "stage": rec.stage, "parent_key": rec.parent_key,
        "checkpoint": rec.checkpoint, "backend": rec.backend, "dtype": rec.dtype,
        "target": rec.target, "seed": rec.seed, "wall_s": rec.wall_s,
        "tokens_per_s": rec.tokens_per_s, "peak_memory_bytes": rec.peak_memory_bytes,
        "git_commit": p.git_commit, "git_dirty": p.git_dirty,
        "container_image": p.container_image, "container_digest": p.container_digest,
        "started_at": rec.started_at, "finished_at": rec.finished_at,
        "source_path": str(path), "content_hash": digest, "record_json": rec.model_dump_json(),
    }


def _task_rows(rec: RunRecord) -> list[dict]:
    rows = []
    for t in rec.tasks:
        for metric, m in t.metrics.items():
            rows.append({
                "cell_key": rec.cell_key, "kind": rec.kind, "task": t.name,
                "task_version": t.version, "metric": metric,
                "is_primary": metric == t.primary_metric, "higher_is_better": t.higher_is_better,
                "value": m.value, "stderr": m.stderr,
                "stderr_source": "record" if m.stderr is not None else None,
                "n": m.n, "n_shot": t.n_shot, "chat_template": t.chat_template,
                "limit": t.limit, "samples_file": t.samples_file,
            })
    return rows


def _insert(con, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
    quoted = ", ".join(f'"{c}"' for c in cols)
    with _registered(con, "_rows", pa.Table.from_pylist(rows).select(cols)):
        con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM _rows")


def _sample_select() -> str:
    types = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}
    parts = []
    for f in SAMPLES_SCHEMA:
        parts.append(f"m.{f.name}" if f.name in ("cell_key", "task") else f"CAST(p.{f.name} AS {types[f.type]})")
    return ", ".join(parts)


def _load_samples(con, manifest: list[dict], report: IngestReport) -> None:
    """Bulk-load samples files; the record, not the file, says which cell and task they are."""
    select = _sample_select()
    for start in range(0, len(manifest), _BATCH):
        batch = manifest[start : start + _BATCH]
        try:
            _load_batch(con, batch, select)
        except duckdb.Error:
            for one in batch:  # find the bad file(s); keep the good ones
                try:
                    _load_batch(con, [one], select)
                except duckdb.Error as e:
                    _warn(report, f"{one['record']}: samples file {one['filename']} skipped: {_one_line(e)}")


def _load_batch(con, batch: list[dict], select: str) -> None:
    files = [b["filename"] for b in batch]
    with _registered(con, "_manifest", pa.Table.from_pylist(batch).select(["filename", "cell_key", "task"])):
        con.execute(
            f"INSERT INTO samples SELECT {select} "
            "FROM read_parquet($files, filename = true, union_by_name = true) p "
            "JOIN _manifest m ON p.filename = m.filename",
            {"files": files},
        )


def ingest(results_dir: str | Path, db_path: str | Path | None = None) -> IngestReport:
    """Load ``results_dir/records/*.json`` and their samples into DuckDB; see module doc."""
    t0 = time.perf_counter()
    results_dir = Path(results_dir).resolve()
    records_dir = results_dir / "records"
    if not records_dir.is_dir():
        raise ValueError(f"{records_dir}: no records directory; pass --results DIR of a grid run")
    db_path = Path(db_path) if db_path is not None else default_db_path(results_dir)
    report = IngestReport(db_path=db_path)
    files = sorted(p for p in records_dir.glob("*.json") if not p.name.startswith("."))
    con = connect(db_path)
    try:
        known = {
            src: (key, kind, digest)
            for key, kind, src, digest in con.execute(
                "SELECT cell_key, kind, source_path, content_hash FROM records"
            ).fetchall()
        }
        by_key = {(k, kind): src for src, (k, kind, _) in known.items()}
        rec_rows, task_rows, manifest, stale, seen = [], [], [], [], {}
        for path in files:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if known.get(str(path), (None, None, None))[2] == digest:
                    report.unchanged += 1
                    seen[known[str(path)][:2]] = path
                    continue
                rec = load_record(path)
            except (OSError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as e:
                _warn(report, f"{path}: record skipped: {_one_line(e)}")
                continue
            key = (rec.cell_key, rec.kind)
            if key in seen:
                _warn(report, f"{path}: record skipped: same cell_key and kind as {seen[key]}")
                continue
            seen[key] = path
            if key in by_key:
                stale.append(key)
                report.replaced += 1
            else:
                report.loaded += 1
            rec_rows.append(_record_row(rec, path, digest))
            task_rows.extend(_task_rows(rec))
            for t in rec.tasks:
                if t.samples_file is None:
                    continue
                sf = resolve_samples_file(results_dir, path, t.samples_file)
                if sf is None:
                    _warn(report, f"{path}: task '{t.name}' samples_file {t.samples_file} not found; loaded without samples")
                else:
                    manifest.append({"filename": str(sf), "cell_key": rec.cell_key, "task": t.name, "record": str(path)})
        # Files under this results dir that vanished: drop their rows (records are the truth).
        present = {str(p) for p in files}
        gone = [
            (k, kind) for src, (k, kind, _) in known.items()
            if src.startswith(str(results_dir) + "/") and src not in present and (k, kind) not in seen
        ]
        report.removed = len(gone)
        con.execute("BEGIN TRANSACTION")
        _delete(con, stale + gone)
        _insert(con, "records", rec_rows)
        _insert(con, "task_results", task_rows)
        before = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        _load_samples(con, manifest, report)
        report.sample_rows = con.execute("SELECT count(*) FROM samples").fetchone()[0] - before
        _fill_stderr(con, [r["cell_key"] for r in rec_rows if r["kind"] == "eval"])
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # no transaction open yet
        raise
    finally:
        con.close()
    report.seconds = time.perf_counter() - t0
    return report


def _delete(con, keys: list[tuple[str, str]]) -> None:
    if not keys:
        return
    k = pa.table({"cell_key": [a for a, _ in keys], "kind": [b for _, b in keys]})
    with _registered(con, "_stale", k):
        for table in ("records", "task_results"):
            con.execute(
                f"DELETE FROM {table} t WHERE EXISTS "
                "(SELECT 1 FROM _stale s WHERE s.cell_key = t.cell_key AND s.kind = t.kind)"
            )
        con.execute("DELETE FROM samples WHERE cell_key IN (SELECT cell_key FROM _stale WHERE kind = 'eval')")


def _fill_stderr(con, cell_keys: list[str]) -> None:
    """lm-eval's stderr when the record has one, else sample stddev / sqrt(n) (lm-eval's formula)."""
    if not cell_keys:
        return
    with _registered(con, "_new", pa.table({"cell_key": cell_keys})):
        con.execute(
            """
            UPDATE task_results t
            SET stderr = coalesce(t.stderr, s.se),
                stderr_source = coalesce(t.stderr_source, CASE WHEN s.se IS NOT NULL THEN 'samples' END),
                n = coalesce(t.n, s.n)
            FROM (SELECT cell_key, task, stddev_samp(score) / sqrt(count(*)) AS se, count(*) AS n
                  FROM samples WHERE cell_key IN (SELECT cell_key FROM _new) GROUP BY cell_key, task) s
            WHERE t.cell_key = s.cell_key AND t.task = s.task AND t.kind = 'eval' AND t.is_primary
            """
        )
