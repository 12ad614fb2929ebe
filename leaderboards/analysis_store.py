"""``bench analyze`` results as files and as store tables.

Each analysis is one JSON document under ``results/analysis/`` (``weights-<id>.json`` per
A → B transition, ``behavior-<cell>-<task>.json`` per cell × task), written atomically. Like
records, the files are the truth: ingest mirrors the folder into ``weight_analysis`` and
``behavior_metrics`` by file name and sha256 (unchanged files skipped, changed ones replaced,
deleted ones removed), so a repeated ingest changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from leaderboards._rows import insert_rows
from leaderboards.analysis_doc import AnalysisDoc, BehaviorDoc, WeightsDoc, parse_analysis
from leaderboards.record import one_line

__all__ = [
    "ANALYSIS_DIR",
    "ANALYSIS_TABLES",
    "json_safe",
    "write_analysis",
    "create_analysis_schema",
    "ingest_analysis",
    "board_panels",
]

ANALYSIS_DIR = "analysis"
ANALYSIS_TABLES = """
CREATE TABLE IF NOT EXISTS weight_analysis (
    source_path VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    a VARCHAR, b VARCHAR, label VARCHAR,
    model_id VARCHAR, stage_a VARCHAR, stage_b VARCHAR,
    dtype VARCHAR, mode VARCHAR,
    n_tensors BIGINT, numel BIGINT, rel_norm DOUBLE,
    sparsity VARCHAR,       -- JSON {tol as written: share}
    doc VARCHAR NOT NULL    -- the whole WeightsDoc (analysis_doc), at this version
);
CREATE TABLE IF NOT EXISTS behavior_metrics (
    source_path VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    cell_key VARCHAR NOT NULL, task VARCHAR NOT NULL,
    model_id VARCHAR, stage VARCHAR, parent_cell VARCHAR,
    samples_per_prompt BIGINT, score DOUBLE, pass_at_1 DOUBLE, pass_at_n DOUBLE,
    reasoning_len_mean DOUBLE, truncation_rate DOUBLE, distinct_answers DOUBLE,
    sc_confidence DOUBLE, ece DOUBLE, repetition DOUBLE,
    doc VARCHAR NOT NULL    -- figures, pass@k and the comparison with the parent stage
);
"""


def json_safe(x):
    """NaN/inf -> None and numpy scalars -> Python numbers: the documents are strict JSON."""
    if hasattr(x, "item") and not isinstance(x, (list, dict, str)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,249}")


def write_analysis(results_dir: str | Path, name: str, doc: AnalysisDoc) -> Path:
    """Write ``results/analysis/<name>.json`` atomically (temp file + rename). ``name`` is a
    slug of checked parts (a cell key, a task name): one file name, never a path, and it
    starts with the document's kind (``weights-``, ``behavior-``), which ingest reads it as."""
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"analysis name {name!r}: not a file name (no '/', '..' or spaces)")
    if not name.startswith(f"{doc.kind}-"):
        raise ValueError(f"analysis name {name!r}: a {doc.kind} document's starts '{doc.kind}-'")
    path = Path(results_dir) / ANALYSIS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(doc.model_dump_json(indent=2))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def create_analysis_schema(con) -> None:
    con.execute(ANALYSIS_TABLES)


def _weight_row(doc: WeightsDoc) -> dict:
    meta, s = doc.meta, doc.summary
    return {
        "a": doc.a,
        "b": doc.b,
        "label": meta.label,
        "model_id": meta.model_id,
        "stage_a": meta.stage_a,
        "stage_b": meta.stage_b,
        "dtype": doc.dtype,
        "mode": doc.mode,
        "n_tensors": s.n_tensors,
        "numel": s.numel,
        "rel_norm": s.rel_norm,
        "sparsity": json.dumps(s.sparsity),
    }


def _behavior_row(doc: BehaviorDoc) -> dict:
    f = doc.figures
    return {
        "cell_key": doc.cell_key,
        "task": doc.task,
        "model_id": doc.model_id,
        "stage": doc.stage,
        "parent_cell": doc.vs_parent.parent if doc.vs_parent else None,
        "samples_per_prompt": f.samples_per_prompt,
        "score": f.score,
        "pass_at_1": doc.pass_at_1,
        "pass_at_n": doc.pass_at_n,
        "reasoning_len_mean": f.reasoning_len_mean,
        "truncation_rate": f.truncation_rate,
        "distinct_answers": f.distinct_answers,
        "sc_confidence": f.sc_confidence,
        "ece": f.ece,
        "repetition": f.repetition,
    }


_KINDS = {
    "weights": ("weight_analysis", _weight_row),
    "behavior": ("behavior_metrics", _behavior_row),
}


def ingest_analysis(con, results_dir: str | Path) -> dict[str, int]:
    """Mirror ``results_dir/analysis/*.json`` into the tables; runs in the caller's transaction."""
    from leaderboards._rows import IngestWarning

    folder = Path(results_dir).resolve() / ANALYSIS_DIR
    counts = {"loaded": 0, "unchanged": 0, "removed": 0}
    known = {}
    for table, _ in _KINDS.values():
        known.update(
            {
                src: (table, h)
                for src, h in con.execute(
                    f"SELECT source_path, content_hash FROM {table}"
                ).fetchall()
            }
        )
    seen = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        kind = path.name.split("-", 1)[0]
        if kind not in _KINDS or path.name.startswith("."):
            continue
        src, data = path.name, path.read_bytes()  # by name: a moved results dir is the same store
        digest = hashlib.sha256(data).hexdigest()
        seen.add(src)
        if src in known and known[src][1] == digest:
            counts["unchanged"] += 1
            continue
        table, to_row = _KINDS[kind]
        try:
            doc = parse_analysis(data, kind)
        except (ValueError, RecursionError) as e:  # JSON, UTF-8 and pydantic errors
            warnings.warn(f"{path}: analysis skipped: {one_line(e)}", IngestWarning, stacklevel=2)
            continue
        row = {
            "source_path": src,
            "content_hash": digest,
            **to_row(doc),
            "doc": doc.model_dump_json(),  # upgraded: the board reads one version
        }
        con.execute(f"DELETE FROM {table} WHERE source_path = ?", [src])
        insert_rows(con, table, [row])
        counts["loaded"] += 1
    for src, (
        table,
        _,
    ) in known.items():  # the folder is the truth: older stores keyed by absolute path too
        if src not in seen:
            con.execute(f"DELETE FROM {table} WHERE source_path = ?", [src])
            counts["removed"] += 1
    return counts


def board_panels(con, board) -> dict[str, list[AnalysisDoc]]:
    """The analyses of the models on the board: weight transitions and behaviour per cell × task."""
    models = sorted({r.model for r in board.rows})
    if not models:
        return {}
    weights = [
        parse_analysis(d, "weights")
        for (d,) in con.execute(
            "SELECT doc FROM weight_analysis WHERE model_id IS NULL OR list_contains($m, model_id) "
            "ORDER BY model_id, stage_b, label",
            {"m": models},
        ).fetchall()
    ]
    cells = sorted({c.cell_key for r in board.rows for c in r.cells.values()})
    behavior = [
        parse_analysis(d, "behavior")
        for (d,) in con.execute(
            "SELECT doc FROM behavior_metrics WHERE list_contains($c, cell_key) ORDER BY model_id, stage, task",
            {"c": cells},
        ).fetchall()
    ]
    return {"weights": weights, "behavior": behavior}
