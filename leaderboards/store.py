"""Ingest run records and their per-sample rows into DuckDB (``results/bench.duckdb``).

Cells only write files; this is the one process that writes the database. Ingest is
idempotent and mirrors the results dir: a record is keyed by (cell_key, kind) and by
the sha256 of its file, so an unchanged file is skipped, a re-computed one (``--force``)
replaces its rows, and rows whose file was deleted are removed. A corrupt or invalid
record is skipped with a warning naming the file; the rest load. The failure files under
``results/failures/`` are mirrored into ``failures`` the same way, so the board lists the
cells that failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from bench_core.errors import BenchError
from leaderboards._rows import IngestWarning, insert_rows, record_row, registered, task_rows
from leaderboards.analysis_store import create_analysis_schema, ingest_analysis
from leaderboards.columns import FAILURE_COLUMNS, row
from leaderboards.contamination import contamination_rows
from leaderboards.curves import curve_rows, read_log_history
from leaderboards.record import one_line, parse_record
from leaderboards.samples import SAMPLES_SCHEMA, STORED_FIELDS, resolve_samples_file
from leaderboards.sidecar import parse_failure
from leaderboards.sql import create_schema, pair_counts_sql

__all__ = [
    "IngestReport",
    "IngestWarning",
    "ingest",
    "connect",
    "default_db_path",
    "writable_store",
]

_BATCH = 2000  # samples files per read_parquet call


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


def _can_write(db: Path) -> bool:
    folder = db.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:  # a read-only mount (root too)
            return False
    except OSError:
        return False
    if db.exists():  # duckdb writes a .wal beside the file
        return os.access(db, os.W_OK) and os.access(folder, os.W_OK)
    return os.access(folder, os.W_OK)


@contextmanager
def writable_store(results_dir: str | Path, db_path: str | Path | None = None):
    """The store's path, or, when the results folder cannot be written (a read-only mount, a
    colleague's folder), a copy of it in a temporary folder: the board renders either way and
    nothing in the results folder is touched."""
    db = Path(db_path) if db_path is not None else default_db_path(results_dir)
    if _can_write(db):
        yield db
        return
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        copy = Path(tmp) / db.name
        if db.is_file() and os.access(db, os.R_OK):
            shutil.copyfile(db, copy)  # a head start; ingest brings it up to date
        yield copy


# A concurrent `bench leaderboard` holds the store's lock for its ingest and render (seconds):
# wait for it, so a grid's own final board is not lost to it.
LOCK_WAIT_S = float(os.environ.get("BENCH_STORE_WAIT", "120"))


def connect(db_path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store; a writable connection also creates tables and views. A store another
    process holds is waited for (up to ``LOCK_WAIT_S``), then one line says who holds it."""
    if read_only and not Path(db_path).exists():
        raise BenchError(f"{db_path}: no leaderboard database; run `bench leaderboard` to ingest")
    deadline, pause = time.monotonic() + LOCK_WAIT_S, 0.05
    while True:
        try:
            return _connect(db_path, read_only)
        except _Locked:
            if time.monotonic() >= deadline:
                raise BenchError(
                    f"{db_path}: locked by another process (another `bench leaderboard`?); "
                    "retry when it has finished"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


class _Locked(Exception):
    pass


def _connect(db_path: str | Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise _Locked from None
        if "not a valid duckdb" not in str(e).lower() and "corrupt" not in str(e).lower():
            raise BenchError(f"{db_path}: cannot open ({str(e).splitlines()[0]})") from None
        if read_only:
            raise BenchError(
                f"{db_path}: corrupt; it is a cache of the records: delete it, or run "
                "`bench leaderboard` to rebuild it"
            ) from None
        con = _rebuilt(Path(db_path))
    con.execute("SET enable_progress_bar = false")  # the CLI owns stdout
    if not read_only:
        create_schema(con)
        create_analysis_schema(con)
    return con


def _rebuilt(db_path: Path) -> duckdb.DuckDBPyConnection:
    """A fresh store in place of a corrupt one: the records are the truth, the store a cache of
    them, so ingest refills it. The corrupt file is kept beside it for a post-mortem."""
    aside = db_path.with_name(f"{db_path.name}.corrupt-{int(time.time())}")
    db_path.rename(aside)
    wal = db_path.with_name(db_path.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    warnings.warn(
        f"{db_path}: corrupt; moved to {aside.name} and rebuilt from the records",
        IngestWarning,
        stacklevel=3,
    )
    return duckdb.connect(str(db_path))


def _warn(report: IngestReport, msg: str) -> None:
    report.warnings.append(msg)
    warnings.warn(msg, IngestWarning, stacklevel=3)


_one_line = one_line


def _sample_select() -> str:
    types = {
        pa.string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
    }
    parts = []
    for f in (f for f in SAMPLES_SCHEMA if f.name in STORED_FIELDS):
        parts.append(
            f"m.{f.name}"
            if f.name in ("cell_key", "task")
            else f"CAST(p.{f.name} AS {types[f.type]})"
        )
    return ", ".join(parts)


class _SamplesError(Exception):
    """A samples batch failed inside the ingest transaction (the caller finds the bad file)."""


def _load_samples(con, manifest: list[dict], table: str = "samples") -> int:
    select = _sample_select()
    before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    for start in range(0, len(manifest), _BATCH):
        try:
            _load_batch(con, manifest[start : start + _BATCH], select, table)
        except duckdb.Error as e:
            raise _SamplesError(str(e)) from e
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before


def _bad_samples(con, manifest: list[dict], report: IngestReport) -> set[str]:
    """Find the samples files that fail to load (slow path, outside any transaction)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _probe AS FROM samples LIMIT 0")
    select, bad = _sample_select(), set()
    try:
        for start in range(0, len(manifest), _BATCH):
            batch = manifest[start : start + _BATCH]
            try:
                _load_batch(con, batch, select, "_probe")
            except duckdb.Error:
                for one in batch:
                    try:
                        _load_batch(con, [one], select, "_probe")
                    except duckdb.Error as e:
                        bad.add(one["filename"])
                        msg = f"samples file {one['filename']} skipped: {_one_line(e)}"
                        _warn(report, f"{one['record']}: {msg}")
            con.execute("DELETE FROM _probe")
    finally:
        con.execute("DROP TABLE IF EXISTS _probe")
    return bad


def _load_batch(con, batch: list[dict], select: str, table: str) -> None:
    files = [b["filename"] for b in batch]
    manifest = pa.Table.from_pylist(batch).select(["filename", "cell_key", "task"])
    with registered(con, "_manifest", manifest):
        con.execute(
            f"INSERT INTO {table} SELECT {select} "
            "FROM read_parquet($files, filename = true, union_by_name = true) p "
            "JOIN _manifest m ON p.filename = m.filename",
            {"files": files},
        )


@dataclass
class _Plan:
    """What one ingest changes: rows to insert, keys to delete, samples files to load."""

    records: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # filename, cell_key, task, record
    delete: list[tuple[str, str]] = field(default_factory=list)  # (cell_key, kind)
    curves: list[dict] = field(default_factory=list)  # train_curves rows of new train records
    failures: list[dict] = field(default_factory=list)  # every failure file of the results dir
    results_dir: Path | None = None


def _plan(con, results_dir: Path, files: list[Path], report: IngestReport) -> _Plan:
    known = {
        src: ((key, kind), digest)
        for key, kind, src, digest in con.execute(
            "SELECT cell_key, kind, source_path, content_hash FROM records"
        ).fetchall()
    }
    in_db = {key for key, _ in known.values()}
    plan, seen, parsed = _Plan(results_dir=results_dir), {}, set()
    for path in files:
        try:
            data = path.read_bytes()  # once: hashed, and parsed when it changed
            digest = hashlib.sha256(data).hexdigest()
            if str(path) in known and known[str(path)][1] == digest:
                report.unchanged += 1
                seen[known[str(path)][0]] = path
                continue
            rec = parse_record(data)
        except (OSError, ValueError) as e:  # JSON, UTF-8 and pydantic errors are ValueErrors
            _warn(report, f"{path}: record skipped: {_one_line(e)}")
            continue
        key = (rec.cell_key, rec.kind)
        if key in seen:
            _warn(report, f"{path}: record skipped: same cell_key and kind as {seen[key]}")
            continue
        seen[key] = path
        parsed.add(str(path))
        if key in in_db:
            plan.delete.append(key)
            report.replaced += 1
        else:
            report.loaded += 1
        plan.records.append(record_row(rec, path, digest))
        plan.tasks.extend(task_rows(rec))
        if rec.kind == "train":
            try:
                history = read_log_history(results_dir, rec.cell_key)
            except (OSError, ValueError) as e:
                _warn(report, f"{path}: training curves skipped: {_one_line(e)}")
                history = None
            plan.curves.extend(curve_rows(rec.cell_key, history or []))
        for t in rec.tasks:
            if t.samples_file is None:
                continue
            sf = resolve_samples_file(results_dir, path, t.samples_file)
            if sf is None:
                _warn(
                    report,
                    f"{path}: task '{t.name}' samples_file {t.samples_file} not found; loaded without samples",
                )
                continue
            plan.samples.append(
                {"filename": str(sf), "cell_key": rec.cell_key, "task": t.name, "record": str(path)}
            )
    plan.failures = _failure_rows(results_dir, report)
    # A record whose file under this results dir is gone (or now holds another record):
    # drop its rows, records are the truth. A file that turned corrupt keeps its old rows.
    prefix = str(results_dir) + "/"
    for src, (key, _) in known.items():
        if src.startswith(prefix) and key not in seen and (src in parsed or not Path(src).exists()):
            plan.delete.append(key)
            report.removed += 1
    return plan


def _failure_rows(results_dir: Path, report: IngestReport) -> list[dict]:
    """A row per readable ``failures/<kind>-<key>.json`` (a few files: all read every time)."""
    rows = []
    for path in sorted((results_dir / "failures").glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = path.read_bytes()
            failure = parse_failure(data, path.name.split("-", 1)[0])
        except (OSError, ValueError) as e:
            _warn(report, f"{path}: failure file skipped: {_one_line(e)}")
            continue
        rows.append(row(FAILURE_COLUMNS, failure, path, hashlib.sha256(data).hexdigest()))
    return rows


def _apply(con, plan: _Plan) -> int:
    """Apply a plan in one transaction; returns the sample rows added."""
    con.execute("BEGIN TRANSACTION")
    _delete(con, plan.delete)
    if plan.results_dir is not None:  # the folder is the truth: this results dir's rows anew
        con.execute(
            "DELETE FROM failures WHERE starts_with(source_path, ?)", [f"{plan.results_dir}/"]
        )
        insert_rows(con, "failures", plan.failures)
    insert_rows(con, "records", plan.records)
    insert_rows(con, "task_results", plan.tasks)
    insert_rows(con, "train_curves", plan.curves)
    n = _load_samples(con, plan.samples)
    evals = [r["cell_key"] for r in plan.records if r["kind"] == "eval"]
    _fill_stderr(con, evals)
    if plan.results_dir is not None:
        insert_rows(con, "contamination", contamination_rows(con, plan.results_dir, evals))
    pending = (
        "(SELECT cell, ref, task FROM leaderboard_pairs "
        "EXCEPT SELECT cell, ref, task FROM paired_counts)"
    )
    con.execute("INSERT INTO paired_counts " + pair_counts_sql(pending))
    con.execute("COMMIT")
    return n


def ingest(results_dir: str | Path, db_path: str | Path | None = None) -> IngestReport:
    """Load ``results_dir/records/*.json`` and their samples into DuckDB; see module doc.

    A record is immutable once written (cells write samples first, then the record), so
    an unchanged record file means unchanged samples too.
    """
    t0 = time.perf_counter()
    results_dir = Path(results_dir).resolve()
    records_dir = results_dir / "records"
    if not records_dir.is_dir() and not (results_dir / "failures").is_dir():
        raise BenchError(f"{records_dir}: no records directory; pass --results DIR of a grid run")
    db_path = Path(db_path) if db_path is not None else default_db_path(results_dir)
    report = IngestReport(db_path=db_path)
    files = sorted(p for p in records_dir.glob("*.json") if not p.name.startswith("."))
    con = connect(db_path)
    con.execute(
        "SET preserve_insertion_order = false"
    )  # row order is meaningless; ~2x faster bulk load
    try:
        plan = _plan(con, results_dir, files, report)
        try:  # fast path: one transaction, samples straight from Parquet
            report.sample_rows = _apply(con, plan)
        except _SamplesError:
            # One bad file aborts the transaction: roll back, name the bad file(s), retry
            # without them. The probe runs only when something is wrong.
            con.execute("ROLLBACK")
            bad = _bad_samples(con, plan.samples, report)
            if not bad:
                raise
            plan.samples = [m for m in plan.samples if m["filename"] not in bad]
            report.sample_rows = _apply(con, plan)
        ingest_analysis(con, results_dir)  # bench analyze's files under results/analysis/
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
    with registered(con, "_stale", k):
        for table in ("records", "task_results"):
            con.execute(
                f"DELETE FROM {table} t WHERE EXISTS "
                "(SELECT 1 FROM _stale s WHERE s.cell_key = t.cell_key AND s.kind = t.kind)"
            )
        evals = "(SELECT cell_key FROM _stale WHERE kind = 'eval')"
        trains = "(SELECT cell_key FROM _stale WHERE kind = 'train')"
        con.execute(f"DELETE FROM samples WHERE cell_key IN {evals}")
        con.execute(f"DELETE FROM contamination WHERE cell_key IN {evals}")
        con.execute(f"DELETE FROM train_curves WHERE cell_key IN {trains}")
        con.execute(f"DELETE FROM paired_counts WHERE cell IN {evals} OR ref IN {evals}")


def _fill_stderr(con, cell_keys: list[str]) -> None:
    """lm-eval's stderr when the record has one, else sample stddev / sqrt(n) (lm-eval's formula)."""
    if not cell_keys:
        return
    with registered(con, "_new", pa.table({"cell_key": cell_keys})):
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
