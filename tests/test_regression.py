"""bench ci check / update: per-sample outcomes against baselines, exact McNemar per cell and task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.regression import (
    baseline_name,
    check_records,
    eval_records,
    load_baselines,
    write_baselines,
)
from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
from leaderboards.samples import samples_path, write_samples

INPUTS = {
    "key_schema": 2,
    "kind": "eval",
    "weights": "w",
    "tasks": {"math_arith": "1.0", "causal_nli": "1.0"},
    "verifiers": {"math_arith": {"math": "1"}, "causal_nli": {"causal_nli": "1"}},
    "eval": {"temperature": 0.0, "limit": 12},
    "packages": {"torch": "2.13.0"},
    "seed": 0,
    "target": "cpu",
}


def write_cell(
    root: Path, key: str, outcomes: dict[str, list[int]], inputs=None, minutes: int = 0
) -> RunRecord:
    """One eval cell of model m/base: per task a 0/1 outcome per doc (answer = '1'/'0' + doc id)."""
    from datetime import UTC, datetime, timedelta

    tasks = []
    for task, outs in outcomes.items():
        rows = [
            {
                "cell_key": key,
                "task": task,
                "doc_id": d,
                "score": float(o),
                "correct": bool(o),
                "answer": f"{o}-{d}",
                "completion": "x",
            }
            for d, o in enumerate(outs)
        ]
        path = write_samples(rows, samples_path(root, key, task))
        tasks.append(
            TaskResult(
                name=task,
                version="1.0",
                primary_metric="acc",
                metrics={"acc": MetricValue(value=sum(outs) / len(outs), n=len(outs))},
                samples_file=str(path.relative_to(root)),
            )
        )
    t = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    rec = RunRecord(
        kind="eval",
        cell_key=key,
        model_id="m",
        stage="base",
        tasks=tasks,
        inputs=inputs or INPUTS,
        started_at=t,
        finished_at=t,
    )
    write_record(rec, root)
    return rec


BASE = {"math_arith": [1] * 10 + [0] * 2, "causal_nli": [1, 0] * 6}


@pytest.fixture
def baselines(tmp_path) -> Path:
    root = tmp_path / "base"
    write_cell(root, "k0", BASE)
    out = tmp_path / "baselines"
    said = write_baselines(eval_records(root), root, out)
    assert said == ["m/base: new baseline (2 tasks)"]
    return out


def test_baseline_file_is_small_and_round_trips(baselines):
    path = baselines / baseline_name("m/base")
    assert path.name == "m__base.json"
    doc = json.loads(path.read_text())  # the one-doc-per-line layout is still JSON
    assert doc["tasks"]["math_arith"]["docs"][0] == [0, 1, 1.0, "1-0"]
    assert doc["tasks"]["math_arith"]["mean"] == round(10 / 12, 4)
    assert doc["inputs"] == INPUTS
    assert path.stat().st_size < 4000


def test_unchanged_outcomes_pass(tmp_path, baselines):
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k0", BASE)
    report = check_records(eval_records(fresh), fresh, load_baselines(baselines))
    assert not report.failed
    assert {c.status for c in report.checks} == {"ok"}
    assert [(c.task, c.n, c.p_value) for c in report.checks] == [
        ("causal_nli", 12, 1.0),
        ("math_arith", 12, 1.0),
        ("(all tasks)", 24, 1.0),
    ]


def test_eight_flips_one_way_is_a_regression_with_the_flips_listed(tmp_path, baselines):
    planted = [0, 2, 3, 4, 5, 6, 7, 9]  # right in the baseline, wrong now
    outs = dict(
        BASE, math_arith=[0 if d in planted else o for d, o in enumerate(BASE["math_arith"])]
    )
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k1", outs)
    report = check_records(eval_records(fresh), fresh, load_baselines(baselines))
    math = next(c for c in report.checks if c.task == "math_arith")
    # exact McNemar: 8 discordant pairs, all one way: p = 2 * 0.5**8
    assert math.p_value == pytest.approx(2 * 0.5**8)
    assert (math.losses, math.gains) == (8, 0)
    assert math.delta == pytest.approx(-8 / 12)
    assert math.status == "regression" and report.failed
    assert [f.doc_id for f in math.flips] == planted
    assert (math.flips[0].old_answer, math.flips[0].new_answer) == ("1-0", "0-0")
    assert math.answers_moved == 8  # the fixture's answers encode the outcome
    assert next(c for c in report.checks if c.task == "causal_nli").status == "ok"


def test_seven_flips_are_listed_but_not_significant(tmp_path, baselines):
    outs = dict(BASE, math_arith=[0] * 7 + BASE["math_arith"][7:])
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k1", outs)
    math = next(
        c
        for c in check_records(eval_records(fresh), fresh, load_baselines(baselines)).checks
        if c.task == "math_arith"
    )
    assert math.p_value == pytest.approx(2 * 0.5**7)  # 0.0156 > 0.01
    assert math.status == "flips" and len(math.flips) == 7


def test_a_changed_key_input_is_reported_as_such_not_as_a_regression(tmp_path, baselines):
    inputs = json.loads(json.dumps(INPUTS))
    inputs["packages"]["torch"] = "2.14.0"
    outs = dict(BASE, math_arith=[0] * 12)
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k2", outs, inputs=inputs)
    report = check_records(eval_records(fresh), fresh, load_baselines(baselines))
    assert {c.status for c in report.checks} == {"changed inputs"}
    assert next(c for c in report.checks if c.task == "math_arith").changed == [
        "packages.torch 2.13.0 -> 2.14.0"
    ]
    assert not report.failed


def test_task_version_change_names_only_that_task(tmp_path, baselines):
    inputs = json.loads(json.dumps(INPUTS))
    inputs["tasks"]["causal_nli"] = "2.0"
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k3", BASE, inputs=inputs)
    checks = {
        c.task: c
        for c in check_records(eval_records(fresh), fresh, load_baselines(baselines)).checks
    }
    assert checks["causal_nli"].changed == ["tasks.causal_nli 1.0 -> 2.0"]
    assert checks["math_arith"].changed == []


def test_cli_check_exits_1_on_a_regression_and_update_says_what_changed(tmp_path, baselines):
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k1", dict(BASE, math_arith=[0] * 12))
    runner = CliRunner()
    args = ["ci", "check", "--no-run", "--results", str(fresh), "--baselines", str(baselines)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert (
        "regression" in res.output and "flip m/base math_arith doc 0: right -> wrong" in res.output
    )
    res = runner.invoke(
        app, ["ci", "update", "--no-run", "--results", str(fresh), "--baselines", str(baselines)]
    )
    assert res.exit_code == 0 and "m/base: 10 flipped docs" in res.output
    assert runner.invoke(app, args).exit_code == 0  # the new baseline is the fresh run


def test_cli_check_without_baselines_is_one_line_exit_2(tmp_path):
    from harness.errors import BenchError

    res = CliRunner().invoke(
        app, ["ci", "check", "--no-run", "--baselines", str(tmp_path / "none")]
    )
    assert isinstance(res.exception, BenchError) and "bench ci update" in str(res.exception)


def test_a_missing_cell_fails(tmp_path, baselines):
    (tmp_path / "fresh" / "records").mkdir(parents=True)
    report = check_records([], tmp_path / "fresh", load_baselines(baselines))
    assert report.missing_cells == ["m/base"] and report.failed


def test_cli_check_names_why_a_missing_cell_failed(tmp_path, baselines):
    fresh = tmp_path / "fresh"
    (fresh / "records").mkdir(parents=True)
    (fresh / "failures").mkdir()
    error = "ValueError: GSM8K: gsm8k_test.jsonl not found; set BENCH_DATA_DIR"
    (fresh / "failures" / "eval-k9.json").write_text(
        json.dumps(
            {"cell": "m/base", "key": "k9", "error": error, "at": "2026-12-02T10:00:00+00:00"}
        )
    )
    # an older failure of the same cell under a key it no longer has: not the one to show
    (fresh / "failures" / "eval-kz.json").write_text(
        json.dumps(
            {"cell": "m/base", "key": "kz", "error": "OldError", "at": "2026-11-01T10:00:00+00:00"}
        )
    )
    res = CliRunner().invoke(
        app, ["ci", "check", "--no-run", "--results", str(fresh), "--baselines", str(baselines)]
    )
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert "missing m/base" in out and "it failed: " + error in out and "eval-k9.json" in out
    assert "OldError" not in out


def test_committed_baselines_are_small_and_match_the_regression_grid():
    from harness.grid import expand, load_grid
    from harness.regression import BASELINES_DIR

    files = sorted(BASELINES_DIR.glob("*.json"))
    assert files, "ci/baselines/ has no baselines: bench ci update"
    cells = {f"{c.model}/{c.stage}" for c in expand(load_grid("regression")).eval}
    assert set(load_baselines(BASELINES_DIR)) == cells
    assert sum(f.stat().st_size for f in files) < 100_000


def test_a_drop_spread_over_tasks_is_caught_by_the_pooled_row(tmp_path, baselines):
    from harness.regression import POOLED

    # 5 flips per task, all one way: p = 2 * 0.5**5 per task; 10 pooled: 2 * 0.5**10 < 0.01
    outs = {"math_arith": [0] * 5 + BASE["math_arith"][5:], "causal_nli": [0] * 12}
    fresh = tmp_path / "fresh"
    write_cell(fresh, "k4", outs)
    checks = {
        c.task: c
        for c in check_records(eval_records(fresh), fresh, load_baselines(baselines)).checks
    }
    assert checks["math_arith"].p_value == pytest.approx(2 * 0.5**5)
    assert checks["causal_nli"].p_value == pytest.approx(2 * 0.5**6)
    assert checks["causal_nli"].status == checks["math_arith"].status == "flips"
    pooled = checks[POOLED]
    assert (pooled.n, pooled.losses, pooled.gains) == (24, 11, 0)
    assert pooled.p_value == pytest.approx(2 * 0.5**11)
    assert pooled.delta == pytest.approx(-11 / 24) and pooled.status == "regression"
