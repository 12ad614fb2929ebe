"""The SLURM executor: a grid's cells as submitit job arrays, in waves by stage depth.

A cell with no parent to wait for (a base or published eval, a first training stage, or
any cell whose parent already has a record) is in wave 0; every other cell is one wave
after the cell it needs. Each wave is one array per resource shape (submitit's single
parametrized sbatch template; nothing per model), submitted up front with
``--dependency=afterany:<the parents' array tasks>`` — per-task ids, so a stage's eval
starts as soon as its own training ends, and ``afterany`` so one failure never cancels
its siblings. A task whose parent ended without a record returns 'blocked' (the local
executor's word) without loading anything.

Every task calls :func:`harness.runner.run_cell` with the planned cell itself (pickled by
submitit: the job never re-loads the grid, so a job inside a container with other
package pins runs exactly the cell that was planned). run_cell is idempotent (a record means
done) and resumes a training stage from its newest checkpoint, so requeue is simply
"call it again": :class:`CellTask` is a submitit ``Checkpointable``, so on preemption or
timeout (SIGUSR2 ahead of the limit) submitit requeues the same task, up to
``MAX_TIMEOUTS`` timeouts. Job state comes from the result pickles and ``squeue``
(``sacct`` needs slurmdbd, which small clusters lack). Logs and pickles go under
``<results>/slurm/<run>/``. Records are the only shared state: tasks write files, never
the DuckDB store.
"""

from __future__ import annotations

import getpass
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from submitit.helpers import Checkpointable

from harness.errors import BenchError
from harness.status import failure_path, record_file

if TYPE_CHECKING:
    from harness.runner import Outcome

__all__ = [
    "Options",
    "run",
    "check_slurm",
    "resources",
    "waves",
    "python_command",
    "run_slurm",
    "CellTask",
    "TIMEOUT_MIN",
    "MAX_TIMEOUTS",
]

TIMEOUT_MIN = {
    "train": 8 * 60,
    "eval": 4 * 60,
}  # per requeue; a train stage resumes after a timeout
MAX_TIMEOUTS = 6  # timeouts a task survives (preemptions are not counted)
CPUS_PER_GPU = 8
CPU_TARGET_CPUS = 2
# PREEMPTED is left out: a requeued job passes through it; one that stays preempted is
# caught when it leaves squeue (MinJobAge).
TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
    "GONE",
}
# Pending reasons that never clear by waiting (a request the partition can never satisfy):
# such a task is cancelled and reported instead of waited on forever.
NEVER_STARTS = {
    "PartitionConfig",
    "BadConstraints",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidQOS",
    "InvalidAccount",
    "DependencyNeverSatisfied",
}
GRACE_S = 60  # an ended task without a result pickle: give a shared filesystem time to show it


def _last_line(text: str) -> str:
    """The last non-empty line of a tool's output: where sbatch, srun and a traceback say why."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def check_slurm() -> None:
    """Raise a one-line BenchError unless sbatch/srun exist and the controller answers."""
    for tool in ("sbatch", "srun", "squeue", "sinfo"):
        if shutil.which(tool) is None:
            raise BenchError(
                f"--executor slurm: `{tool}` is not on PATH; run on a SLURM login node "
                "(or `module load slurm`), or use --executor local"
            )
    conf = os.environ.get("SLURM_CONF", "the default slurm.conf")
    for cmd in (["sinfo", "-h", "-o", "%P"], ["squeue", "-h", "-u", getpass.getuser(), "-o", "%i"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            out = None
        if out is None or out.returncode != 0:
            why = "timed out after 60s" if out is None else _last_line(out.stderr or out.stdout)
            raise BenchError(
                f"--executor slurm: `{cmd[0]}` failed ({why}); check that slurmctld is up and "
                f"SLURM_CONF ({conf}) names its slurm.conf, or use --executor local"
            )


def _weights_gb(model: str, dtype: str) -> float:
    from harness.zoo import get_model

    try:
        params = get_model(model).params or 1e9
    except Exception:  # an unknown size must not stop a submission
        params = 1e9
    return params * {"bf16": 2, "fp16": 2, "fp32": 4}.get(dtype, 4) / 1e9


def resources(cell, grid) -> dict[str, Any]:
    """cpus, mem_gb (host), gpus and timeout_min of one cell on the grid's hardware target.

    A train cell asks for exactly the GPUs its plan runs on (its ``nproc``: harness.plans.cell_plan,
    the plan the stage and the launcher use) and is refused here when that plan cannot fit; an
    eval cell for the GPUs its weights need (its vLLM tensor-parallel size). Host memory is one
    copy of the weights plus a merge's (ranks load sharded models through rank 0) and 8 GB,
    capped at the target's node memory.
    """
    from containers.targets import get_target
    from harness.plans import cell_plan, eval_gpus

    try:
        target = get_target(grid.target)
    except BenchError as e:  # a grid built in code, not loaded: say whose target it is
        raise BenchError(f"grid {grid.name}: field 'target': {e}") from None
    weights = _weights_gb(cell.model, target.dtype)
    mem = 8 + 2 * weights  # load + merge or lm-eval / trainer overhead
    if cell.kind == "train":
        p = cell_plan(cell, target.name)
        if target.is_gpu and not p.fits:
            raise BenchError(f"grid {grid.name}: {cell.cell_id}: {p.refusal()}")
        gpus = p.gpus if target.is_gpu else 0
        if not target.is_gpu:
            mem += p.total_gb  # on CPU the training state lives in host memory
    else:
        gpus = eval_gpus(cell, target.name) if target.is_gpu else 0
    if target.node_memory_gb:
        mem = min(mem, target.node_memory_gb)
    return {
        "cpus": CPUS_PER_GPU * gpus if gpus else CPU_TARGET_CPUS,
        "mem_gb": int(math.ceil(mem)),
        "gpus": gpus,
        "timeout_min": TIMEOUT_MIN[cell.kind],
    }


def waves(cells: Sequence) -> list[list]:
    """Cells (parents first, as Plan.todo is) grouped by the wave they can start in."""
    wave: dict[str, int] = {}
    for cell in cells:
        parent = cell.needs
        wave[cell.key] = wave[parent] + 1 if parent in wave else 0
    out: list[list] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
    for cell in cells:
        out[wave[cell.key]].append(cell)
    return out


class CellTask(Checkpointable):
    """One array task: run one cell. Checkpointable: a requeued task just runs it again."""

    def __call__(self, cell, exp, results_dir: str, *, needs: tuple[str, str] | None, force: bool):
        from harness.runner import Outcome, run_cell

        if needs is not None:  # the parent ran in this submission: did it leave a good record?
            kind, parent = needs
            if (
                not record_file(Path(results_dir), kind, parent).exists()
                or failure_path(Path(results_dir), kind, parent).exists()
            ):
                return Outcome("blocked", f"needs {parent}, which left no record")
        return run_cell(cell, exp, results_dir, force=force)


def hub_cache() -> Path:
    """The host's Hugging Face home (HF_HOME, else ~/.cache/huggingface)."""
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()


def python_command(
    container: str | None, binds: Sequence[Path], gpus: int, hf_home: Path | None = None
) -> str:
    """The interpreter command of the sbatch template; inside ``apptainer exec`` with a container.

    Paths are bound at the same place inside the container (submitit passes host paths),
    the results directory also at /results and the host's hub cache (``hf_home``, default
    :func:`hub_cache`) at /hf, where the images expect them: the image's own /hf is read-only
    and its HF_HOME overrides the host's, so without the bind no hub model loads.
    """
    if not container:
        return shlex.quote(sys.executable)
    hf_home = Path(hf_home or hub_cache()).resolve()
    args = ["apptainer", "exec"] + (["--nv"] if gpus else [])
    for path in dict.fromkeys(binds):
        args.append(f"--bind={path}:{path}")
    args += [f"--bind={binds[0]}:/results", f"--bind={hf_home}:/hf", container, "python"]
    return shlex.join(args)


def _outcome_from_pickle(job):
    from submitit.core import utils

    from harness.runner import Outcome

    status, value = utils.pickle_load(job.paths.result_pickle)
    if status == "success":
        return value
    return Outcome("failed", _last_line(str(value))[:300])


def _squeue_states() -> dict[str, tuple[str, str]] | None:
    """job id (array tasks one per line) -> (state, reason), for this user's jobs SLURM still knows."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None  # the controller is busy or restarting: no news this round
    rows = (line.split("|") for line in out.stdout.splitlines())
    return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3}


def _dependency(parents: set[str], submitted: Sequence[str]) -> str | None:
    """``afterany:`` on the parents' array tasks; a whole array by its id when all of it is needed."""
    if not parents:
        return None
    tasks: dict[str, set[str]] = {}
    for job_id in submitted:
        tasks.setdefault(job_id.split("_")[0], set()).add(job_id)
    ids = []
    for array, members in sorted(tasks.items(), key=lambda kv: int(kv[0])):
        needed = members & parents
        ids += [array] if needed == members else sorted(needed, key=lambda j: int(j.split("_")[1]))
    return "afterany:" + ":".join(ids)


def _submit_wave(wave_no: int, cells: list, requests: dict, jobs: dict, submit: Callable) -> None:
    groups: dict[tuple, list] = {}
    for cell in cells:
        res = requests[cell.key]
        groups.setdefault((cell.kind, *sorted(res.items())), []).append(cell)
    for (kind, *res_items), group in groups.items():
        parents = {jobs[c.needs].job_id for c in group if c.needs in jobs}
        submit(
            wave_no,
            kind,
            dict(res_items),
            _dependency(parents, [j.job_id for j in jobs.values()]),
            group,
        )


@dataclass(frozen=True, kw_only=True)
class Options:
    """The SLURM executor's settings (``--container``, ``--partition``)."""

    container: str | None = None  # run each cell under ``apptainer exec --nv`` this image
    partition: str | None = None
    slurm_options: dict[str, Any] | None = None  # more submitit parameters (account, qos, ...)


def run(plan, results_dir: Path, options: Options, *, force: bool = False, progress=None) -> dict:
    """The executor contract (harness.executors): the cluster checked, then :func:`run_slurm`."""
    check_slurm()  # before anything is submitted: nothing computed is lost on a bad cluster
    return run_slurm(
        plan,
        results_dir,
        force=force,
        container=options.container,
        partition=options.partition,
        slurm_options=options.slurm_options,
        progress=progress,
    )


def run_slurm(
    plan,
    results_dir: str | Path,
    *,
    force: bool = False,
    container: str | None = None,
    partition: str | None = None,
    wait: bool = True,
    poll_s: float = 5,
    slurm_options: dict[str, Any] | None = None,
    progress=None,
    max_wait_s: float | None = None,
) -> dict[str, Outcome]:
    """Submit ``plan.todo`` as dependent job arrays; with ``wait``, poll until every task ended.

    Returns cell key -> :class:`harness.runner.Outcome` (with ``wait=False``: 'submitted';
    past ``max_wait_s``: 'unfinished').
    ``slurm_options`` are extra submitit SlurmExecutor parameters (account, qos, time, ...).
    """
    import submitit

    from harness.runner import Outcome

    results_dir = Path(results_dir).resolve()
    if not plan.todo:
        return {}
    exp = plan.expansion
    folder = results_dir / "slurm" / f"{datetime.now():%Y%m%d-%H%M%S}-{exp.grid.name}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    binds = [results_dir]
    if os.environ.get("BENCH_CACHE"):
        binds.append(Path(os.environ["BENCH_CACHE"]).expanduser().resolve())
    if container:
        hub_cache().mkdir(parents=True, exist_ok=True)  # apptainer binds existing paths only
    # every cell's request first: a plan that cannot fit is refused before anything is submitted
    requests = {c.key: resources(c, exp.grid) for c in plan.todo}
    todo_kind = {c.key: c.kind for c in plan.todo}
    jobs: dict[str, Any] = {}

    def submit(wave_no: int, kind: str, res: dict, dependency: str | None, group: list) -> None:
        ex = submitit.SlurmExecutor(
            folder,
            max_num_timeout=MAX_TIMEOUTS,
            python=python_command(container, binds, res["gpus"]),
        )
        params: dict[str, Any] = {
            "job_name": f"bench-{exp.grid.name}-w{wave_no}-{kind}",
            "time": res["timeout_min"],
            "cpus_per_task": res["cpus"],
            "mem": f"{res['mem_gb']}GB",
        }
        if res["gpus"]:
            params["gpus_per_node"] = res["gpus"]
        if partition:
            params["partition"] = partition
        if dependency:
            params["dependency"] = dependency
        ex.update_parameters(**{**params, **(slurm_options or {})})
        try:
            with ex.batch():
                submitted = [
                    ex.submit(
                        CellTask(),
                        c,
                        exp,
                        str(results_dir),
                        needs=(todo_kind[c.needs], c.needs) if c.needs in todo_kind else None,
                        force=force,
                    )
                    for c in group
                ]
        except Exception as e:
            done = ", ".join(sorted({j.job_id.split("_")[0] for j in jobs.values()})) or "none"
            raise BenchError(
                f"sbatch refused wave {wave_no} ({kind}): {_last_line(str(e))}; "
                f"fix the SLURM options (partition, account, resources); already submitted: {done}"
            ) from None
        for cell, job in zip(group, submitted, strict=True):
            jobs[cell.key] = job
            if progress is not None:
                progress(cell, Outcome("submitted", job.job_id))

    for wave_no, cells in enumerate(waves(plan.todo)):
        _submit_wave(wave_no, cells, requests, jobs, submit)
    if not wait:
        return {key: Outcome("submitted", job.job_id) for key, job in jobs.items()}
    return _wait(plan, jobs, poll_s, progress, max_wait_s)


def _wait(plan, jobs: dict, poll_s: float, progress, max_wait_s: float | None) -> dict:
    from harness.runner import Outcome

    outcome: dict = {}
    ended: dict[str, float] = {}  # key -> when squeue first showed its job ended without a result
    cells = {c.key: c for c in plan.todo}
    start = time.monotonic()
    while len(outcome) < len(jobs):
        states = _squeue_states()
        for key, job in jobs.items():
            if key in outcome:
                continue
            with suppress(OSError):  # refresh NFS attribute caches (submitit's own trick)
                job.paths.folder.chmod(job.paths.folder.stat().st_mode)
            state, reason = (states or {}).get(job.job_id, ("GONE", ""))
            if job.paths.result_pickle.exists():
                outcome[key] = _outcome_from_pickle(job)
            elif states is None:
                continue
            elif state == "PENDING" and reason in NEVER_STARTS:
                subprocess.run(["scancel", job.job_id], capture_output=True, timeout=60)
                outcome[key] = Outcome(
                    "failed",
                    f"job {job.job_id} can never start ({reason}); cancelled it: "
                    "fix the SLURM options (partition, resources, account)",
                )
            elif state in TERMINAL:
                if time.monotonic() - ended.setdefault(key, time.monotonic()) >= GRACE_S:
                    state = "no longer in squeue" if state == "GONE" else state
                    outcome[key] = Outcome(
                        "failed",
                        f"job {job.job_id} ended ({state}) without a result; "
                        f"see {job.paths.stderr}",
                    )
            else:
                ended.pop(key, None)  # requeued, pending or running again
            if key in outcome and progress is not None:
                progress(cells[key], outcome[key])
        if len(outcome) < len(jobs):
            if max_wait_s is not None and time.monotonic() - start > max_wait_s:
                for key, job in jobs.items():
                    state = (states or {}).get(job.job_id, ("queued",))[0]
                    outcome.setdefault(
                        key,
                        Outcome(
                            "unfinished", f"job {job.job_id} still {state} after {max_wait_s:.0f}s"
                        ),
                    )
                break
            time.sleep(poll_s)
    return outcome
