"""The local executor: a plan's cells in order; eval cells optionally in N processes.

A failed cell does not stop the grid; cells that need it are ``blocked``. A cell another
runner holds is ``busy`` (not a failure), and so are the cells waiting for it.

On a GPU target every cell runs in a (spawned) process of its own, as under SLURM: the CUDA
memory a cell held goes back to the card when its process ends. In one process the caching
allocator keeps it, and a vLLM eval after training fails vLLM's free-memory check. On CPU the
cells run in this process (no start-up cost); ``BENCH_CELL_PROCESS=1`` (or ``0``) forces
either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import _live
from harness.errors import BenchError
from harness.runner import Cell, Outcome, Plan, record_failure, run_cell

__all__ = ["Options", "run", "run_local", "cell_process", "CELL_PROCESS_ENV"]

CELL_PROCESS_ENV = "BENCH_CELL_PROCESS"  # auto (a process per cell on GPU targets) | 1 | 0

Progress = Callable[[Cell, Outcome | str], None] | None


@dataclass(frozen=True, kw_only=True)
class Options:
    """The local executor's settings (``--workers``)."""

    workers: int = 1  # eval cells in this many processes (train cells run one after another)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise BenchError(f"--workers {self.workers}: must be at least 1")


def _waiting_on(cell: Cell, outcome: dict[str, Outcome]) -> Outcome | None:
    need = outcome.get(cell.needs or "")
    if need is None or need.ok:
        return None
    if need.status == "busy":
        return Outcome("busy", "waits for a cell another runner holds")
    return Outcome("blocked", f"needs {cell.needs}, which {need.status}")


def cell_process(target: str) -> bool:
    """Whether each cell of a grid on ``target`` runs in a process of its own."""
    how = os.environ.get(CELL_PROCESS_ENV, "auto").strip().lower()
    if how in ("0", "1"):
        return how == "1"
    if how != "auto":
        raise BenchError(f"{CELL_PROCESS_ENV}={how!r}: use auto, 1 or 0")
    from containers.targets import get_target

    return get_target(target).is_gpu


def _child(cell: Cell, plan: Plan, results_dir: str, force: bool, conn, log: str | None) -> None:
    if log is not None:  # a live view shows the run: the cell's output goes to its log file
        f = open(log, "a", buffering=1)  # noqa: SIM115 - open until the process ends
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        _live._sink = lambda phase: conn.send(("phase", phase))
    try:
        conn.send(("outcome", run_cell(cell, plan.expansion, results_dir, force=force)))
    except BenchError as e:
        try:
            conn.send(("error", e))
        except Exception:  # noqa: BLE001 - an error type that does not pickle: its message
            conn.send(("error", BenchError(str(e))))


def _run_in_process(cell: Cell, plan: Plan, results_dir: Path, force: bool) -> Outcome:
    """:func:`run_cell` in a spawned process; its phases reach this process's live view, a
    user mistake is raised here, and a process that dies without an answer (killed for
    memory, a crash) is recorded as the cell's failure."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    log = str(_live.log_path(results_dir, cell)) if _live._sink is not None else None
    args = (cell, plan, str(results_dir), force, send, log)
    proc = ctx.Process(target=_child, args=args, name=f"bench-{cell.kind}-{cell.key}")
    proc.start()
    send.close()
    answer = None
    while True:
        try:
            kind, value = recv.recv()
        except EOFError:
            break
        if kind == "phase":
            _live.report(value)
        else:
            answer = kind, value
    proc.join()
    if answer is None:
        code = proc.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        error = RuntimeError(f"the cell's process ended without a result ({why})")
        record_failure(results_dir, cell, error)
        return Outcome("failed", str(error))
    kind, value = answer
    if kind == "error":
        raise value
    return value


def _run_here(cell: Cell, plan: Plan, results_dir: Path | str, force: bool) -> Outcome:
    return run_cell(cell, plan.expansion, results_dir, force=force)


_free_gpus = None  # in an eval worker process: the queue of GPUs no cell holds


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _hold_gpus(queue) -> None:
    global _free_gpus
    _free_gpus = queue


def _on_a_gpu(fn: Callable, *args):
    """``fn(*args)`` in a fresh worker process with one free GPU its only visible one, so
    parallel eval cells do not all start on GPU 0; the GPU is free again when it returns."""
    gpu = _free_gpus.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        return fn(*args)
    finally:
        _free_gpus.put(gpu)


def _eval_pool(workers: int, per_cell: bool):
    """(process pool, how its tasks run) for parallel eval cells: with a process per cell
    (GPU targets) each worker takes one of the visible GPUs for its cell."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    spawn = mp.get_context("spawn")
    gpus = _visible_gpus() if per_cell else []
    if not gpus:
        per_task = 1 if per_cell else None
        return ProcessPoolExecutor(workers, mp_context=spawn, max_tasks_per_child=per_task), None
    free = spawn.Queue()
    for gpu in gpus:
        free.put(gpu)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=spawn,
        max_tasks_per_child=1,
        initializer=_hold_gpus,
        initargs=(free,),
    )
    return pool, _on_a_gpu


def _evals_parallel(
    cells: list[Cell],
    plan: Plan,
    results_dir: Path,
    *,
    force: bool,
    workers: int,
    outcome: dict[str, Outcome],
    progress: Progress,
) -> None:
    """Eval cells in ``workers`` processes (each loads its own model; the trains are done by now)."""
    from concurrent.futures import as_completed

    ready = []
    for cell in cells:
        waiting = _waiting_on(cell, outcome)
        if waiting is None:
            ready.append(cell)
        else:
            outcome[cell.key] = waiting
    # a fresh process per cell where cells get their own (a GPU's memory back after each)
    pool, on_a_gpu = _eval_pool(workers, cell_process(plan.grid.target))
    with pool:
        futures = {}
        for c in ready:
            task = (_run_here, c, plan, str(results_dir), force)
            futures[pool.submit(on_a_gpu, *task) if on_a_gpu else pool.submit(*task)] = c
        for fut in as_completed(futures):
            cell = futures[fut]
            outcome[cell.key] = fut.result()
            if progress is not None:
                progress(cell, outcome[cell.key])


def run(
    plan: Plan,
    results_dir: Path,
    options: Options,
    *,
    force: bool = False,
    progress: Progress = None,
) -> dict[str, Outcome]:
    """The executor contract (harness.executors): :func:`run_local` with ``options``."""
    return run_local(plan, results_dir, force=force, progress=progress, workers=options.workers)


def run_local(
    plan: Plan,
    results_dir: Path,
    *,
    force: bool = False,
    progress: Progress = None,
    workers: int = 1,
) -> dict[str, Outcome]:
    """Run ``plan.todo``; returns cell key -> :class:`Outcome`."""
    outcome: dict[str, Outcome] = {}
    run = _run_in_process if cell_process(plan.grid.target) else _run_here
    sequential = plan.todo if workers <= 1 else [c for c in plan.todo if c.kind == "train"]
    for cell in sequential:
        waiting = _waiting_on(cell, outcome)
        if waiting is not None:
            outcome[cell.key] = waiting
        else:
            if progress is not None:
                progress(cell, "start")
            outcome[cell.key] = run(cell, plan, results_dir, force)
        if progress is not None:
            progress(cell, outcome[cell.key])
    if workers > 1:
        evals = [c for c in plan.todo if c.kind == "eval"]
        _evals_parallel(
            evals,
            plan,
            results_dir,
            force=force,
            workers=workers,
            outcome=outcome,
            progress=progress,
        )
    return outcome
