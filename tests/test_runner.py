"""The grid runner: skip finished cells, survive SIGKILL, record failures, bad input is one line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.api import run_grid
from harness.grid import expand, load_grid
from harness.runner import plan_grid
from leaderboards.record import load_record
from leaderboards.sidecar import read_failure

BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]


def eval_grid(tmp_path, models=("tiny-random-llama", "tiny-random-qwen2"), **over):
    grid = {
        "name": "runner-test",
        "models": list(models),
        "tasks": ["math_arith"],
        "eval": {"limit": 2, "gen_kwargs": {"max_gen_toks": 4}, "batch_size": 2},
        **over,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def records(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}


@pytest.mark.slow
def test_second_run_runs_zero_cells_and_board_equals_records(tmp_path, tiny_llama, tiny_qwen2):
    grid, results = eval_grid(tmp_path), tmp_path / "results"
    plan, outcome = run_grid(grid, results=results)
    assert len(plan.todo) == 2 and {o.status for o in outcome.values()} == {"done"}
    again, outcome2 = run_grid(grid, results=results)
    assert again.todo == [] and outcome2 == {} and len(again.skipped) == 2

    from leaderboards import leaderboard

    board = json.loads(leaderboard(results, "json"))
    recs = [load_record(p) for p in (results / "records").glob("*.json")]
    flat = json.dumps(board)
    for rec in recs:  # every record's primary value appears in the rendered board
        value = rec.tasks[0].metrics[rec.tasks[0].primary_metric].value
        assert rec.model_id in flat and (str(round(value, 4)) in flat or repr(value) in flat)


@pytest.mark.slow
def test_sigkill_mid_grid_then_resume_runs_each_cell_once(tmp_path, tiny_llama, tiny_qwen2):
    # one training stage (trained, then evaluated) and two base evals
    steps = {
        "distill": {
            "levels": "1",
            "n_per_level": 8,
            "max_steps": 2,
            "effective_batch": 2,
            "save_steps": 1,
        }
    }
    grid = eval_grid(
        tmp_path,
        recipes=[["distill"]],
        steps=steps,
        models=["tiny-random-llama", "tiny-random-qwen2"],
    )
    results = tmp_path / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [*BENCH, "train+eval", "--grid", grid, "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not list((results / "records").glob("*.json")):
        time.sleep(0.2)
    os.killpg(
        proc.pid, signal.SIGKILL
    )  # mid-grid: the first cell is recorded, the second is in flight
    proc.wait()
    first = records(results)
    assert len(first) == 1, "the runner should have been killed after the first cell"
    rerun = subprocess.run(
        [*BENCH, "train+eval", "--grid", grid, "--results", str(results)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = records(results)
    expected = {f"{c.kind}-{c.key}.json" for c in expand(load_grid(grid)).cells}
    assert len(expected) == 6 and set(final) == expected  # every cell, exactly one record each
    for name, rec in first.items():  # the finished cell was not recomputed
        assert final[name]["started_at"] == rec["started_at"]
    assert not list((results / "records").glob(".*.tmp"))  # no half-written record left behind


@pytest.mark.slow
def test_failed_cell_is_recorded_and_the_grid_goes_on(tmp_path, tiny_llama):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(
        '{"model_type": "llama", "hidden_size": 64}'
    )  # no weights, no tokenizer
    grid, results = (
        eval_grid(tmp_path, models=[str(broken), "tiny-random-llama"]),
        tmp_path / "results",
    )
    plan, outcome = run_grid(grid, results=results)
    assert sorted(o.status for o in outcome.values()) == ["done", "failed"]
    failures = list((results / "failures").glob("*.json"))
    assert len(failures) == 1 and read_failure(failures[0]).model_id == "broken-model"
    again = plan_grid(load_grid(grid), results)
    status = {c.model: again.status[c.key].why for c in plan.todo}
    assert status["broken-model"].startswith("failed before")


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, needle in [
        (["train+eval", "--grid", "nope"], "unknown grid 'nope'"),
        (["train+eval", "--grid", "smoke", "--executor", "k8s"], "--executor"),
        (["train+eval", "--grid", "smoke", "--container", "x.sif"], "--container"),
        (["leaderboard", "--results", str(tmp_path / "empty")], "no records/"),
    ]:
        proc = subprocess.run([*BENCH, *args], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_dry_run_says_what_and_why(tmp_path):
    grid = eval_grid(tmp_path)
    proc = subprocess.run(
        [*BENCH, "train+eval", "--grid", grid, "--dry-run", "--results", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "2 to run" in proc.stdout and "no record yet" in proc.stdout
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_eval_cells_in_two_processes(tmp_path, tiny_llama, tiny_qwen2):
    grid, results = eval_grid(tmp_path), tmp_path / "results"
    plan, outcome = run_grid(grid, results=results, workers=2)
    assert len(plan.todo) == 2 and {o.status for o in outcome.values()} == {"done"}
    assert len(list((results / "records").glob("*.json"))) == 2
    again, _ = run_grid(grid, results=results, workers=2)
    assert again.todo == []


@pytest.mark.slow
def test_eval_checkpoint_records_the_stage_model_and_parent_key(tmp_path, tiny_llama):
    """`bench eval --checkpoint DIR` on a trained stage: the record names that stage, not the directory."""
    from harness.api import eval_model
    from harness.runner import stage_dir

    steps = {
        "distill": {
            "levels": "1",
            "n_per_level": 8,
            "max_steps": 2,
            "effective_batch": 2,
            "save_steps": 2,
        },
        "grpo": {
            "levels": "1",
            "n_prompts": 2,
            "max_steps": 1,
            "num_generations": 2,
            "effective_batch": 2,
            "max_completion_length": 4,
            "save_steps": 1,
        },
    }
    grid = eval_grid(
        tmp_path, models=["tiny-random-llama"], recipes=[["distill", "grpo"]], steps=steps
    )
    results = tmp_path / "results"
    plan, outcome = run_grid(grid, results=results, kind="train")
    assert {o.status for o in outcome.values()} == {"done"}, outcome
    distill, grpo = sorted(plan.expansion.train, key=lambda c: c.stage)
    record = eval_model(
        checkpoint=stage_dir(results, grpo.key),
        tasks=["math_arith"],
        limit=2,
        max_gen_toks=4,
        results=tmp_path / "eval",
    )
    assert (record.model_id, record.stage, record.recipe) == (
        "tiny-random-llama",
        "distill+grpo",
        ["distill", "grpo"],
    )
    assert record.parent_key == grpo.key and grpo.parent_key == distill.key
    assert record.inputs["weights"].startswith("stage:")
    # the identity is the content of the weights it loads: another stage's weights, another key
    other = eval_model(
        checkpoint=stage_dir(results, distill.key),
        tasks=["math_arith"],
        limit=2,
        max_gen_toks=4,
        results=tmp_path / "eval",
    )
    assert other.stage == "distill" and other.cell_key != record.cell_key
    assert other.inputs["weights"] != record.inputs["weights"]
