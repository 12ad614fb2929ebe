"""Perf benchmark (not a test): ingest and render a synthetic store of N cells × M samples.

    .venv/bin/python ci/perf/leaderboard_render.py [--cells 10000] [--samples 1000] [--dir DIR]

Writes N eval records (500 models × 20 stages by default) with 2 tasks of M/2 per-sample
rows each (Parquet, one file per cell × task) and, for every trained stage, its train record
with the files a stage leaves (log_history.json of 50 logged steps, train_rows.jsonl.gz of 20
rows), so ingest loads training curves and checks contamination, and the board shows cost,
curve panels and sample links. Then times: the first ingest, a repeated (idempotent) ingest,
and rendering every format. Prints seconds and rows/s, and writes them to ci/perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from leaderboards.record import MetricValue, RunRecord, TaskResult, record_path
from leaderboards.samples import SAMPLES_SCHEMA, samples_path

METHODS = ["sft", "distill", "dpo", "grpo"]
STAGES = (
    ["base"]
    + METHODS
    + ["+".join(p) for p in itertools.permutations(METHODS, 2)]
    + ["sft+dpo+grpo", "distill+dpo+grpo", "distill+sft+grpo"]
)  # 20 stages per model
TASKS = ["math_gsm8k", "causal_nli"]
_COMPLETIONS = np.array(
    [
        f"<think>Let me work through step {i}. "
        + "We add the numbers. " * (i % 7 + 1)
        + f"</think> The answer is {i}."
        for i in range(64)
    ],
    dtype=object,
)


def _write_cell(args: tuple[str, int, int]) -> None:
    results, idx, n_samples = args
    results = Path(results)
    model, stage = f"model-{idx // len(STAGES):04d}", STAGES[idx % len(STAGES)]
    key = f"{idx:08d}" + "0" * 24
    rng = np.random.default_rng(idx)
    per_task = n_samples // len(TASKS)
    p = 0.3 + 0.1 * (0 if stage == "base" else len(stage.split("+"))) + rng.normal(0, 0.02)
    tasks = []
    for t in TASKS:
        score = (rng.random(per_task) < p).astype(np.float64)
        doc = np.arange(per_task, dtype=np.int64)
        table = pa.Table.from_arrays(
            [
                pa.array([key] * per_task),
                pa.array([t] * per_task),
                pa.array(doc),
                pa.array(score),
                pa.array(score >= 0.5),
                pa.array((doc % 10).astype(str)),
                pa.array(["7"] * per_task),
                pa.array(_COMPLETIONS[doc % 64], type=pa.string()),
                pa.nulls(per_task, pa.string()),
                pa.array(-rng.random(per_task) * 50),
                pa.array(['{"level": 1}'] * per_task),
                pa.array(np.zeros(per_task, dtype=np.int64)),
                pa.array(doc % 64 + 20),
                pa.array(doc % 50 == 0),
                *(pa.nulls(per_task, f.type) for f in list(SAMPLES_SCHEMA)[14:]),  # newer columns
            ],
            schema=SAMPLES_SCHEMA,
        )
        path = samples_path(results, key, t)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        mean = float(score.mean())
        se = float(score.std(ddof=1) / np.sqrt(per_task))
        tasks.append(
            TaskResult(
                name=t,
                version="1",
                primary_metric="acc",
                metrics={"acc": MetricValue(value=mean, stderr=se, n=per_task)},
                samples_file=str(path.relative_to(results)),
            )
        )
    when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=idx)
    train_key = None if stage == "base" else "t" + key[1:]
    if train_key:
        _write_train(results, idx, model, stage, train_key, when)
    rec = RunRecord(
        kind="eval",
        cell_key=key,
        grid="perf",
        model_id=model,
        stage=stage,
        recipe=[] if stage == "base" else stage.split("+"),
        parent_key=train_key,
        tasks=tasks,
        started_at=when,
        finished_at=when,
    )
    # Written directly (no fsync per file): this measures ingest, not the disk.
    record_path(results, rec).write_text(rec.model_dump_json(indent=2))


def _write_train(results: Path, idx: int, model: str, stage: str, key: str, when) -> None:
    import gzip
    import json

    parent_stage = stage.rsplit("+", 1)[0] if "+" in stage else None
    parent = None
    if parent_stage:  # the parent stage's train key: same model, that stage's index
        pidx = idx - idx % len(STAGES) + STAGES.index(parent_stage)
        parent = "t" + f"{pidx:08d}"[1:] + "0" * 24
    out = results / "checkpoints" / key
    out.mkdir(parents=True, exist_ok=True)
    method = stage.rsplit("+", 1)[-1]
    extra = {"grpo": ("reward", "kl", "completions/mean_length"), "dpo": ("rewards/margins",)}
    log = [
        {"loss": 2.0 / s, "grad_norm": 1.0 + s % 3, "learning_rate": 1e-4, "step": s}
        | {m: s / 50 for m in extra.get(method, ())}
        for s in range(1, 51)
    ]
    (out / "log_history.json").write_text(json.dumps(log))
    with gzip.open(out / "train_rows.jsonl.gz", "wt") as f:
        f.writelines(
            json.dumps(f"Question {idx}-{r}: what is {r} plus {idx}? The answer is {r + idx}.")
            + "\n"
            for r in range(20)
        )
    rec = RunRecord(
        kind="train",
        cell_key=key,
        grid="perf",
        model_id=model,
        stage=stage,
        recipe=stage.split("+"),
        parent_key=parent,
        checkpoint=str(out),
        target="cpu",
        wall_s=600.0 * len(stage.split("+")),
        started_at=when,
        finished_at=when,
    )
    record_path(results, rec).write_text(rec.model_dump_json(indent=2))


def build(results: Path, cells: int, samples: int, workers: int) -> float:
    t0 = time.perf_counter()
    (results / "records").mkdir(parents=True, exist_ok=True)
    jobs = [(str(results), i, samples) for i in range(cells)]
    with mp.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_cell, jobs, chunksize=64):
            pass
    return time.perf_counter() - t0


def _cpu() -> float:
    """CPU seconds of this process, all threads (wall time alone misleads on a shared box)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1_000, help="per cell, split over 2 tasks")
    ap.add_argument(
        "--dir", type=Path, default=None, help="keep the store here (default: a temp dir)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--reuse", action="store_true", help="keep --dir's files; only drop the database"
    )
    args = ap.parse_args()

    from _results import Printed  # ci/perf/_results.py, beside this script

    from leaderboards.rendering import FORMATS, render
    from leaderboards.store import ingest

    results = args.dir or Path(tempfile.mkdtemp(prefix="bench-perf-"))
    total = args.cells * (args.samples // len(TASKS)) * len(TASKS)
    out = Printed()
    out.say(
        f"store: {results}  ({args.cells} cells × {args.samples} samples = {total:,} sample rows)"
    )
    if args.reuse and (results / "records").is_dir():
        for p in results.glob("bench.duckdb*"):
            p.unlink()
    else:
        built = build(results, args.cells, args.samples, args.workers)
        out.say(f"build files       {built:8.2f} s")

    c0 = _cpu()
    rep = ingest(results)
    assert not rep.warnings, rep.warnings[:3]
    out.say(
        f"ingest (first)    {rep.seconds:8.2f} s  {total / rep.seconds:12,.0f} sample rows/s  "
        f"{args.cells / rep.seconds:8,.0f} records/s  (cpu {_cpu() - c0:.1f} s)"
    )
    c0 = _cpu()
    rep = ingest(results)
    out.say(
        f"ingest (again)    {rep.seconds:8.2f} s  {args.cells / rep.seconds:12,.0f} records/s "
        f"(unchanged: {rep.unchanged}, cpu {_cpu() - c0:.1f} s)"
    )
    db = results / "bench.duckdb"
    rows = args.cells  # model × stage rows on the board
    for fmt in FORMATS:
        t0, c0 = time.perf_counter(), _cpu()
        text = render(db, fmt)
        dt = time.perf_counter() - t0
        out.say(
            f"render {fmt:<10} {dt:8.2f} s  {rows / dt:12,.0f} board rows/s  {len(text) / 1e6:8.2f} MB  "
            f"(cpu {_cpu() - c0:.1f} s)"
        )
    out.say(f"database          {db.stat().st_size / 1e6:8.1f} MB")
    out.record(__file__, sys.argv[1:])
    if args.dir is None:
        shutil.rmtree(results)


if __name__ == "__main__":
    main()
