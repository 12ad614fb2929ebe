"""Per-sample rows: one Parquet file per (eval cell, task), written by the harness.

The record's ``TaskResult.samples_file`` points at the file (relative to the results
dir). Rows keep the full completion, the parsed answer and the log-prob when the backend
gives one, so later analysis and re-scoring with a newer verifier need no regeneration.

``score`` is the verifier's value in [0, 1] for the task's primary metric (the metric is
the mean of ``score``). ``correct`` is what paired tests (McNemar) use: the harness may
set it (e.g. think_quality knows whether the answer itself was right); when it is absent
it is ``score >= 0.5``, which for 0/1 verifiers is exactly ``score == 1``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench_core.errors import BenchError

__all__ = [
    "SAMPLES_SCHEMA",
    "STORED_FIELDS",
    "CORRECT_THRESHOLD",
    "samples_path",
    "resolve_samples_file",
    "write_samples",
    "read_samples",
]

CORRECT_THRESHOLD = 0.5

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("cell_key", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("doc_id", pa.int64(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("answer", pa.string()),  # parsed answer; null when nothing parsed
        pa.field("target", pa.string()),
        pa.field("completion", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("logprob", pa.float64()),
        pa.field("meta", pa.string()),  # JSON object of doc metadata
        pa.field("repeat", pa.int64()),  # index of the sample among a prompt's repeats (0 when one)
        pa.field("gen_tokens", pa.int64()),  # tokens generated
        pa.field("truncated", pa.bool_()),  # the generation hit its token cap
        # a multiple-choice doc: each choice's loglikelihood, in the task's choice order
        pa.field("choice_logprobs", pa.list_(pa.float64())),
    ]
)
# Columns the DuckDB store keeps; the rest stay in the Parquet files for `bench analyze`.
STORED_FIELDS = (
    "cell_key",
    "task",
    "doc_id",
    "score",
    "correct",
    "answer",
    "target",
    "completion",
    "prompt",
    "logprob",
    "meta",
    "gen_tokens",
    "truncated",
)
_REQUIRED = ("cell_key", "task", "doc_id", "score")


def samples_path(results_dir: str | Path, cell_key: str, task: str) -> Path:
    """Where the harness puts a cell's samples: ``results/samples/<cell_key>/<task>.parquet``.

    Store ``path.relative_to(results_dir)`` in ``TaskResult.samples_file``.
    """
    return Path(results_dir) / "samples" / cell_key / f"{task}.parquet"


def resolve_samples_file(results_dir: str | Path, record_file: str | Path, rel: str) -> Path | None:
    """The file a record's ``samples_file`` names, or None if it is missing or outside the
    results folder (another run's Parquet would pair foreign samples with this record's).

    The contract is "relative to the results dir"; one relative to the record's folder
    (record.py's comment once said "relative to the record") is accepted too, inside it.
    """
    # os.path on strings, not Path: ingest resolves 20,000 of these, and pathlib's parsing was
    # half of its Python time. abspath, not resolve(): no lstat calls.
    top = os.path.abspath(results_dir) + os.sep
    for cand in (os.path.join(results_dir, rel), os.path.join(os.path.dirname(record_file), rel)):
        cand = os.path.abspath(cand)
        if cand.startswith(top) and os.path.isfile(cand):
            return Path(cand)
    return None


def _meta_json(meta: Any) -> str | None:
    if meta is None or isinstance(meta, str):
        return meta
    return json.dumps(meta, sort_keys=True, default=str)


def _normalize(row: Mapping[str, Any], i: int, path: Path) -> dict[str, Any]:
    unknown = set(row) - set(SAMPLES_SCHEMA.names)
    if unknown:
        raise ValueError(
            f"{path}: sample row {i} has unknown field(s) {sorted(unknown)}; "
            f"allowed: {SAMPLES_SCHEMA.names}"
        )
    for name in _REQUIRED:
        if row.get(name) is None:
            raise ValueError(f"{path}: sample row {i} lacks required field '{name}'")
    score = float(row["score"])
    if not 0.0 <= score <= 1.0 or math.isnan(score):
        raise ValueError(f"{path}: sample row {i} field 'score'={score} must be in [0, 1]")
    correct = row.get("correct")
    return {
        "cell_key": str(row["cell_key"]),
        "task": str(row["task"]),
        "doc_id": int(row["doc_id"]),
        "score": score,
        "correct": bool(score >= CORRECT_THRESHOLD if correct is None else correct),
        "answer": None if row.get("answer") is None else str(row["answer"]),
        "target": None if row.get("target") is None else str(row["target"]),
        "completion": None if row.get("completion") is None else str(row["completion"]),
        "prompt": None if row.get("prompt") is None else str(row["prompt"]),
        "logprob": None if row.get("logprob") is None else float(row["logprob"]),
        "meta": _meta_json(row.get("meta")),
        "repeat": int(row.get("repeat") or 0),
        "gen_tokens": None if row.get("gen_tokens") is None else int(row["gen_tokens"]),
        "truncated": None if row.get("truncated") is None else bool(row["truncated"]),
        "choice_logprobs": None
        if row.get("choice_logprobs") is None
        else [float(v) for v in row["choice_logprobs"]],
    }


def write_samples(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Validate and write rows atomically (temp file + rename): readers never see half a file.

    A (task, doc_id, repeat) triple must be unique: paired tests join two cells on it.
    """
    path = Path(path)
    norm = [_normalize(r, i, path) for i, r in enumerate(rows)]
    seen: set[tuple[str, int]] = set()
    for r in norm:
        key = (r["task"], r["doc_id"], r["repeat"])
        if key in seen:
            raise ValueError(
                f"{path}: duplicate doc_id {key[1]} (repeat {key[2]}) for task '{key[0]}'; "
                "doc_id must be unique per repeat"
            )
        seen.add(key)
    table = pa.Table.from_pylist(norm, schema=SAMPLES_SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_samples(path: str | Path) -> pa.Table:
    """Read a samples file, cast to :data:`SAMPLES_SCHEMA` (missing nullable columns become null)."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise BenchError(f"{path}: not a readable Parquet samples file ({e})") from None
    cols = []
    for field in SAMPLES_SCHEMA:
        if field.name in table.column_names:
            try:
                cols.append(table.column(field.name).cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise BenchError(
                    f"{path}: column '{field.name}' is not {field.type} ({e})"
                ) from None
        elif field.nullable:
            cols.append(pa.nulls(table.num_rows, field.type))
        else:
            raise BenchError(f"{path}: samples file lacks required column '{field.name}'")
    return pa.Table.from_arrays(cols, schema=SAMPLES_SCHEMA)
