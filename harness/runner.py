"""Run a grid: cells in dependency order, finished cells skipped, failures recorded, resumable.

Every cell is idempotent by key: its record is written atomically at the very end, so a
runner killed at any moment loses at most the cell in flight, and the next run redoes
exactly the cells without a record (a train cell resumes from its last checkpoint).
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import BenchError
from harness.grid import EvalCell, Expansion, TrainCell, expand, load_grid
from harness.status import cell_status, failure_path, record_file
from leaderboards.record import RunRecord, write_record

__all__ = ["Plan", "plan_grid", "run_cell", "run_local", "stage_dir", "CellBusy"]


class CellBusy(RuntimeError):
    """Another process holds this cell's lock."""


@dataclass
class Plan:
    expansion: Expansion
    todo: list[TrainCell | EvalCell]
    skipped: list[tuple[TrainCell | EvalCell, str]]
    reasons: dict[str, str]


def stage_dir(results_dir: Path, train_key: str) -> Path:
    return Path(results_dir) / "checkpoints" / train_key


def _matches(cell, only: str | None) -> bool:
    if not only:
        return True
    return any(fnmatch.fnmatch(s, p) for p in only.split(",") for s in (cell.cell_id, cell.key, cell.kind, cell.stage))


def _with_overrides(grid_ref: str, backend: str | None, limit: int | None):
    grid = load_grid(grid_ref)
    if backend or limit:
        update = {k: v for k, v in (("backend", backend), ("limit", limit)) if v}
        grid = grid.model_copy(update={"eval": grid.eval.model_copy(update=update)})
    return grid


def plan_grid(grid_ref: str, results_dir: Path, *, only: str | None = None, force: bool = False,
              kind: str | None = None, backend: str | None = None, limit: int | None = None) -> Plan:
    """What a run would do and why: dependency order (parents first, then their evals)."""
    exp = expand(_with_overrides(grid_ref, backend, limit))
    depth = {c.key: c.stage.count("+") for c in exp.train}
    ordered = sorted(exp.train, key=lambda c: depth[c.key]) + sorted(exp.eval, key=lambda c: c.stage.count("+"))
    todo, skipped, reasons = [], [], {}
    for cell in ordered:
        if kind and cell.kind != kind:
            continue
        if not _matches(cell, only):
            continue
        status, why = cell_status(cell, results_dir)
        if status == "done" and not force:
            skipped.append((cell, why))
            continue
        reasons[cell.key] = "forced" if status == "done" else why
        todo.append(cell)
    return Plan(exp, todo, skipped, reasons)


@contextmanager
def _cell_lock(results_dir: Path, key: str) -> Iterator[None]:
    path = Path(results_dir) / "locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CellBusy(key) from None
        yield


def _peak_bytes(peak) -> int | None:
    """The manifest reports peak memory (GB) after load and after training; keep the max."""
    if isinstance(peak, dict):
        peak = max((v for v in peak.values() if isinstance(v, int | float)), default=0)
    return int(peak * 1e9) or None if isinstance(peak, int | float) else None


def _train(cell: TrainCell, exp: Expansion, results_dir: Path) -> RunRecord:
    from harness.zoo import get_model, materialize
    from trainers import train_stage

    parent = None
    if cell.parent_key is not None:
        if not record_file(results_dir, "train", cell.parent_key).exists():
            raise RuntimeError(f"parent stage {cell.model}/{cell.parent_stage} ({cell.parent_key}) has no record")
        parent = stage_dir(results_dir, cell.parent_key)
    spec = get_model(cell.model)
    out = stage_dir(results_dir, cell.key)
    started, t0 = datetime.now(UTC), time.perf_counter()
    manifest = train_stage(cell.method, dict(cell.config),
                           base_model=materialize(cell.model), parent=parent, output_dir=out,
                           target=exp.grid.target, seed=exp.grid.seed)
    metrics = {k: float(v) for k, v in manifest.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    record = RunRecord(
        kind="train", cell_key=cell.key, grid=exp.grid.name, model_id=cell.model, model_revision=spec.revision,
        recipe=cell.stage.split("+"), stage=cell.stage, parent_key=cell.parent_key,
        method_configs={cell.step: {"method": cell.method, **cell.config}}, checkpoint=str(out),
        target=exp.grid.target, seed=exp.grid.seed, wall_s=time.perf_counter() - t0,
        tokens_per_s=manifest.get("tokens_per_s"), peak_memory_bytes=_peak_bytes(manifest.get("peak_memory_gb")),
        train_metrics=metrics, started_at=started,
    )
    from harness.provenance import provenance

    record.provenance = provenance()
    write_record(record, results_dir)
    return record


def _eval(cell: EvalCell, exp: Expansion, results_dir: Path) -> RunRecord:
    from harness.evaluate import EvalRequest, run_eval
    from harness.zoo import get_model, materialize

    spec = get_model(cell.load)
    if cell.train_key is not None:
        if not record_file(results_dir, "train", cell.train_key).exists():
            raise RuntimeError(f"stage {cell.model}/{cell.stage} ({cell.train_key}) has no train record")
        weights = stage_dir(results_dir, cell.train_key)
    else:
        weights = materialize(cell.load)
    s = cell.settings
    configs = {c.step: {"method": c.method, **c.config} for c in exp.train
               if c.model == cell.model and (cell.stage + "+").startswith(c.stage + "+")}
    req = EvalRequest(cell_key=cell.key, model_id=cell.model, weights=weights, tasks=[t for t, _ in cell.tasks],
                      stage=cell.stage, grid=exp.grid.name, recipe=[] if cell.stage == "base" else cell.stage.split("+"),
                      backend=s.backend, limit=s.limit, num_fewshot=s.num_fewshot,
                      apply_chat_template=s.apply_chat_template, gen_kwargs=s.gen_kwargs, batch_size=s.batch_size,
                      target=exp.grid.target, seed=exp.grid.seed, model_revision=spec.revision,
                      trust_remote_code=spec.trust_remote_code, method_configs=configs, parent_key=cell.train_key)
    return run_eval(req, results_dir)


def run_cell(grid_ref: str, key: str, results_dir: str | Path, *, backend: str | None = None,
             limit: int | None = None, force: bool = False) -> str:
    """Run one cell by key (the unit an executor schedules). Returns 'done', 'skipped' or raises."""
    results_dir = Path(results_dir)
    exp = expand(_with_overrides(grid_ref, backend, limit))
    cell = next((c for c in exp.cells if c.key == key), None)
    if cell is None:
        raise BenchError(f"grid {exp.grid.name}: no cell with key {key}; see `bench grid show {grid_ref}`")
    if record_file(results_dir, cell.kind, key).exists() and not force:
        return "skipped"
    with _cell_lock(results_dir, key):
        if record_file(results_dir, cell.kind, key).exists() and not force:
            return "skipped"  # another process finished it while we waited
        try:
            (_train if cell.kind == "train" else _eval)(cell, exp, results_dir)
        except BenchError:
            raise
        except Exception as e:
            path = failure_path(results_dir, cell.kind, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"cell": cell.cell_id, "key": key, "error": f"{type(e).__name__}: {e}",
                                        "traceback": traceback.format_exc(), "at": datetime.now(UTC).isoformat()}))
            raise
        failure_path(results_dir, cell.kind, key).unlink(missing_ok=True)
    return "done"


def _run_in_worker(grid_ref: str, key: str, results_dir: str, backend, limit, force) -> str:
    try:
        return run_cell(grid_ref, key, results_dir, backend=backend, limit=limit, force=force)
    except CellBusy:
        return "busy"
    except Exception as e:  # recorded in results/failures by run_cell
        return f"failed: {type(e).__name__}: {e}"[:200]


def _run_evals_parallel(cells, grid_ref, results_dir, backend, limit, force, workers, failed, progress) -> dict[str, str]:
    """Eval cells in ``workers`` processes (each loads its own model; the trains are done by now)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    outcome: dict[str, str] = {}
    ready = [c for c in cells if c.train_key not in failed]
    outcome.update({c.key: "blocked" for c in cells if c.train_key in failed})
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_in_worker, grid_ref, c.key, str(results_dir), backend, limit, force): c
                   for c in ready}
        for fut in as_completed(futures):
            cell = futures[fut]
            outcome[cell.key] = fut.result()
            if progress is not None:
                progress(cell, outcome[cell.key])
    return outcome


def run_local(plan: Plan, grid_ref: str, results_dir: Path, *, backend: str | None = None,
              limit: int | None = None, force: bool = False, progress=None, workers: int = 1) -> dict[str, str]:
    """Local executor: cells in order, one at a time; with ``workers > 1`` the eval cells run in
    that many processes once the training cells are done. A failed cell does not stop the grid;
    its descendants are skipped."""
    outcome: dict[str, str] = {}
    failed: set[str] = set()
    sequential = plan.todo if workers <= 1 else [c for c in plan.todo if c.kind == "train"]
    for cell in sequential:
        blocker = cell.parent_key if cell.kind == "train" else cell.train_key
        if blocker in failed:
            outcome[cell.key] = "blocked"
            failed.add(cell.key)
            continue
        if progress is not None:
            progress(cell, "start")
        try:
            outcome[cell.key] = run_cell(grid_ref, cell.key, results_dir, backend=backend, limit=limit, force=force)
        except CellBusy:
            outcome[cell.key] = "busy"
        except BenchError:
            raise
        except Exception as e:  # recorded in results/failures; the grid goes on
            outcome[cell.key] = f"failed: {type(e).__name__}: {e}"[:200]
            failed.add(cell.key)
        if progress is not None:
            progress(cell, outcome[cell.key])
    if workers > 1:
        evals = [c for c in plan.todo if c.kind == "eval"]
        outcome.update(_run_evals_parallel(evals, grid_ref, results_dir, backend, limit, force, workers, failed, progress))
    return outcome


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
