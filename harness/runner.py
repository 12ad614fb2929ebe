"""Plan a grid once, then run its cells: finished cells skipped, failures recorded, resumable.

Every cell is idempotent by key: its record is written atomically at the very end, so a
runner killed at any moment loses at most the cell in flight, and the next run redoes
exactly the cells without a record (a train cell resumes from its last checkpoint).
Executors (``harness.executors.local``, ``harness.executors.slurm``) take a :class:`Plan`
and call :func:`run_cell` with the cell itself: nothing is re-loaded or re-expanded.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import logging
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from harness.errors import BenchError
from harness.grid import EvalCell, Expansion, GridSpec, TrainCell, expand
from harness.status import (
    CellStatus,
    cell_status,
    failure_path,
    is_finished,
    previous_records,
    record_file,
)
from leaderboards.record import RunRecord, TrainSummary, write_record
from leaderboards.sidecar import FailureRecord, StageCell

log = logging.getLogger(__name__)

__all__ = [
    "Cell",
    "Outcome",
    "Plan",
    "plan_grid",
    "run_cell",
    "stage_dir",
    "CellBusy",
    "record_failure",
    "STAGE_CELL_FILE",
]

Cell = TrainCell | EvalCell
STAGE_CELL_FILE = "cell.json"  # beside manifest.json: which cell of which grid trained this stage


class CellBusy(RuntimeError):
    """Another process holds this cell's lock."""


@dataclass(frozen=True)
class Outcome:
    """What happened to a cell in this run."""

    status: Literal["done", "skipped", "failed", "blocked", "busy", "submitted", "unfinished"]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("done", "skipped")

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


@dataclass
class Plan:
    expansion: Expansion
    todo: list[Cell]
    skipped: list[tuple[Cell, str]]
    status: dict[str, CellStatus] = field(default_factory=dict)  # every cell of the expansion

    @property
    def grid(self) -> GridSpec:
        return self.expansion.grid

    @property
    def reasons(self) -> dict[str, str]:
        return {c.key: self.status[c.key].why for c in self.todo}


def stage_dir(results_dir: Path, train_key: str) -> Path:
    return Path(results_dir) / "checkpoints" / train_key


def _matches(cell: Cell, only: str | None) -> bool:
    if not only:
        return True
    return any(
        fnmatch.fnmatch(s, p)
        for p in only.split(",")
        for s in (cell.cell_id, cell.key, cell.kind, cell.stage)
    )


def _ordered(exp: Expansion) -> list[Cell]:
    """Parents first: train cells by depth, then eval cells by depth."""
    depth = lambda c: c.stage.count("+")  # noqa: E731
    return sorted(exp.train, key=depth) + sorted(exp.eval, key=lambda c: len(c.recipe))


def plan_grid(
    grid: GridSpec | str,
    results_dir: Path,
    *,
    only: str | None = None,
    force: bool = False,
    kind: str | None = None,
) -> Plan:
    """What a run would do and why, in dependency order (a grid name or path is loaded here, once)."""
    if isinstance(grid, str):
        from harness.grid import load_grid

        grid = load_grid(grid)
    exp = expand(grid)
    previous = previous_records(results_dir)
    status: dict[str, CellStatus] = {}
    todo, skipped = [], []
    for cell in _ordered(exp):
        parent = status.get(cell.needs or "")
        status[cell.key] = cell_status(cell, results_dir, previous, parent)
        if (
            cell.kind == "train"
            and status[cell.key].done
            and parent is not None
            and not parent.done
        ):
            # a child's adapter is relative to its parent's merged weights: a parent trained
            # again makes its children stale (trainers/__init__: merge, then a fresh adapter)
            status[cell.key] = CellStatus(
                "changed", f"parent {cell.parent_stage} will be trained again ({parent.why})"[:200]
            )
        if (kind and cell.kind != kind) or not _matches(cell, only):
            continue
        if status[cell.key].done and not force:
            skipped.append((cell, status[cell.key].why))
            continue
        if status[cell.key].done:
            status[cell.key] = CellStatus("done", "forced")
        todo.append(cell)
    if only and not todo and not skipped:
        raise BenchError(
            f"--only {only}: matches no cell of grid {grid.name}; see `bench grid show {grid.name}`"
        )
    return Plan(exp, todo, skipped, status)


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


def _train(cell: TrainCell, grid: GridSpec, results_dir: Path) -> RunRecord:
    from harness._live import train_progress
    from harness.provenance import provenance
    from harness.zoo import get_model, materialize
    from trainers import train_stage

    parent = None
    if cell.parent_key is not None:
        if not record_file(results_dir, "train", cell.parent_key).exists():
            raise RuntimeError(
                f"parent stage {cell.model}/{cell.parent_stage} ({cell.parent_key}) has no record"
            )
        parent = stage_dir(results_dir, cell.parent_key)
    spec = get_model(cell.model)
    out = stage_dir(results_dir, cell.key)
    started, t0 = datetime.now(UTC), time.perf_counter()
    config = {**cell.config, "trust_remote_code": spec.trust_remote_code}
    manifest = train_stage(
        cell.method,
        config,
        base_model=materialize(cell.model),
        parent=parent,
        output_dir=out,
        target=grid.target,
        seed=grid.seed,
        progress=train_progress,
    )
    record = RunRecord(
        kind="train",
        cell_key=cell.key,
        grid=grid.name,
        model_id=cell.model,
        model_revision=spec.revision,
        recipe=cell.stage.split("+"),
        stage=cell.stage,
        parent_key=cell.parent_key,
        inputs=cell.inputs,
        method_configs={cell.step: {"method": cell.method, **cell.resolved}},
        checkpoint=str(out),
        weights_key=cell.key,
        parent_stage=cell.parent_stage,
        target=grid.target,
        seed=grid.seed,
        # a stage resumed from a checkpoint: the parts before the resume count too
        wall_s=time.perf_counter() - t0 + (manifest.resumed_cost or {}).get("wall_s", 0.0),
        tokens_per_s=manifest.tokens_per_s,
        peak_rss_bytes=manifest.peak_rss_bytes,
        peak_cuda_bytes=manifest.peak_cuda_bytes,
        # the manifest's figures under the same names (a test holds TrainSummary to that)
        train=TrainSummary(**{f: getattr(manifest, f) for f in TrainSummary.model_fields}),
        started_at=started,
        provenance=provenance(),
    )
    stage_cell = StageCell(
        cell_key=cell.key,
        grid=grid.name,
        model=cell.model,
        stage=cell.stage,
        recipe=record.recipe,
        parent_key=cell.parent_key,
        inputs=cell.inputs,
    )
    (out / STAGE_CELL_FILE).write_text(stage_cell.model_dump_json(indent=2))
    write_record(record, results_dir)
    return record


def _eval(cell: EvalCell, exp: Expansion, results_dir: Path) -> RunRecord:
    from harness.evaluate import EvalRequest, run_eval
    from harness.zoo import get_model, materialize

    revision = None
    if (
        Path(cell.load).is_dir() and (Path(cell.load) / "manifest.json").exists()
    ):  # bench eval --checkpoint
        weights = Path(cell.load)
    elif cell.train_key is not None:  # a grid's trained stage
        if not record_file(results_dir, "train", cell.train_key).exists():
            raise RuntimeError(
                f"stage {cell.model}/{cell.stage} ({cell.train_key}) has no train record"
            )
        weights, revision = stage_dir(results_dir, cell.train_key), get_model(cell.load).revision
    else:
        weights, revision = materialize(cell.load), get_model(cell.load).revision
    configs = {
        c.step: {"method": c.method, **c.resolved}
        for c in exp.train
        if c.model == cell.model and (cell.stage + "+").startswith(c.stage + "+")
    }
    from bench_core.mirror import use_data_dir

    with use_data_dir(exp.grid.data_dir):
        return run_eval(
            EvalRequest.for_cell(cell, exp.grid, weights, revision, configs), results_dir
        )


def _why(error: BaseException) -> str:
    """The failure's one line; full or read-only storage said plainly, not as errno 28."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {error.filename}" if error.filename else ""
        return f"disk full{where} (no space left on device); free space and run again"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return f"read-only file system ({error.filename or 'results'}); pick a writable --results"
    return f"{type(error).__name__}: {error}"


def record_failure(results_dir: Path, cell: Cell, error: BaseException) -> None:
    """``results/failures/<kind>-<key>.json``: the error and the traceback being handled.

    Written whole (by rename), or on a full disk the shortest one that fits, or none: never
    a 0-byte file, never an error that hides the cell's own."""
    path = failure_path(results_dir, cell.kind, cell.key)
    doc = FailureRecord(
        kind=cell.kind,
        cell_key=cell.key,
        model_id=cell.model,
        stage=cell.stage,
        error=_why(error),
        traceback="".join(traceback.format_exception(error)),
        at=datetime.now(UTC),
    )
    tmp = path.with_name(f".{path.name}.tmp")
    for text in (doc.model_dump_json(), doc.model_dump_json(exclude={"traceback"})):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
            os.replace(tmp, path)
            return
        except OSError:
            tmp.unlink(missing_ok=True)
    log.warning("%s: cannot write the failure file (%s)", path, doc.error)


def run_cell(
    cell: Cell,
    exp: Expansion,
    results_dir: str | Path,
    *,
    force: bool = False,
    reraise: bool = False,
) -> Outcome:
    """Run one cell (the unit an executor schedules). A user mistake raises BenchError; any
    other error is written to ``results/failures/`` first and returned as a failed outcome
    (or, with ``reraise``, raised again: a single ``bench eval`` shows the bug's traceback)."""
    results_dir = Path(results_dir)
    if not force and is_finished(cell, results_dir):
        return Outcome("skipped")
    try:
        with _cell_lock(results_dir, cell.key):
            if not force and is_finished(cell, results_dir):
                return Outcome("skipped", "another runner finished it")
            try:
                if cell.kind == "train":
                    _train(cell, exp.grid, results_dir)
                else:
                    _eval(cell, exp, results_dir)
            except BenchError:
                raise
            except Exception as e:  # a bug or a runtime failure: recorded, the grid goes on
                record_failure(results_dir, cell, e)
                if reraise:
                    raise
                return Outcome("failed", _why(e)[:300])
            failure_path(results_dir, cell.kind, cell.key).unlink(missing_ok=True)
    except CellBusy:
        return Outcome("busy", "another runner holds this cell")
    return Outcome("done")
