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

__all__ = ["cell_key_for", "write_eval_cell", "write_train_cell"]

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
    train_key: str | None = None,
) -> RunRecord:
    """Write one eval record and a samples file per task.

    ``tasks`` maps task name to ``{"version": "1", "scores": [...]}`` plus optional
    ``doc_ids``, ``value`` (default: mean of scores) and ``stderr`` (default: lm-eval's
    formula when ``record_stderr``, else left out so ingest computes it from samples), and
    per doc ``completions``, ``meta`` and ``gen_tokens``. ``train_key`` names the train cell
    whose weights were evaluated (its lineage: :func:`write_train_cell`).
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
            n = len(scores)
            completions = spec.get("completions") or [
                f"<think>step {d}</think> answer {s}" for d, s in zip(doc_ids, scores, strict=True)
            ]
            metas = spec.get("meta") or [{"kind": "parent", "level": d % 5} for d in doc_ids]
            tokens = spec.get("gen_tokens") or [None] * n
            rows = [
                {
                    "cell_key": key,
                    "task": name,
                    "doc_id": d,
                    "score": s,
                    "answer": str(int(s * 10)),
                    "target": "1",
                    "completion": c,
                    "meta": m,
                    "gen_tokens": t,
                }
                for d, s, c, m, t in zip(doc_ids, scores, completions, metas, tokens, strict=True)
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
        parent_key=train_key,
        tasks=results,
        backend="hf",
        started_at=when,
        finished_at=when,
    )
    write_record(record, results_dir)
    return record


def write_train_cell(
    results_dir: str | Path,
    model: str,
    stage: str,
    *,
    cell_key: str,
    parent_key: str | None = None,
    log_history: list[dict] | None = None,
    train_rows: Sequence[str] | None = None,
    wall_s: float = 60.0,
    target: str = "cpu",
    minutes: int = 0,
) -> RunRecord:
    """A train record plus, in its stage dir, the files a trained stage leaves: the logged
    steps (``log_history.json``) and the text of the rows it trained on."""
    import gzip

    results_dir = Path(results_dir)
    out = results_dir / "checkpoints" / cell_key
    out.mkdir(parents=True, exist_ok=True)
    if log_history is not None:
        (out / "log_history.json").write_text(json.dumps(log_history))
    if train_rows is not None:
        with gzip.open(out / "train_rows.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in train_rows)
    when = _T0 + timedelta(minutes=minutes)
    record = RunRecord(
        kind="train",
        cell_key=cell_key,
        grid="synthetic",
        model_id=model,
        recipe=stage.split("+"),
        stage=stage,
        parent_key=parent_key,
        checkpoint=str(out),
        target=target,
        wall_s=wall_s,
        started_at=when,
        finished_at=when,
    )
    write_record(record, results_dir)
    return record
