"""The local executor: a plan's cells in this process, in order; eval cells optionally in N processes.

A failed cell does not stop the grid; cells that need it are ``blocked``. A cell another
runner holds is ``busy`` (not a failure), and so are the cells waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.runner import Cell, Outcome, Plan, run_cell

__all__ = ["run_local"]

Progress = Callable[[Cell, Outcome | str], None] | None


def _waiting_on(cell: Cell, outcome: dict[str, Outcome]) -> Outcome | None:
    need = outcome.get(cell.needs or "")
    if need is None or need.ok:
        return None
    if need.status == "busy":
        return Outcome("busy", "waits for a cell another runner holds")
    return Outcome("blocked", f"needs {cell.needs}, which {need.status}")


def _run_in_worker(cell: Cell, plan: Plan, results_dir: str, force: bool) -> Outcome:
    return run_cell(cell, plan.expansion, results_dir, force=force)


def _evals_parallel(
    cells: list[Cell],
    plan: Plan,
    results_dir: Path,
    force: bool,
    workers: int,
    outcome: dict[str, Outcome],
    progress: Progress,
) -> None:
    """Eval cells in ``workers`` processes (each loads its own model; the trains are done by now)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ready = []
    for cell in cells:
        waiting = _waiting_on(cell, outcome)
        if waiting is None:
            ready.append(cell)
        else:
            outcome[cell.key] = waiting
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_in_worker, c, plan, str(results_dir), force): c for c in ready}
        for fut in as_completed(futures):
            cell = futures[fut]
            outcome[cell.key] = fut.result()
            if progress is not None:
                progress(cell, outcome[cell.key])


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
    sequential = plan.todo if workers <= 1 else [c for c in plan.todo if c.kind == "train"]
    for cell in sequential:
        waiting = _waiting_on(cell, outcome)
        if waiting is not None:
            outcome[cell.key] = waiting
        else:
            if progress is not None:
                progress(cell, "start")
            outcome[cell.key] = run_cell(cell, plan.expansion, results_dir, force=force)
        if progress is not None:
            progress(cell, outcome[cell.key])
    if workers > 1:
        evals = [c for c in plan.todo if c.kind == "eval"]
        _evals_parallel(evals, plan, results_dir, force, workers, outcome, progress)
    return outcome
