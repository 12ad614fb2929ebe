"""Re-score stored completions with the current verifiers, without loading a model.

An eval record's payload names the verifier versions that scored each task
(``inputs.verifiers``). When a task's verifiers now have other versions, the record's
completions are scored again through the task's own hooks (``sample_fields`` for the rows,
``process_results`` and the YAML's aggregations for the metrics) and written as a NEW record:
the same generation inputs with the current verifier versions, hence a new key, which is the
key a fresh run of the same cell would get. The new record holds the re-scored tasks only; the
old record and its rows stay (and still hold the tasks whose verifiers did not change). A second
run finds that key's record and re-scores nothing.

The docs a verifier needs come back from the rows' ``meta`` (the doc's short scalar fields:
``reference``, ``label``, ``source``...), which the harness stores with every sample.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import BenchError
from harness.keys import content_key
from leaderboards.record import (
    MetricValue,
    RunRecord,
    TaskResult,
    read_records,
    record_path,
    write_record,
)
from leaderboards.samples import read_samples, resolve_samples_file, samples_path, write_samples

__all__ = ["Rescored", "stale_tasks", "rescore_record", "rescore_results", "task_hooks"]


@dataclass(frozen=True)
class Rescored:
    cell: str
    old_key: str
    new_key: str
    tasks: tuple[str, ...]  # the tasks whose verifiers changed
    rows: int  # samples scored again
    flips: int  # samples whose correctness changed


def stale_tasks(record: RunRecord) -> dict[str, dict[str, str]]:
    """task -> current verifier versions, for the record's tasks scored by other versions."""
    from harness.taskinfo import task_verifiers

    scored = (record.inputs or {}).get("verifiers") or {}
    out = {}
    for t in record.tasks:
        now = task_verifiers(t.name)
        if now and scored.get(t.name) != now:
            out[t.name] = now
    return out


def task_hooks(task: str) -> tuple[Any, Any, dict[str, Any]]:
    """(sample_fields, process_results, {metric: aggregation}) of a bench task: the first from
    its family (``tasks.FAMILIES``), the others as its YAML names them."""
    from harness.taskinfo import _load, task_family, task_index
    from tasks import TASKS_DIR, family

    info, name = task_index().get(task), task_family(task)
    if info is None or info.members or name is None:
        raise BenchError(f"rescore: '{task}' is not a bench task with a YAML under tasks/")
    config = _load(info.file)
    module = importlib.import_module(
        ".".join(("tasks", *info.file.parent.relative_to(TASKS_DIR).parts, "utils"))
    )

    def hook(ref: Any) -> Any:
        name = str(ref).removeprefix("!function ").strip()
        return getattr(module, name.removeprefix("utils."))

    aggregations = {}
    for m in config.get("metric_list") or []:
        agg = m.get("aggregation", "mean")
        aggregations[m["metric"]] = hook(agg) if str(agg).startswith("!function") else agg
    return family(name).sample_fields, hook(config["process_results"]), aggregations


def _aggregate(values: list[Any], how: Any) -> tuple[float, float | None]:
    from leaderboards.stats import stderr_mean

    if callable(how):
        return float(how(values)), None
    if how != "mean":
        raise BenchError(
            f"rescore: aggregation '{how}' is not supported; only mean or a utils function"
        )
    xs = [float(v) for v in values]
    se = stderr_mean(xs) if len(xs) > 1 else None
    return (sum(xs) / len(xs) if xs else 0.0), se


def _read(results_dir: Path, record: RunRecord, rel: str | None) -> list[dict[str, Any]]:
    path = resolve_samples_file(results_dir, record_path(results_dir, record), rel) if rel else None
    if path is None:
        raise BenchError(
            f"rescore: cell {record.cell_key} names a samples file that is missing: {rel}"
        )
    return read_samples(path).to_pylist()


def _rescore_task(
    t: TaskResult, record: RunRecord, results_dir: Path, new_key: str, versions: dict[str, str]
):
    """(new TaskResult, rows scored, flips) for one stale task."""
    fields, process, aggregations = task_hooks(t.name)
    first = _read(results_dir, record, t.samples_file)
    every = _read(results_dir, record, t.repeats_file) if t.repeats_file else first
    per_metric: dict[str, list[Any]] = {}
    flips = 0
    for rows in ({id(first): first, id(every): every}).values():
        for r in rows:
            doc = json.loads(r["meta"] or "{}")
            got = fields(doc, r["completion"] or "")
            flips += rows is first and bool(got["correct"]) != bool(r["correct"])
            r.update(
                cell_key=new_key,
                answer=got.get("answer"),
                correct=bool(got["correct"]),
                score=min(max(float(got["score"]), 0.0), 1.0),
            )
            if rows is first:
                for name, value in process(doc, [r["completion"] or ""]).items():
                    per_metric.setdefault(name, []).append(value)
    metrics = {}
    for name, values in per_metric.items():
        value, se = _aggregate(values, aggregations.get(name, "mean"))
        metrics[name] = MetricValue(value=value, stderr=se, n=len(first))
    primary = t.primary_metric
    if t.repeats_file:
        docs: dict[int, list[float]] = {}
        for r in every:
            docs.setdefault(r["doc_id"], []).append(r["score"])
        value, se = _aggregate([sum(v) / len(v) for v in docs.values()], "mean")
        metrics[primary] = MetricValue(value=value, stderr=se, n=len(docs))
    path = write_samples(first, samples_path(results_dir, new_key, t.name))
    extra = None
    if t.repeats_file:
        extra = write_samples(every, samples_path(results_dir, new_key, f"{t.name}.repeats"))
    done = [r["score"] for r in every if not r.get("truncated")]
    scorer = ", ".join(f"{k} v{v}" for k, v in sorted(versions.items()))
    new = t.model_copy(
        update={
            "metrics": metrics,
            "samples_file": str(path.relative_to(results_dir)),
            "repeats_file": str(extra.relative_to(results_dir)) if extra else None,
            "settings": f"{t.settings or ''} · rescored {scorer}".strip(" ·"),
            "score_completed": (sum(done) / len(done))
            if done and t.truncated is not None
            else t.score_completed,
        }
    )
    return new, len(every), flips


def rescore_record(record: RunRecord, results_dir: Path, dry_run: bool = False) -> Rescored | None:
    """The record re-scored (written unless ``dry_run``), or None when nothing is stale or done."""
    stale = stale_tasks(record)
    if not stale or not record.inputs:
        return None
    scored = record.inputs.get("verifiers") or {}
    inputs = {**record.inputs, "verifiers": {**scored, **stale}}
    new_key = content_key(inputs)
    cell = f"{record.model_id}/{record.stage}"
    if (results_dir / "records" / f"eval-{new_key}.json").exists():
        return None  # re-scored before (or evaluated afresh with the current verifiers)
    if dry_run:
        return Rescored(cell, record.cell_key, new_key, tuple(stale), 0, 0)
    # Only the re-scored tasks: the others' scores stand in the old record, and a copy beside them
    # would be a second cell of the same weights, settings and scorer on the board.
    tasks, rows, flips = [], 0, 0
    for t in record.tasks:
        if t.name in stale:
            new, n, f = _rescore_task(t, record, results_dir, new_key, stale[t.name])
            tasks.append(new)
            rows, flips = rows + n, flips + f
    now = datetime.now(UTC)
    write_record(
        record.model_copy(
            update={
                "cell_key": new_key,
                "inputs": inputs,
                "tasks": tasks,
                "rescored_from": record.cell_key,
                "started_at": now,
                "finished_at": now,
            }
        ),
        results_dir,
    )
    return Rescored(cell, record.cell_key, new_key, tuple(stale), rows, flips)


def rescore_results(results_dir: str | Path, dry_run: bool = False) -> list[Rescored]:
    """Re-score every eval record under ``results_dir`` whose verifiers changed."""
    results_dir = Path(results_dir)
    done = []
    for _, record in read_records(sorted((results_dir / "records").glob("eval-*.json"))):
        out = rescore_record(record, results_dir, dry_run)
        if out is not None:
            done.append(out)
    return done
