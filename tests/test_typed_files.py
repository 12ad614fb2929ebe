"""Every file bench writes across a package or process boundary is a typed, versioned model
(issue 30): the stage manifest, the record's train summary, a stage's cell.json, a failed
cell's failure file and bench analyze's documents. Each round-trips, a file of an older version
loads through its upgrade steps, the store's record and failure columns are the one
declaration, and a failed cell is listed by `bench grid show` and on the board."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from leaderboards._synthetic import write_eval_cell
from leaderboards.analysis_doc import BehaviorDoc, WeightsDoc, parse_analysis
from leaderboards.columns import FAILURE_COLUMNS, RECORD_COLUMNS
from leaderboards.record import SCHEMA_VERSION, RunRecord, TrainSummary, load_record, write_record
from leaderboards.sidecar import FailureRecord, StageCell, read_failure, read_stage_cell
from trainers.manifest import Manifest, read_manifest

FIXTURES = Path(__file__).parent / "fixtures"
BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]

# The manifest the first bench wrote (trainers/manifest.py at the first trainers commit): none
# of trust_remote_code, machine_settings, the stage's own peaks or resumed_cost yet.
FIRST_MANIFEST = {
    "method": "distill",
    "base_model": "/cache/smollm2-135m-instruct",
    "base_weights": "/cache/smollm2-135m-instruct",
    "parent": None,
    "output_dir": "results/checkpoints/a1b2c3d4e5f60718",
    "mode": "lora",
    "adapter": "adapter",
    "merged": None,
    "data": {"source": "arithmetic(levels=1)", "rows": 16, "sha256": "ab" * 32},
    "steps": 20,
    "final_loss": 0.4,
    "losses": [1.5, 0.4],
    "tokens": 5120,
    "tokens_per_s": 120.0,
    "peak_memory_gb": {"after_load": 0.6, "after_train": 0.9},
    "planned_memory_gb": 1.1,
    "plan": {"per_device_batch": 4, "grad_accum": 1},
    "wall_s": 300.5,
    "seed": 0,
    "target": "cpu",
    "world_size": 1,
    "resumed_from": None,
    "stopped_early": False,
    "packages": {"torch": "2.5.1"},
    "git_commit": "8101b6e",
    "git_dirty": False,
    "config_file": "config.yaml",
    "manifest_version": 1,
    "created_at": "2026-11-20T12:00:00+00:00",
}


# --- the stage manifest ----------------------------------------------------------------------


def test_a_manifest_round_trips_and_the_first_version_loads(tmp_path, stage_manifest):
    m = stage_manifest(
        tmp_path / "s",
        steps=3,
        losses=[1.0, 0.5],
        final_loss=0.5,
        machine_settings={"rollout_dtype": "bf16"},
        peak_rss_bytes=123_000_000,
        resumed_cost={"tokens": 10.0, "train_s": 1.0, "wall_s": 2.0},
    )
    assert read_manifest(tmp_path / "s") == m
    first = tmp_path / "first"
    first.mkdir()
    (first / "manifest.json").write_text(json.dumps(FIRST_MANIFEST))
    old = read_manifest(first)
    assert old.steps == 20 and old.losses == [1.5, 0.4] and old.stopped_early is False
    # fields added since take their defaults
    assert old.machine_settings == {} and old.trust_remote_code is False
    assert old.peak_rss_bytes is None and old.peak_cuda_bytes is None and old.resumed_cost is None


@pytest.mark.parametrize(
    "change, error",
    [
        ({"steps": None}, "field 'steps': NoneType, not int"),
        ({"steps": "20"}, "field 'steps': str, not int"),
        ({"steps": True}, "field 'steps': bool, not int"),
        ({"colour": "red"}, "field 'colour': not a manifest field"),
        ({"manifest_version": 7}, "field 'manifest_version': 7; this bench reads up to 1"),
    ],
)
def test_a_manifest_that_is_not_one_names_the_field(tmp_path, change, error):
    (tmp_path / "manifest.json").write_text(json.dumps({**FIRST_MANIFEST, **change}))
    with pytest.raises(ValueError, match="manifest.json: not a bench stage manifest") as e:
        read_manifest(tmp_path)
    assert error in str(e.value)
    missing = {k: v for k, v in FIRST_MANIFEST.items() if k != "tokens"}
    assert Manifest.from_dict(FIRST_MANIFEST).tokens == 5120
    with pytest.raises(ValueError, match="field 'tokens': missing"):
        Manifest.from_dict(missing)


def test_the_train_summary_is_the_manifest_fields_of_the_same_name():
    """The runner fills TrainSummary field by field from the Manifest (harness/runner.py)."""
    manifest = {f.name: f for f in dataclasses.fields(Manifest)}
    assert set(TrainSummary.model_fields) <= set(manifest)
    summary = TrainSummary(
        **{f: getattr(Manifest.from_dict(FIRST_MANIFEST), f) for f in TrainSummary.model_fields}
    )
    assert summary == TrainSummary(
        steps=20,
        stopped_early=False,
        final_loss=0.4,
        tokens=5120,
        world_size=1,
        resumed_from=None,
        planned_memory_gb=1.1,
        peak_memory_gb={"after_load": 0.6, "after_train": 0.9},
    )


# --- the run record: schema 4's train summary, and the committed schema 2 fixture -----------


def test_a_train_record_round_trips_with_its_summary(tmp_path):
    rec = RunRecord(
        kind="train",
        cell_key="ab12",
        model_id="m",
        stage="sft",
        train=TrainSummary(
            steps=4,
            stopped_early=True,
            final_loss=0.25,
            tokens=100,
            world_size=2,
            resumed_from="checkpoints/checkpoint-2",
            planned_memory_gb=1.5,
            peak_memory_gb={"after_load": 0.5, "after_train": 0.75},
        ),
    )
    assert load_record(write_record(rec, tmp_path)) == rec


def test_schema_2_fixture_records_upgrade_to_a_typed_train_summary():
    files = sorted((FIXTURES / "records_v2" / "records").glob("*.json"))
    evals, trains = (
        [load_record(p) for p in files if p.name.startswith(k)] for k in ("eval", "train")
    )
    (ev,), (tr,) = evals, trains
    assert {ev.schema_version, tr.schema_version} == {SCHEMA_VERSION} and SCHEMA_VERSION == 4
    # train_metrics held every numeric manifest field as a float; the summary keeps what it
    # means, as ints where it counts, and leaves unknown what it never held
    assert tr.train == TrainSummary(
        steps=4, final_loss=2.75, tokens=5120, world_size=2, planned_memory_gb=1.42
    )
    assert tr.train.stopped_early is None and tr.train.resumed_from is None
    assert ev.train is None
    assert (tr.process_peak_bytes, ev.process_peak_bytes) == (1_900_000_000, 2_100_000_000)
    assert tr.peak_rss_bytes is None and ev.tasks[0].metrics["exact_match"].value == 0.25


def test_schema_2_fixture_records_render_on_the_board(tmp_path):
    from leaderboards.api import leaderboard

    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "records_v2", results)
    board = json.loads(leaderboard(results, "json"))
    (row,) = board["rows"]
    assert (row["model"], row["stage"]) == ("tiny-random-llama", "distill")
    assert row["cells"]["math_arith@v1"]["value"] == 0.25
    # device-hours: the train record's 41.5 s on the 2 processes its summary kept
    assert row["cost"]["train_hours"] == pytest.approx(41.5 / 3600 * 2)


# --- one declaration of the store's record and failure columns ------------------------------


def test_store_tables_and_rows_are_the_declared_columns(tmp_path):
    from leaderboards.store import connect, ingest

    results = tmp_path / "results"
    shutil.copytree(FIXTURES / "records_v2", results)
    failure = FailureRecord(
        kind="eval", cell_key="ff01", model_id="m2", stage="base", error="RuntimeError: x"
    )
    (results / "failures").mkdir()
    (results / "failures" / "eval-ff01.json").write_text(failure.model_dump_json())
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    try:
        for table, columns in (("records", RECORD_COLUMNS), ("failures", FAILURE_COLUMNS)):
            described = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
            assert described == [c.name for c in columns] + ["source_path", "content_hash"]
        names = ", ".join(f'"{c.name}"' for c in RECORD_COLUMNS)
        rows = con.execute(f"SELECT {names} FROM records WHERE kind = 'train'").fetchall()
        (got,) = [dict(zip([c.name for c in RECORD_COLUMNS], r, strict=True)) for r in rows]
        rec = load_record(results / "records" / "train-5e6f7a8b9c0d1e2f.json")
        for c in RECORD_COLUMNS:
            if c.name != "record_json":
                assert got[c.name] == c.get(rec), c.name
        assert got["world_size"] == 2
        assert con.execute("SELECT cell_key, model_id, error FROM failures").fetchall() == [
            ("ff01", "m2", "RuntimeError: x")
        ]
    finally:
        con.close()


def test_a_failure_whose_cell_has_a_record_since_is_not_listed(tmp_path):
    from leaderboards.api import leaderboard

    results = tmp_path / "results"
    rec = write_eval_cell(results, "m", "base", {"math_arith": {"version": "1", "scores": [1.0]}})
    (results / "failures").mkdir()
    for key in (rec.cell_key, "ff02"):  # the first failed before, then ran
        f = FailureRecord(kind="eval", cell_key=key, model_id="m", stage="base", error=f"E {key}")
        (results / "failures" / f"eval-{key}.json").write_text(f.model_dump_json())
    failures = json.loads(leaderboard(results, "json"))["failures"]
    assert [f["cell_key"] for f in failures] == ["ff02"]
    (results / "failures" / "eval-ff02.json").unlink()  # the folder is the truth
    assert json.loads(leaderboard(results, "json"))["failures"] == []


# --- cell.json and failure files -------------------------------------------------------------


def test_a_stage_cell_round_trips_and_an_unversioned_one_loads(tmp_path):
    cell = StageCell(
        cell_key="ab12",
        grid="smoke",
        model="m",
        stage="distill+grpo",
        recipe=["distill", "grpo"],
        parent_key="cd34",
        inputs={"seed": 0},
    )
    (tmp_path / "cell.json").write_text(cell.model_dump_json(indent=2))
    assert read_stage_cell(tmp_path / "cell.json") == cell
    # as the runner wrote it before the type: the same fields, no version
    old = {k: v for k, v in cell.model_dump().items() if k != "version"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_stage_cell(tmp_path / "old.json") == cell
    (tmp_path / "bad.json").write_text(json.dumps({**old, "parent_key": "../x"}))
    with pytest.raises(ValueError, match="parent_key"):
        read_stage_cell(tmp_path / "bad.json")


def test_a_failure_round_trips_and_a_version_1_file_upgrades(tmp_path):
    failure = FailureRecord(
        kind="train",
        cell_key="ab12",
        model_id="org/model",
        stage="sft",
        error="RuntimeError: boom",
        traceback="Traceback (most recent call last): ...",
        at=datetime(2026, 12, 1, 10, tzinfo=UTC),
    )
    (tmp_path / "train-ab12.json").write_text(failure.model_dump_json())
    assert read_failure(tmp_path / "train-ab12.json") == failure
    # version 1: cell (model/stage) and key; its kind only in the file name
    v1 = {
        "cell": "org/model/sft",
        "key": "ab12",
        "error": "RuntimeError: boom",
        "traceback": "Traceback (most recent call last): ...",
        "at": "2026-12-01T10:00:00+00:00",
    }
    (tmp_path / "eval-ab12.json").write_text(json.dumps(v1))
    assert read_failure(tmp_path / "eval-ab12.json") == failure.model_copy(update={"kind": "eval"})
    # the short one a full disk left: no traceback, no time
    short = {k: v1[k] for k in ("cell", "key", "error")}
    (tmp_path / "eval-ab13.json").write_text(json.dumps(short))
    got = read_failure(tmp_path / "eval-ab13.json")
    assert (got.cell, got.traceback, got.at) == ("org/model/sft", None, None)


# --- bench analyze's documents ---------------------------------------------------------------


def _weights_doc() -> WeightsDoc:
    from leaderboards.weights import TensorDiff, WeightDiff

    q = TensorDiff(
        name="model.layers.0.self_attn.q_proj.weight",
        layer=0,
        module="q_proj",
        numel=6,
        shape=[2, 3],
        sparsity={"0": 2 / 6},
        rel_norm=0.5,
        sq_delta=1.0,
        sq_a=4.0,
    )
    norm = TensorDiff(
        name="model.norm.weight",
        layer=None,
        module="norm",
        numel=2,
        shape=[2],
        sparsity={"0": 1.0},
        rel_norm=0.0,
        spectral_drift=math.nan,  # written as null
        sq_delta=0.0,
        sq_a=4.0,
    )
    diff = WeightDiff(a="A", b="B", dtype="fp32", mode="full", tols=["0"], tensors=[q, norm])
    diff.meta = {"label": "m/base → m/sft", "model_id": "m", "stage_a": "base", "stage_b": "sft"}
    return diff.document()


def test_a_weights_document_round_trips_and_a_version_0_one_upgrades(tmp_path):
    doc = _weights_doc()
    # ‖ΔW‖ over ‖W_A‖ across tensors: √(1 / 8); sparsity weighted by numel: (2 + 2) / 8
    assert doc.summary.rel_norm == pytest.approx(math.sqrt(1 / 8))
    assert doc.summary.sparsity == {"0": pytest.approx(0.5)}
    assert doc.tensors[1].spectral_drift is None and doc.label == "m/base → m/sft"
    assert parse_analysis(doc.model_dump_json(), "weights") == doc
    v0 = doc.model_dump(exclude={"schema_version", "kind"})  # as WeightDiff.to_dict wrote it
    assert parse_analysis(json.dumps(v0), "weights") == doc
    with pytest.raises(ValueError, match="field 'kind': 'weights', not 'behavior'"):
        parse_analysis(doc.model_dump_json(), "behavior")  # a file named for the other kind


BEHAVIOR_V0 = {  # as bench analyze behavior --store wrote it before the type
    "kind": "behavior",
    "model_id": "m",
    "stage": "sft",
    "task_version": "1",
    "cell_key": "ab12",
    "task": "math_arith",
    "length_unit": "words (whitespace; no gen_tokens)",
    "figures": {
        "n_prompts": 2,
        "n_samples": 8,
        "samples_per_prompt": 4,
        "score": 0.375,
        "reasoning_len_mean": 3.0,
        "reasoning_len_median": 3.0,
        "answer_len_mean": 1.0,
        "answer_len_median": 1.0,
        "truncation_rate": None,
        "score_completed": None,
        "distinct_answers": 2.5,
        "answer_entropy": 1.2,
        "sc_confidence": 0.625,
        "sc_accuracy": 0.5,
        "ece": 0.375,
        "brier": 0.15625,
        "repetition": 0.0,
        "repetition_n": 4,
    },
    "pass_at_k": {"1": 0.375, "2": 0.5, "4": 0.5},
    "vs_parent": {
        "parent": "cd34",
        "child": "ab12",
        "task": "math_arith",
        "n_shared": 2,
        "deltas": {"score": {"delta": 0.25, "ci": [0.0, 0.5], "p": 0.5}},
        "solved_at_k": {
            "1": {"both": 1, "parent_only": 0, "child_only": 1, "neither": 0, "p": 1.0}
        },
        "pass_at_k": {"1": {"parent": 0.25, "child": 0.375}},
        "crossover_k": None,
        "parent_stage": "base",
    },
}


def test_a_version_0_behavior_document_upgrades_and_is_ingested(tmp_path):
    from leaderboards.store import connect, ingest

    doc = parse_analysis(json.dumps(BEHAVIOR_V0), "behavior")
    assert isinstance(doc, BehaviorDoc) and doc.schema_version == 1
    assert (doc.pass_at_1, doc.pass_at_n, doc.vs_parent.solved_at_k["1"].child_only) == (
        0.375,
        0.5,
        1,
    )
    assert parse_analysis(doc.model_dump_json(), "behavior") == doc
    results = tmp_path / "results"
    (results / "records").mkdir(parents=True)
    (results / "analysis").mkdir()
    (results / "analysis" / "behavior-ab12-math_arith.json").write_text(json.dumps(BEHAVIOR_V0))
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    try:
        row = con.execute(
            "SELECT cell_key, parent_cell, pass_at_1, pass_at_n, doc FROM behavior_metrics"
        ).fetchall()
    finally:
        con.close()
    (key, parent, p1, pn, stored) = row[0]
    assert (key, parent, p1, pn) == ("ab12", "cd34", 0.375, 0.5)
    assert json.loads(stored)["schema_version"] == 1  # the store holds the upgraded document


# --- a failed cell through the real CLI ------------------------------------------------------


def _bench(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [*BENCH, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_a_failed_cell_is_listed_by_grid_show_and_on_the_board(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')  # no weights
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "failing",
                "models": [str(broken)],
                "tasks": ["math_arith"],
                "eval": {"limit": 2, "gen_kwargs": {"max_gen_toks": 4}},
            }
        )
    )
    results = tmp_path / "results"
    # a finished cell of another grid beside it: the failure must not hide behind a full board
    write_eval_cell(results, "m", "base", {"math_arith": {"version": "1", "scores": [1.0, 0.0]}})
    run = _bench("train+eval", "--grid", grid, "--results", results)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    (path,) = (results / "failures").glob("eval-*.json")
    failure = read_failure(path)
    assert failure.model_id == "broken-model" and failure.stage == "base" and failure.traceback

    rows = json.loads(_bench("grid", "show", grid, "--results", results, "--json").stdout)
    (row,) = rows
    assert (row["key"], row["status"]) == (failure.cell_key, "failed")
    assert row["why"] == f"failed before: {failure.first_line}"[:160]
    table = _bench("grid", "show", grid, "--results", results).stdout
    assert "failed" in table and failure.cell_key in table

    board = _bench("leaderboard", "--results", results)
    assert board.returncode == 0, board.stderr[-2000:]
    out = board.stdout
    assert "| m " in out or " m " in out  # the finished row is still there
    assert "1 failed cell(s) without a record" in out
    assert f"failed eval broken-model/base [{failure.cell_key}]: {failure.first_line}" in out
    md = _bench("leaderboard", "--results", results, "--format", "md").stdout
    assert f"[{failure.cell_key}]" in md.replace("\\[", "[").replace("\\]", "]")
    listed = json.loads(_bench("leaderboard", "--results", results, "--format", "json").stdout)
    assert listed["failures"] == [
        {
            "kind": "eval",
            "model": "broken-model",
            "stage": "base",
            "cell_key": failure.cell_key,
            "error": failure.first_line,
        }
    ]
