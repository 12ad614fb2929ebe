"""Record → table rows, and Arrow-to-DuckDB helpers for :mod:`leaderboards.store`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from bench_core.hashing import content_key
from leaderboards.columns import RECORD_COLUMNS, row
from leaderboards.record import RecordWarning, RunRecord

__all__ = ["IngestWarning", "registered", "record_row", "task_rows", "insert_rows"]


class IngestWarning(RecordWarning):
    """A record, samples or analysis file that could not be loaded (the rest of the ingest goes on)."""


@contextmanager
def registered(con, name: str, table: pa.Table):
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def record_row(rec: RunRecord, path: Path, digest: str) -> dict:
    return row(RECORD_COLUMNS, rec, path, digest)


def settings_key(rec: RunRecord, task: str) -> str:
    """What a task's score was measured with, apart from the weights: cells that differ here are
    two columns of the board, never one cell hiding the other."""
    inputs = rec.inputs
    if inputs:
        same = {
            k: v for k, v in inputs.items() if k not in ("weights", "train", "tasks", "verifiers")
        }
        same["verifiers"] = (inputs.get("verifiers") or {}).get(task)
        return content_key(same, 8)
    t = next(t for t in rec.tasks if t.name == task)  # schema v1: the prompt format it recorded
    return content_key(
        {
            "n_shot": t.n_shot,
            "chat": t.chat_template,
            "limit": t.limit,
            "seed": rec.seed,
            "backend": rec.backend,
        },
        8,
    )


def task_rows(rec: RunRecord) -> list[dict]:
    rows = []
    for t in rec.tasks:
        sig = settings_key(rec, t.name)
        for metric, m in t.metrics.items():
            rows.append(
                {
                    "cell_key": rec.cell_key,
                    "kind": rec.kind,
                    "task": t.name,
                    "task_version": t.version,
                    "metric": metric,
                    "is_primary": metric == t.primary_metric,
                    "higher_is_better": t.higher_is_better,
                    "value": m.value,
                    "stderr": m.stderr,
                    "stderr_source": "record" if m.stderr is not None else None,
                    "n": m.n,
                    "n_shot": t.n_shot,
                    "chat_template": t.chat_template,
                    "limit": t.limit,
                    "samples_file": t.samples_file,
                    "settings_key": sig,
                    "settings": t.settings or (f"n≤{t.limit} {t.n_shot}-shot" if t.limit else None),
                    "truncated": t.truncated,
                    "score_completed": t.score_completed,
                    "looping": t.looping,
                }
            )
    return rows


def insert_rows(con, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
    quoted = ", ".join(f'"{c}"' for c in cols)
    with registered(con, "_rows", pa.Table.from_pylist(rows).select(cols)):
        con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM _rows")
