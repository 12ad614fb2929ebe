"""Faults (issue 15): status comes from disk and nothing already computed is lost or miscounted.

A corrupt record makes its cell run again; a deleted checkpoint makes its train cell and the
train cells below it run again; a cell another runner holds is busy, not failed; a resumed
stage's manifest covers the whole run; a run in which every cell failed ends with why.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.api import run_grid
from harness.grid import load_grid
from harness.runner import plan_grid, stage_dir
from harness.status import record_file
from leaderboards.record import load_record
from trainers.manifest import read_manifest

BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]
DISTILL = {"levels": "1", "n_per_level": 8, "max_steps": 2, "effective_batch": 2, "save_steps": 1}
GRPO = {
    "levels": "1",
    "n_prompts": 2,
    "max_steps": 1,
    "num_generations": 2,
    "effective_batch": 2,
    "max_completion_length": 4,
    "save_steps": 1,
}


def grid_file(tmp_path: Path, models=("tiny-random-llama",), **over) -> str:
    grid = {
        "name": "faults",
        "models": list(models),
        "tasks": ["math_arith"],
        "eval": {"limit": 2, "gen_kwargs": {"max_gen_toks": 4}, "batch_size": 2},
        **over,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


@pytest.mark.slow
def test_a_corrupt_record_makes_its_cell_new_and_the_rerun_replaces_it(tmp_path, tiny_llama):
    grid, results = grid_file(tmp_path), tmp_path / "results"
    plan, outcome = run_grid(grid, results=results)
    (cell,) = plan.todo
    path = record_file(results, "eval", cell.key)
    first = load_record(path)
    path.write_text(path.read_text()[: len(path.read_text()) // 2])  # a torn write
    again = plan_grid(load_grid(grid), results)
    st = again.status[cell.key]
    assert st.status == "new" and "its record does not load" in st.why and again.todo == [cell]
    _, outcome = run_grid(grid, results=results)
    assert outcome[cell.key].status == "done"  # run, not skipped because the file exists
    assert load_record(path).started_at > first.started_at
    assert plan_grid(load_grid(grid), results).todo == []


@pytest.mark.slow
def test_a_deleted_checkpoint_makes_its_cell_and_the_child_train_cells_changed(
    tmp_path, tiny_llama
):
    grid = grid_file(
        tmp_path, recipes=[["distill", "grpo"]], steps={"distill": DISTILL, "grpo": GRPO}
    )
    results = tmp_path / "results"
    plan, outcome = run_grid(grid, results=results, kind="train")
    assert {o.status for o in outcome.values()} == {"done"}, outcome
    distill, grpo = sorted(plan.expansion.train, key=lambda c: c.stage)
    before = {
        c.key: load_record(record_file(results, "train", c.key)).started_at for c in (distill, grpo)
    }
    shutil.rmtree(stage_dir(results, distill.key))
    again = plan_grid(load_grid(grid), results, kind="train")
    assert (
        again.status[distill.key].status == "changed"
        and "checkpoint is missing" in again.status[distill.key].why
    )
    # grpo's adapter is relative to distill's merged weights: it trains again too
    assert again.status[grpo.key].status == "changed"
    assert again.status[grpo.key].why.startswith("parent distill will be trained again")
    assert [c.key for c in again.todo] == [distill.key, grpo.key]
    _, outcome = run_grid(grid, results=results, kind="train")
    assert {k: o.status for k, o in outcome.items()} == {distill.key: "done", grpo.key: "done"}
    for c in (distill, grpo):
        assert load_record(record_file(results, "train", c.key)).started_at > before[c.key]
        assert (stage_dir(results, c.key) / "manifest.json").exists()
    assert plan_grid(load_grid(grid), results, kind="train").todo == []


@pytest.mark.slow
def test_a_cell_another_runner_holds_is_busy_not_failed(tmp_path, tiny_llama):
    """The other runner is this test holding the cell's lock: the CLI's run skips that cell and
    the eval that waits for it, finishes the rest, and exits 3: nothing failed, but not every
    cell ran (exit 0 would tell a script that every cell has its record)."""
    grid = grid_file(tmp_path, recipes=[["distill"]], steps={"distill": DISTILL})
    results = tmp_path / "results"
    plan = plan_grid(load_grid(grid), results)
    (train,) = plan.expansion.train
    lock = results / "locks" / f"{train.key}.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = subprocess.run(
            [*BENCH, "train+eval", "--grid", grid, "--results", str(results)],
            capture_output=True,
            text=True,
            env=env(),
            timeout=900,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-3000:]
    assert "Traceback" not in out and "[red]failed" not in out
    last = proc.stdout.strip().splitlines()[-1]
    assert "ran 1 cells, 0 failed, 0 blocked by a failure, 2 busy" in last, last
    # the key is printed as written (rich would take '[<hex key>]' for markup and drop it)
    assert f"busy {train.cell_id} [{train.key}]: another runner holds this cell" in proc.stdout
    assert not (results / "failures").exists() or not any((results / "failures").iterdir())
    assert not record_file(results, "train", train.key).exists()  # the holder's cell was left alone
    # once the holder is gone, the next run does exactly those two
    assert [c.key for c in plan_grid(load_grid(grid), results).todo] == [
        train.key,
        *(c.key for c in plan.expansion.eval if c.train_key == train.key),
    ]


@pytest.mark.slow
def test_a_resumed_stage_counts_the_whole_run(tmp_path, tiny_llama):
    from trainers import train_stage

    cfg = {**DISTILL, "max_steps": 2, "save_steps": 1, "save_total_limit": 5}
    whole = train_stage(
        "distill", cfg, base_model=tiny_llama, parent=None, output_dir=tmp_path / "whole"
    )
    assert whole.tokens > 0 and whole.resumed_cost is None
    out = tmp_path / "resumed"
    part = train_stage(
        "distill", {**cfg, "max_steps": 1}, base_model=tiny_llama, parent=None, output_dir=out
    )
    assert 0 < part.tokens < whole.tokens
    (out / "manifest.json").unlink()  # as if killed after checkpoint-1
    resumed = train_stage("distill", cfg, base_model=tiny_llama, parent=None, output_dir=out)
    assert resumed.resumed_from.endswith("checkpoint-1") and resumed.steps == 2
    earlier = resumed.resumed_cost
    assert earlier["tokens"] == part.tokens
    assert resumed.tokens == whole.tokens  # same rows, same order: the whole run's count
    assert resumed.wall_s >= earlier["wall_s"] > 0
    saved = json.loads((out / "checkpoints" / "checkpoint-2" / "bench_run_cost.json").read_text())
    assert saved["tokens"] == resumed.tokens


@pytest.mark.slow
def test_a_run_where_every_cell_failed_ends_with_why(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(
        '{"model_type": "llama", "hidden_size": 64}'
    )  # no weights, no tokenizer
    grid, results = grid_file(tmp_path, models=[str(broken)]), tmp_path / "results"
    proc = subprocess.run(
        [*BENCH, "train+eval", "--grid", grid, "--results", str(results)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "no records/" not in out and "--grid smoke" not in out  # no misleading hint
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("ran 0 cells, 1 failed"), lines[-3:]
    assert "leaderboard: no finished cells yet" in proc.stdout
    first_failure = next(i for i, x in enumerate(lines) if x.startswith("failed broken-model/base"))
    assert first_failure > lines.index("leaderboard: no finished cells yet")


def _bench(*args, cwd=None, timeout=900):
    return subprocess.run(
        [*BENCH, *map(str, args)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=cwd,
        timeout=timeout,
    )


def _preempted(results: Path, key: str) -> Path:
    """A stage killed after its last checkpoint and before its manifest and record."""
    (results / "checkpoints" / key / "manifest.json").unlink()
    record_file(results, "train", key).unlink()
    return results / "checkpoints" / key


@pytest.mark.slow
def test_an_unreadable_newest_checkpoint_resumes_from_the_one_before(tmp_path, tiny_llama):
    """A kill while trainer_state.json is written leaves checkpoint-2 cut off: the rerun resumes
    from checkpoint-1 (it used to fail on every rerun, --force included, naming no file)."""
    grid = grid_file(
        tmp_path, recipes=[["distill"]], steps={"distill": {**DISTILL, "save_total_limit": 5}}
    )
    results = tmp_path / "results"
    first = _bench("train", "--grid", grid, "--results", results)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    (train,) = plan_grid(load_grid(grid), results).expansion.train
    stage = _preempted(results, train.key)
    state = stage / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    state.write_text(state.read_text()[:40])  # cut off mid-write
    again = _bench("train", "--grid", grid, "--results", results)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    manifest = read_manifest(stage)
    assert manifest.resumed_from.endswith("checkpoint-1") and manifest.steps == 2
    assert record_file(results, "train", train.key).exists()


@pytest.mark.slow
def test_a_moved_results_folder_resumes_and_stays_cached(tmp_path, tiny_llama):
    """A cluster requeues the job where results/ is another path (moved, copied, or spelled
    relative instead of absolute): finished cells stay done, a preempted stage resumes."""
    grid = grid_file(tmp_path, recipes=[["distill"]], steps={"distill": DISTILL})
    old = tmp_path / "a" / "results"
    first = _bench("train+eval", "--grid", grid, "--results", old)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    new = tmp_path / "b" / "elsewhere"
    new.parent.mkdir()
    shutil.move(old, new)
    rows = json.loads(
        _bench("grid", "show", grid, "--results", "elsewhere", "--json", cwd=new.parent).stdout
    )
    assert {r["status"] for r in rows} == {"done"}, [(r["stage"], r["why"]) for r in rows]
    # the manifest says where the stage was written; nothing reads that path back
    (train,) = plan_grid(load_grid(grid), new).expansion.train
    manifest = read_manifest(new / "checkpoints" / train.key)
    assert manifest.output_dir == str(old / "checkpoints" / train.key)  # where it was written
    stage = _preempted(new, train.key)
    again = _bench("train", "--grid", grid, "--results", "elsewhere", cwd=new.parent)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    manifest = read_manifest(stage)
    assert manifest.resumed_from.endswith("checkpoint-2")
    rows = json.loads(_bench("grid", "show", grid, "--results", new, "--json").stdout)
    assert {r["status"] for r in rows} == {"done"}


@pytest.mark.slow
def test_a_corrupt_adapter_makes_its_stage_changed(tmp_path, tiny_llama):
    grid = grid_file(tmp_path, recipes=[["distill"]], steps={"distill": DISTILL})
    results = tmp_path / "results"
    plan, outcome = run_grid(grid, results=results, kind="train")
    (train,) = plan.expansion.train
    weights = stage_dir(results, train.key) / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn copy
    st = plan_grid(load_grid(grid), results, kind="train").status[train.key]
    assert st.status == "changed" and "adapter_model.safetensors is cut off" in st.why, st
    rows = json.loads(_bench("grid", "show", grid, "--results", results, "--json").stdout)
    assert next(r for r in rows if r["key"] == train.key)["status"] == "changed"
