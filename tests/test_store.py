"""The DuckDB store: idempotent ingest, corrupt input, concurrent writers, per-sample files."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leaderboards._synthetic import write_eval_cell
from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
from leaderboards.samples import SAMPLES_SCHEMA, read_samples, write_samples
from leaderboards.store import IngestWarning, ingest


def _counts(db) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("records", "task_results", "samples")
        }
    finally:
        con.close()


def _query(db, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _grid(results, n_models=2) -> list[RunRecord]:
    return [
        write_eval_cell(
            results,
            f"model-{m}",
            stage,
            {
                "math": {"version": "1", "scores": [float((d + i) % 3 == 0) for d in range(30)]},
                "nli": {"version": "1", "scores": [float(d % 2) for d in range(20)]},
            },
        )
        for m in range(n_models)
        for i, stage in enumerate(["base", "sft", "sft+grpo"])
    ]


# --- per-sample files -------------------------------------------------------------


def test_samples_roundtrip_and_defaults(tmp_path):
    rows = [
        {
            "cell_key": "k",
            "task": "t",
            "doc_id": 1,
            "score": 1.0,
            "completion": "full text",
            "meta": {"kind": "parent", "num_variables": 4},
        },
        {"cell_key": "k", "task": "t", "doc_id": 2, "score": 0.5, "answer": "7", "logprob": -1.5},
        {"cell_key": "k", "task": "t", "doc_id": 3, "score": 0.4, "correct": True, "prompt": "Q?"},
    ]
    path = write_samples(rows, tmp_path / "s" / "t.parquet")
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temp file left behind
    table = read_samples(path)
    assert table.schema == SAMPLES_SCHEMA
    got = table.to_pylist()
    assert [r["correct"] for r in got] == [True, True, True]  # score >= 0.5, or as given
    assert json.loads(got[0]["meta"]) == {"kind": "parent", "num_variables": 4}
    assert got[0]["completion"] == "full text" and got[1]["logprob"] == -1.5
    assert got[2]["prompt"] == "Q?" and got[0]["prompt"] is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"cell_key": "k", "task": "t", "doc_id": 1, "score": 1.5}, "'score'=1.5 must be in"),
        ({"cell_key": "k", "task": "t", "score": 1.0}, "lacks required field 'doc_id'"),
        ({"cell_key": "k", "task": "t", "doc_id": 1, "score": 1, "tokens": 3}, "unknown field"),
    ],
)
def test_write_samples_rejects_bad_rows(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        write_samples([row], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_write_samples_rejects_duplicate_doc_ids(tmp_path):
    row = {"cell_key": "k", "task": "t", "doc_id": 1, "score": 1.0}
    with pytest.raises(ValueError, match="duplicate doc_id 1"):
        write_samples([row, row], tmp_path / "x.parquet")


def test_read_samples_fills_optional_columns_and_names_bad_files(tmp_path):
    minimal = pa.table(
        {"cell_key": ["k"], "task": ["t"], "doc_id": [3], "score": [0.0], "correct": [False]}
    )
    pq.write_table(minimal, tmp_path / "min.parquet")
    t = read_samples(tmp_path / "min.parquet")
    assert t.schema == SAMPLES_SCHEMA and t.column("completion").to_pylist() == [None]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="bad.parquet: not a readable Parquet"):
        read_samples(tmp_path / "bad.parquet")
    pq.write_table(pa.table({"task": ["t"]}), tmp_path / "nocol.parquet")
    with pytest.raises(ValueError, match="lacks required column 'cell_key'"):
        read_samples(tmp_path / "nocol.parquet")


# --- ingest ---------------------------------------------------------------------


def test_ingest_is_idempotent(tmp_path):
    _grid(tmp_path)
    first = ingest(tmp_path)
    counts = _counts(tmp_path / "bench.duckdb")
    # 6 cells; 2 tasks × 1 metric each; 50 samples per cell
    assert counts == {"records": 6, "task_results": 12, "samples": 300}
    assert (first.loaded, first.sample_rows, first.warnings) == (6, 300, [])
    second = ingest(tmp_path)
    assert _counts(tmp_path / "bench.duckdb") == counts
    assert (second.loaded, second.replaced, second.unchanged, second.sample_rows) == (0, 0, 6, 0)


def test_reingest_of_a_recomputed_cell_replaces_it(tmp_path):
    key = _grid(tmp_path, n_models=1)[1].cell_key
    ingest(tmp_path)
    # --force recomputes the same cell key with different results
    rec = write_eval_cell(
        tmp_path, "model-0", "sft", {"math": {"version": "1", "scores": [1.0] * 10}}, cell_key=key
    )
    report = ingest(tmp_path)
    assert (report.replaced, report.loaded) == (1, 0)
    db = tmp_path / "bench.duckdb"
    assert _counts(db) == {"records": 3, "task_results": 5, "samples": 50 * 2 + 10}
    assert _query(
        db, "SELECT task, value, n FROM task_results WHERE cell_key = ?", [rec.cell_key]
    ) == [("math", 1.0, 10)]


def test_deleted_record_is_removed(tmp_path):
    _grid(tmp_path, n_models=1)
    ingest(tmp_path)
    victim = sorted((tmp_path / "records").glob("*.json"))[0]
    key = json.loads(victim.read_text())["cell_key"]
    victim.unlink()
    assert ingest(tmp_path).removed == 1
    db = tmp_path / "bench.duckdb"
    assert _counts(db) == {"records": 2, "task_results": 4, "samples": 100}
    assert _query(db, "SELECT count(*) FROM samples WHERE cell_key = ?", [key]) == [(0,)]


def test_a_file_rewritten_with_another_cell_replaces_the_old_rows(tmp_path):
    recs = _grid(tmp_path, n_models=1)
    ingest(tmp_path)
    path = sorted((tmp_path / "records").glob("*.json"))[0]
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data | {"cell_key": "renamed"}))
    report = ingest(tmp_path)
    assert (report.loaded, report.removed) == (1, 1)
    keys = {k for (k,) in _query(tmp_path / "bench.duckdb", "SELECT cell_key FROM records")}
    assert keys == {r.cell_key for r in recs} - {data["cell_key"]} | {"renamed"}


def test_corrupt_records_are_skipped_with_a_warning_naming_them(tmp_path):
    _grid(tmp_path, n_models=1)
    records = tmp_path / "records"
    (records / "eval-broken.json").write_text('{"kind": "eval", "cell_key": ')  # invalid JSON
    good = json.loads(next(records.glob("*.json")).read_text())
    (records / "eval-noschema.json").write_text(
        json.dumps({k: v for k, v in good.items() if k != "model_id"})
    )
    (records / "eval-extra.json").write_text(json.dumps(good | {"cell_key": "x2", "surprise": 1}))
    (records / "eval-empty.json").write_text("")
    with pytest.warns(IngestWarning) as caught:
        report = ingest(tmp_path)
    messages = sorted(str(w.message) for w in caught)
    assert messages == sorted(report.warnings)
    named = {m.split(":")[0].rsplit("/", 1)[-1] for m in report.warnings}
    assert named == {"eval-broken.json", "eval-noschema.json", "eval-extra.json", "eval-empty.json"}
    assert any("field 'model_id'" in m for m in report.warnings)
    assert any("field 'surprise'" in m for m in report.warnings)
    assert all("\n" not in m for m in report.warnings)  # one line each
    assert _counts(tmp_path / "bench.duckdb")["records"] == 3  # the valid ones all loaded


def test_bad_or_missing_samples_file_keeps_the_record(tmp_path):
    _grid(tmp_path, n_models=1)
    files = sorted((tmp_path / "samples").rglob("*.parquet"))
    files[0].write_bytes(b"garbage")
    files[1].unlink()
    with pytest.warns(IngestWarning):
        report = ingest(tmp_path)
    assert len(report.warnings) == 2
    assert any(str(files[0]) in w and "skipped" in w for w in report.warnings)
    assert any(files[1].name in w and "not found" in w for w in report.warnings)
    counts = _counts(tmp_path / "bench.duckdb")
    assert counts["records"] == 3 and counts["task_results"] == 6
    assert counts["samples"] == 150 - sum(30 if f.name == "math.parquet" else 20 for f in files[:2])


def test_duplicate_cell_key_in_two_files_loads_once(tmp_path):
    _grid(tmp_path, n_models=1)
    src = sorted((tmp_path / "records").glob("*.json"))[0]
    shutil.copy(src, src.with_name("eval-copy.json"))
    with pytest.warns(IngestWarning, match="same cell_key and kind"):
        report = ingest(tmp_path)
    assert _counts(tmp_path / "bench.duckdb")["records"] == 3 and len(report.warnings) == 1


def test_stderr_falls_back_to_samples(tmp_path):
    scores = [1.0, 1.0, 0.0, 0.0, 1.0]
    rec = write_eval_cell(
        tmp_path, "m", "base", {"t": {"version": "1", "scores": scores}}, record_stderr=False
    )
    write_eval_cell(tmp_path, "m", "sft", {"t": {"version": "1", "scores": scores, "stderr": 0.5}})
    ingest(tmp_path)
    rows = dict(
        (k, (se, src))
        for k, se, src in _query(
            tmp_path / "bench.duckdb", "SELECT cell_key, stderr, stderr_source FROM task_results"
        )
    )
    se, src = rows.pop(rec.cell_key)
    assert src == "samples" and se == pytest.approx(math.sqrt(0.6 * 0.4 / 4))
    assert list(rows.values()) == [(0.5, "record")]  # lm-eval's value wins when present


def test_a_locked_database_is_a_one_line_error(tmp_path, monkeypatch):
    import subprocess
    import sys

    from leaderboards import store

    monkeypatch.setattr(store, "LOCK_WAIT_S", 0.5)

    _grid(tmp_path, n_models=1)
    db = tmp_path / "bench.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(ValueError, match="bench.duckdb: locked by another process"):
            ingest(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_missing_records_dir_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="no records directory"):
        ingest(tmp_path / "nope")


# --- 8 concurrent writers --------------------------------------------------------

_PER_WRITER = 40


def _writer(results: str, w: int) -> None:
    for i in range(_PER_WRITER):
        metrics = {
            f"m{j}": MetricValue(value=(w * 1000 + i) / 1e6, stderr=0.01, n=100) for j in range(20)
        }
        rec = RunRecord(
            kind="eval",
            cell_key=f"w{w}-c{i:03d}",
            model_id=f"model-{w}",
            stage="base",
            tasks=[TaskResult(name="t", version="1", primary_metric="m0", metrics=metrics)],
        )
        write_record(rec, results)


def test_eight_processes_writing_records_while_ingesting(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(8)]
    (tmp_path / "records").mkdir()
    for p in procs:
        p.start()
    # Ingest while they write: every record visible must be complete (atomic rename).
    while any(p.is_alive() for p in procs):
        report = ingest(tmp_path)
        assert report.warnings == []
    for p in procs:
        p.join()
        assert p.exitcode == 0
    report = ingest(tmp_path)
    assert report.warnings == []
    db = tmp_path / "bench.duckdb"
    assert _counts(db)["records"] == 8 * _PER_WRITER
    assert _counts(db)["task_results"] == 8 * _PER_WRITER * 20
    values = _query(
        db, "SELECT cell_key, value FROM task_results WHERE metric = 'm0' ORDER BY cell_key"
    )
    expected = sorted(
        (f"w{w}-c{i:03d}", (w * 1000 + i) / 1e6) for w in range(8) for i in range(_PER_WRITER)
    )
    assert values == expected
    assert not [p for p in (tmp_path / "records").iterdir() if p.suffix != ".json"]  # no temp files
