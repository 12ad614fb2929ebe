"""The SLURM executor: wave planning and resources (pure), then a real slurmctld/slurmd on localhost.

The slow tests share one module-scoped cluster and one results directory: the base eval
cell of tiny-random-llama has the same key in every grid here (a key does not depend on
the grid's name), so it runs once and the later grids find it done.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from _slurm_cluster import LocalSlurm, kill_stale, missing_binaries
from conftest import needs

from harness.errors import BenchError
from harness.executors.slurm import (
    _dependency,
    check_slurm,
    python_command,
    resources,
    run_slurm,
    waves,
)
from harness.grid import GridSpec, expand
from harness.runner import plan_grid
from harness.status import failure_path, record_file

TINY_EVAL = {"limit": 2, "gen_kwargs": {"max_gen_toks": 8}}


def write_grid(path: Path, **fields) -> str:
    grid = {"models": ["tiny-random-llama"], "tasks": ["math_arith"], "eval": TINY_EVAL, **fields}
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def by_id(cells) -> list[tuple[str, str]]:
    return [(c.kind, c.cell_id) for c in cells]


# --- pure: waves and resources --------------------------------------------------------


def test_waves_follow_stage_depth_and_skip_finished_parents(tmp_path):
    grid = GridSpec(
        name="w",
        models=["tiny-random-llama"],
        recipes=[["sft", "dpo"], ["sft"]],
        tasks=["math_arith"],
        eval=TINY_EVAL,
    )
    exp = expand(grid)
    todo = sorted(exp.train, key=lambda c: c.stage.count("+")) + sorted(
        exp.eval, key=lambda c: c.stage.count("+")
    )
    got = [sorted(by_id(w)) for w in waves(todo)]
    m = "tiny-random-llama"
    assert got == [
        [("eval", f"{m}/base"), ("train", f"{m}/sft")],
        [("eval", f"{m}/sft"), ("train", f"{m}/sft+dpo")],
        [("eval", f"{m}/sft+dpo")],
    ]
    # sft already trained (not in the plan): its child and its eval start at once
    rest = [c for c in todo if c.stage != "base" and not (c.kind == "train" and c.stage == "sft")]
    got = [sorted(by_id(w)) for w in waves(rest)]
    assert got == [[("eval", f"{m}/sft"), ("train", f"{m}/sft+dpo")], [("eval", f"{m}/sft+dpo")]]


def test_resources_per_kind_and_target():
    cpu = GridSpec(name="r", models=["tiny-random-llama"], recipes=[["sft"]], tasks=["math_arith"])
    exp = expand(cpu)
    train, base = exp.train[0], next(c for c in exp.eval if c.stage == "base")
    # tiny-random-llama: 6.4e6 params; fp32 on cpu -> 0.0256 GB of weights
    assert resources(base, cpu) == {
        "cpus": 2,
        "mem_gb": math.ceil(8 + 2 * 0.0256),
        "gpus": 0,
        "timeout_min": 240,
    }
    r = resources(train, cpu)
    assert (r["cpus"], r["gpus"], r["timeout_min"]) == (2, 0, 480) and r["mem_gb"] >= 9
    h100 = cpu.model_copy(update={"target": "h100"})
    # bf16 on h100: 0.0128 GB of weights; one GPU, eight cores per GPU
    assert resources(base, h100) == {"cpus": 8, "mem_gb": 9, "gpus": 1, "timeout_min": 240}
    assert resources(train, h100) == {"cpus": 8, "mem_gb": 9, "gpus": 1, "timeout_min": 480}
    with pytest.raises(BenchError, match="field 'target'"):
        resources(base, cpu.model_copy(update={"target": "h1000"}))


def test_dependency_names_array_tasks_or_whole_arrays():
    submitted = ["5_0", "5_1", "5_2", "6", "7_0", "7_1"]
    assert _dependency(set(), submitted) is None
    assert _dependency({"5_2", "5_0"}, submitted) == "afterany:5_0:5_2"
    assert _dependency({"5_0", "5_1", "5_2", "6", "7_1"}, submitted) == "afterany:5:6:7_1"


def test_python_command_wraps_apptainer_only_with_a_container(tmp_path):
    import sys

    assert python_command(None, [tmp_path], 1) == sys.executable
    cmd = python_command("/img/bench.sif", [tmp_path / "results", tmp_path], 1).split()
    assert cmd[:3] == ["apptainer", "exec", "--nv"] and cmd[-2:] == ["/img/bench.sif", "python"]
    assert (
        f"--bind={tmp_path}/results:{tmp_path}/results" in cmd
        and f"--bind={tmp_path}/results:/results" in cmd
    )
    assert "--nv" not in python_command("/img/bench.sif", [tmp_path], 0)
    assert f"--bind={tmp_path.resolve()}:/hf" in python_command(
        "/img/bench.sif", [tmp_path], 0, hf_home=tmp_path
    )


# --- a real cluster ----------------------------------------------------------------------

needs_slurm = needs("slurm", missing_binaries(), "make system-deps")


@pytest.fixture(scope="module")
def cluster():
    kill_stale()
    with LocalSlurm() as c:
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(c.conf)
        try:
            yield c
        finally:
            subprocess.run(["scancel", "--user", "root", "--quiet"], env=c.env(), timeout=30)
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-results")


@pytest.fixture(scope="module")
def base_run(cluster, results, tmp_path_factory):
    """The no-recipe grid (one eval cell) run through SLURM once, preempted once on the way.

    run_slurm waits in a thread while this thread plays the scheduler: once the task holds
    its cell lock (so submitit's signal handler is installed), it gets SIGUSR2 the way
    SLURM signals a preempted job; the task must requeue itself and finish on its second start.
    """
    grid = write_grid(tmp_path_factory.mktemp("grids") / "tiny.yaml", name="slurm-tiny")
    plan = plan_grid(grid, results)
    box: dict = {}
    waiter = threading.Thread(
        target=lambda: box.update(run_slurm(plan, results, poll_s=1, max_wait_s=600))
    )
    waiter.start()
    lock = results / "locks" / f"{plan.todo[0].key}.lock"
    deadline = time.monotonic() + 300
    while not lock.exists() and waiter.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    job_id = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()
    if lock.exists() and job_id:
        subprocess.run(["scancel", "--signal=USR2", job_id[0]], check=True)
    waiter.join()
    return grid, plan, box


def submission_scripts(results: Path) -> dict[str, str]:
    """job id -> sbatch script text, from every submission under results/slurm."""
    return {p.name.split("_")[0]: p.read_text() for p in results.glob("slurm/*/*_submission.sh")}


@pytest.mark.slow
@needs_slurm
def test_check_slurm_and_submission_errors(cluster, tmp_path, monkeypatch):
    check_slurm()  # the cluster answers
    dead = tmp_path / "slurm.conf"
    conf = cluster.conf.read_text()
    port = re.search(r"SlurmctldPort=(\d+)", conf).group(1)
    # nothing listens on port 1; a short MessageTimeout makes the client give up at once
    dead.write_text(conf.replace(f"SlurmctldPort={port}", "SlurmctldPort=1") + "MessageTimeout=1\n")
    monkeypatch.setenv("SLURM_CONF", str(dead))
    with pytest.raises(BenchError) as err:
        check_slurm()
    msg = str(err.value)
    assert "\n" not in msg and "`sinfo` failed" in msg and str(dead) in msg
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    grid = write_grid(tmp_path / "tiny.yaml", name="slurm-tiny")
    plan = plan_grid(grid, tmp_path / "results")
    with pytest.raises(BenchError) as err:  # sbatch refuses: one line, nothing runs
        run_slurm(plan, tmp_path / "results", partition="no-such-partition")
    assert "\n" not in str(err.value) and "sbatch refused wave 0 (eval)" in str(err.value)
    assert "already submitted: none" in str(err.value)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    with pytest.raises(BenchError, match="`sbatch` is not on PATH"):
        check_slurm()


@pytest.mark.slow
@needs_slurm
def test_tasks_that_cannot_give_a_result_are_failed(cluster, tmp_path, monkeypatch):
    """A task cancelled before it starts, or one that can never start: reported, not waited on forever."""
    import harness.executors.slurm as slurm

    monkeypatch.setattr(slurm, "GRACE_S", 0)
    grid = write_grid(tmp_path / "tiny.yaml", name="slurm-tiny")
    plan = plan_grid(grid, tmp_path / "results")
    box: dict = {}
    held = {"additional_parameters": {"begin": "now+1hour"}}  # pending until we cancel it
    waiter = threading.Thread(
        target=lambda: box.update(
            run_slurm(plan, tmp_path / "results", poll_s=0.5, max_wait_s=120, slurm_options=held)
        )
    )
    waiter.start()
    deadline = time.monotonic() + 60
    while (
        not list((tmp_path / "results").glob("slurm/*/*_submission.sh"))
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    job_id = next((tmp_path / "results").glob("slurm/*/*_submission.sh")).name.split("_")[0]
    subprocess.run(["scancel", job_id], check=True)
    waiter.join()
    assert list(box) == [plan.todo[0].key]
    assert str(box[plan.todo[0].key]).startswith(
        f"failed: job {job_id} ended (CANCELLED) without a result"
    )
    # a request the partition can never satisfy (the node has 2 CPUs) is cancelled, not waited on
    out = run_slurm(
        plan, tmp_path / "results", poll_s=0.5, max_wait_s=120, slurm_options={"cpus_per_task": 64}
    )
    assert re.fullmatch(
        r"failed: job \d+ can never start \(PartitionConfig\); cancelled it: .*",
        str(out[plan.todo[0].key]),
    )
    assert subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout == ""


@pytest.mark.slow
@needs_slurm
def test_eval_grid_runs_as_a_slurm_job(base_run, results):
    grid, plan, outcome = base_run
    assert by_id(plan.todo) == [("eval", "tiny-random-llama/base")]
    key = plan.todo[0].key
    assert {k: o.status for k, o in outcome.items()} == {key: "done"}
    record = json.loads(record_file(results, "eval", key).read_text())
    assert record["cell_key"] == key and record["tasks"][0]["metrics"]["exact_match"]["n"] == 2
    assert len(list((results / "records").glob("*.json"))) == 1  # ran once, one record
    # it went through SLURM: submitit's files carry the job id sbatch gave, and its log names it
    scripts = submission_scripts(results)
    assert len(scripts) == 1
    job_id, script = next(iter(scripts.items()))
    assert "#SBATCH --job-name=bench-slurm-tiny-w0-eval" in script and "--dependency" not in script
    log = next(results.glob(f"slurm/*/{job_id}_0_log.out")).read_text()
    assert f"job_id={job_id}" in log and "Job completed successfully" in log
    assert plan_grid(grid, results).todo == []  # nothing left to do


@pytest.mark.slow
@needs_slurm
def test_preempted_task_requeues_and_finishes(base_run, results):
    grid, plan, outcome = base_run
    log = "".join(p.read_text() for p in results.glob("slurm/*/*_log.*"))
    assert "this job is preempted" in log and "Requeued job" in log  # submitit's checkpoint path
    assert (
        log.count("Starting with JobEnvironment") == 2
        and log.count("Job completed successfully") == 1
    )
    assert {k: o.status for k, o in outcome.items()} == {plan.todo[0].key: "done"}
    assert len(list((results / "records").glob("*.json"))) == 1
    assert plan_grid(grid, results).todo == []  # nothing left to do


@pytest.mark.slow
@needs_slurm
def test_failed_training_blocks_its_evals_through_array_dependencies(base_run, results, tmp_path):
    """Stages that fail fast (no dataset): every dependent task is 'blocked', and each array
    waits on exactly its parents — array tasks by id, a whole array when all of it is needed."""
    missing = str(tmp_path / "absent.jsonl")  # the stage fails before loading any model
    grid = write_grid(
        tmp_path / "wiring.yaml",
        name="slurm-wiring",
        recipes=[["sft", "sft3"], ["sft2"]],
        steps={
            "sft": {"dataset": missing},
            "sft2": {"method": "sft", "dataset": missing + "2"},
            "sft3": {"method": "sft", "dataset": missing + "3"},
        },
    )
    before = set(submission_scripts(results))
    plan = plan_grid(grid, results)
    m = "tiny-random-llama"
    assert [sorted(by_id(w)) for w in waves(plan.todo)] == [  # base eval: done by base_run
        [("train", f"{m}/sft"), ("train", f"{m}/sft2")],
        [("eval", f"{m}/sft"), ("eval", f"{m}/sft2"), ("train", f"{m}/sft+sft3")],
        [("eval", f"{m}/sft+sft3")],
    ]
    outcome = run_slurm(plan, results, poll_s=1, max_wait_s=300)
    cell = {c.cell_id + ":" + c.kind: c.key for c in plan.todo}
    for name in ("sft", "sft2"):
        assert outcome[cell[f"{m}/{name}:train"]].status == "failed", outcome
        assert failure_path(
            results, "train", cell[f"{m}/{name}:train"]
        ).exists()  # run_cell recorded why
    for name in ("sft+sft3:train", "sft:eval", "sft2:eval", "sft+sft3:eval"):
        key = cell[f"{m}/{name}"]
        assert (
            outcome[key].status == "blocked"
            and not failure_path(results, name.split(":")[1], key).exists()
        )
    new = {k: v for k, v in submission_scripts(results).items() if k not in before}
    names = {re.search(r"--job-name=(\S+)", v).group(1): k for k, v in new.items()}
    assert sorted(names) == [
        "bench-slurm-wiring-w0-train",
        "bench-slurm-wiring-w1-eval",
        "bench-slurm-wiring-w1-train",
        "bench-slurm-wiring-w2-eval",
    ]
    first, evals1, train1, evals2 = (
        names[f"bench-slurm-wiring-{n}"] for n in ("w0-train", "w1-eval", "w1-train", "w2-eval")
    )

    def dependency(job):
        found = re.search(r"#SBATCH --dependency=(\S+)", new[job])
        return found and found.group(1)

    assert dependency(first) is None and "#SBATCH --array=0-1%2" in new[first]
    assert (
        dependency(train1) == f"afterany:{first}_0"
    )  # sft+sft3 needs sft only (the array's task 0)
    assert dependency(evals1) == f"afterany:{first}"  # both trains: the whole array
    assert dependency(evals2) == f"afterany:{train1}"


@pytest.mark.slow
@needs_slurm
def test_train_then_eval_chain(base_run, results, tmp_path):
    """A real sft stage (2 steps) then its eval: the eval starts only after the train record exists."""
    data = tmp_path / "sft.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"What is {i} + {i}?"},
                        {"role": "assistant", "content": str(2 * i)},
                    ]
                }
            )
            + "\n"
            for i in range(8)
        )
    )
    grid = write_grid(
        tmp_path / "chain.yaml",
        name="slurm-chain",
        recipes=[["sft"]],
        steps={
            "sft": {"dataset": str(data), "max_steps": 2, "effective_batch": 2, "max_length": 64}
        },
    )
    plan = plan_grid(grid, results)
    assert by_id(plan.todo) == [
        ("train", "tiny-random-llama/sft"),
        ("eval", "tiny-random-llama/sft"),
    ]
    train, ev = plan.todo
    outcome = run_slurm(plan, results, poll_s=1, max_wait_s=600)
    assert {k: o.status for k, o in outcome.items()} == {train.key: "done", ev.key: "done"}
    t = json.loads(record_file(results, "train", train.key).read_text())
    e = json.loads(record_file(results, "eval", ev.key).read_text())
    assert e["parent_key"] == train.key
    assert t["finished_at"] <= e["started_at"]  # ISO-8601 UTC strings order as times
    assert plan_grid(grid, results).todo == []
