"""A cell in a process of its own (the local executor on GPU targets; forced here on CPU): the
same record under the same key, failures recorded and reported as in-process ones, and
nothing computed lost when the process dies."""

import multiprocessing
import os
import signal
import threading
import time

import pytest
from test_runner import eval_grid

from harness.api import run_grid
from harness.errors import BenchError
from harness.executors.local import cell_process
from leaderboards.record import load_record
from leaderboards.sidecar import read_failure


def test_cells_get_a_process_on_gpu_targets_unless_told(monkeypatch):
    monkeypatch.delenv("BENCH_CELL_PROCESS", raising=False)
    assert cell_process("h100") and cell_process("rtx2080ti") and not cell_process("cpu")
    monkeypatch.setenv("BENCH_CELL_PROCESS", "1")
    assert cell_process("cpu")
    monkeypatch.setenv("BENCH_CELL_PROCESS", "0")
    assert not cell_process("h100")
    monkeypatch.setenv("BENCH_CELL_PROCESS", "yes")
    with pytest.raises(BenchError, match="BENCH_CELL_PROCESS='yes': use auto, 1 or 0"):
        cell_process("cpu")


def _scores(results):
    return {
        p.name: (r.tasks[0].metrics[r.tasks[0].primary_metric].value, r.peak_rss_bytes)
        for p in (results / "records").glob("*.json")
        for r in [load_record(p)]
    }


@pytest.mark.slow
def test_a_cell_in_its_own_process_writes_the_same_record(tmp_path, monkeypatch, tiny_llama):
    from harness import runner

    grid = eval_grid(tmp_path, models=["tiny-random-llama"])
    monkeypatch.setenv("BENCH_CELL_PROCESS", "0")
    run_grid(grid, results=tmp_path / "here")

    def not_here(*a, **k):
        raise AssertionError("the cell ran in the harness process")

    monkeypatch.setattr(runner, "_eval", not_here)  # a spawned child imports its own, unpatched
    monkeypatch.setenv("BENCH_CELL_PROCESS", "1")
    _, outcome = run_grid(grid, results=tmp_path / "apart")
    assert [o.status for o in outcome.values()] == ["done"]
    here, apart = _scores(tmp_path / "here"), _scores(tmp_path / "apart")
    assert here.keys() == apart.keys() and len(here) == 1  # same record file: same cell key
    (name,) = here
    assert here[name][0] == apart[name][0]  # same score
    assert apart[name][1] > 50_000_000  # the child's own peak RSS, measured there


@pytest.mark.slow
def test_a_failure_in_the_child_is_recorded_like_one_in_process(tmp_path, monkeypatch, tiny_llama):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    grid = eval_grid(tmp_path, models=[str(broken), "tiny-random-llama"])
    seen = {}
    for how in ("0", "1"):
        monkeypatch.setenv("BENCH_CELL_PROCESS", how)
        results = tmp_path / f"results-{how}"
        _, outcome = run_grid(grid, results=results)
        (failure,) = (results / "failures").glob("*.json")
        seen[how] = (
            sorted(str(o) for o in outcome.values()),
            failure.name,
            read_failure(failure).error,
        )
        assert "Traceback" in read_failure(failure).traceback
    assert seen["0"] == seen["1"]
    assert [s.split(":")[0] for s in seen["1"][0]] == ["done", "failed"]


@pytest.mark.slow
def test_a_killed_cell_process_is_a_recorded_failure_and_the_next_run_redoes_it(
    tmp_path, monkeypatch, tiny_llama, tiny_qwen2
):
    monkeypatch.setenv("BENCH_CELL_PROCESS", "1")
    grid, results = eval_grid(tmp_path), tmp_path / "results"
    got = {}
    run = threading.Thread(target=lambda: got.update(outcome=run_grid(grid, results=results)[1]))
    run.start()
    killed = None
    while run.is_alive() and killed is None:  # kill the first cell's process mid-cell
        for child in multiprocessing.active_children():
            if child.name.startswith("bench-eval-"):
                time.sleep(2)
                os.kill(child.pid, signal.SIGKILL)
                killed = child.name.removeprefix("bench-eval-")
        time.sleep(0.1)
    run.join()
    outcome = got["outcome"]
    assert killed and str(outcome[killed]) == (
        "failed: the cell's process ended without a result (killed by signal 9)"
    )
    assert [o.status for k, o in outcome.items() if k != killed] == ["done"]  # the grid went on
    failure = read_failure(results / "failures" / f"eval-{killed}.json")
    assert "killed by signal 9" in failure.error
    done_before = _scores(results)
    plan, again = run_grid(grid, results=results)
    assert [c.key for c in plan.todo] == [killed] and [o.status for o in again.values()] == ["done"]
    assert not (results / "failures" / f"eval-{killed}.json").exists()
    assert done_before.items() <= _scores(results).items()  # the other cell's record untouched
