"""Synthetic eval cells (record + per-sample files) for tests and ci/perf; never used by cells."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
from leaderboards.samples import samples_path, write_samples
from leaderboards.stats import stderr_mean

__all__ = ["cell_key_for", "write_eval_cell"]

_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def cell_key_for(model: str, stage: str, salt: str = "") -> str:
    return hashlib.sha256(json.dumps([model, stage, salt]).encode()).hexdigest()[:32]


def write_eval_cell(
    results_dir: str | Path,
    model: str,
    stage: str,
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    cell_key: str | None = None,
    minutes: int = 0,
    with_samples: bool = True,
    record_stderr: bool = True,
) -> RunRecord:
    """Write one eval record and a samples file per task.

    ``tasks`` maps task name to ``{"version": "1", "scores": [...]}`` plus optional
    ``doc_ids``, ``value`` (default: mean of scores) and ``stderr`` (default: lm-eval's
    formula when ``record_stderr``, else left out so ingest computes it from samples).
    """
    results_dir = Path(results_dir)
    key = cell_key or cell_key_for(
        model, stage, json.dumps({t: s.get("version") for t, s in tasks.items()})
    )
    results = []
    for name, spec in tasks.items():
        scores: Sequence[float] = spec["scores"]
        doc_ids = spec.get("doc_ids", range(len(scores)))
        value = spec.get("value", sum(scores) / len(scores) if scores else 0.0)
        se = spec.get("stderr", stderr_mean(scores) if record_stderr else None)
        rel = None
        if with_samples:
            rows = [
                {
                    "cell_key": key,
                    "task": name,
                    "doc_id": d,
                    "score": s,
                    "answer": str(int(s * 10)),
                    "target": "1",
                    "completion": f"<think>step {d}</think> answer {s}",
                    "meta": {"kind": "parent", "level": d % 5},
                }
                for d, s in zip(doc_ids, scores, strict=True)
            ]
            path = write_samples(rows, samples_path(results_dir, key, name))
            rel = str(path.relative_to(results_dir))
        results.append(
            TaskResult(
                name=name,
                version=str(spec.get("version", "1")),
                primary_metric="acc",
                metrics={"acc": MetricValue(value=value, stderr=se, n=len(scores))},
                samples_file=rel,
            )
        )
    recipe = [] if stage == "base" else stage.split("+")
    when = _T0 + timedelta(minutes=minutes)
    record = RunRecord(
        kind="eval",
        cell_key=key,
        grid="synthetic",
        model_id=model,
        recipe=recipe,
        stage=stage,
        tasks=results,
        backend="hf",
        started_at=when,
        finished_at=when,
    )
    write_record(record, results_dir)
    return record
