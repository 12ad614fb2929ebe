"""``bench export --to trackio|mlflow|wandb DIR``: replay the store through a tracker's own client,
offline (Trackio's local store, MLflow's file store, W&B's offline mode).

One tracker run per eval cell, named ``model/stage``. Its x axis is the cumulative training
step over the recipe: ``train/<metric>`` is each lineage stage's logged curve, and
``eval/<task>`` is each lineage stage's score logged at the step its training ended (the base at
step 0), so a run shows its scores and training along the lineage on one axis. The cell key,
the lineage (stages and keys, root first) and the record's model, stage and grid are the run's
tags (W&B: tags and config; its tags are capped at 64 characters).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_core.errors import BenchError
from leaderboards.curves import lineage_curves

__all__ = ["TRACKERS", "ExportRun", "export_runs", "export"]


@dataclass
class ExportRun:
    cell_key: str
    model: str
    stage: str
    grid: str | None
    lineage: list[tuple[str, str]]  # (stage, eval cell key), root first
    # step -> {metric: value}; steps ascend
    steps: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.stage}"

    @property
    def tags(self) -> dict[str, str]:
        return {
            "cell_key": self.cell_key,
            "model": self.model,
            "stage": self.stage,
            "grid": self.grid or "",
            "lineage": " > ".join(s for s, _ in self.lineage),
            "lineage_keys": " > ".join(k for _, k in self.lineage),
        }

    def add(self, step: int, metric: str, value: float | None) -> None:
        if value is not None:
            self.steps.setdefault(int(step), {})[metric] = float(value)


_KEY = re.compile(r"[^0-9A-Za-z_\-./ ]")


def metric_key(name: str) -> str:
    """A name every tracker accepts (MLflow: letters, digits, ``_-./`` and space)."""
    return _KEY.sub("_", name)


def export_runs(con) -> list[ExportRun]:
    """A run per eval cell of the board, with its lineage's scores and training curves."""
    rows = con.execute(
        "SELECT DISTINCT l.cell_key, l.model_id, l.stage, r.grid FROM leaderboard_long l "
        "JOIN records r ON r.cell_key = l.cell_key AND r.kind = 'eval' ORDER BY 2, 3, 1"
    ).fetchall()
    runs = []
    for key, model, stage, grid in rows:
        curves = lineage_curves(con, key)
        ends = {c.stage: c.offset + c.steps for c in curves}  # a stage's last cumulative step
        chain = _eval_lineage(con, key)
        run = ExportRun(key, model, stage, grid, [(s, k) for s, k, _ in chain])
        for c in curves:
            for metric, pts in c.metrics.items():
                for step, value in pts:
                    run.add(c.offset + step, f"train/{metric_key(metric)}", value)
        for s, _, scores in chain:
            for task, value in scores.items():
                run.add(ends.get(s, 0), f"eval/{metric_key(task)}", value)
        runs.append(run)
    return runs


def _eval_lineage(con, key: str) -> list[tuple[str, str, dict[str, float]]]:
    """(stage, eval cell, {task@vN: value}) root first, through the board's parent rows."""
    chain, seen = [], set()
    while key and key not in seen:
        seen.add(key)
        got = con.execute(
            "SELECT stage, label, value, parent_cell FROM leaderboard_long WHERE cell_key = ?",
            [key],
        ).fetchall()
        if not got:
            break
        chain.append((got[0][0], key, {label: v for _, label, v, _ in got}))
        key = next((p for *_, p in got if p), None)
    return chain[::-1]


_TRACKIO = """
import json, sys
import trackio
project, runs = json.load(sys.stdin)
for run in runs:
    trackio.init(project=project, name=run["name"], config=run["tags"], resume="never")
    for step, metrics in run["steps"]:
        trackio.log(metrics, step=step)
    trackio.finish()
"""


def _trackio(runs: list[ExportRun], out: Path, project: str) -> None:
    """In a process of its own: trackio fixes its local store's folder (TRACKIO_DIR) at import."""
    import json
    import subprocess
    import sys

    payload = [
        project,
        [{"name": r.name, "tags": r.tags, "steps": sorted(r.steps.items())} for r in runs],
    ]
    env = {**os.environ, "TRACKIO_DIR": str(out.resolve()), "TRACKIO_QUIET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _TRACKIO],
        input=json.dumps(payload),
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"trackio export failed:\n{done.stderr[-4000:]}")


def _mlflow(runs: list[ExportRun], out: Path, project: str) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    # MLflow 3.10+ keeps its file store in maintenance mode behind this opt-in; it is still the
    # one backend that needs no database server or SQLAlchemy (mlflow-skinny has neither)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=out.resolve().as_uri())
    exp = client.get_experiment_by_name(project)
    exp_id = exp.experiment_id if exp else client.create_experiment(project)
    for run in runs:
        r = client.create_run(exp_id, run_name=run.name, tags=run.tags)
        metrics = [
            Metric(k, v, 0, step) for step, kv in sorted(run.steps.items()) for k, v in kv.items()
        ]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            client.log_batch(r.info.run_id, metrics=metrics[i : i + 1000])
        client.set_terminated(r.info.run_id)


def _wandb(runs: list[ExportRun], out: Path, project: str) -> None:
    import wandb

    for run in runs:
        tags = [f"{k}:{v}"[:64] for k, v in run.tags.items() if v]
        r = wandb.init(
            mode="offline",
            dir=str(out),
            project=project,
            name=run.name,
            tags=tags,
            config=run.tags,
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        for step, metrics in sorted(run.steps.items()):
            r.log(metrics, step=step)
        r.finish()


TRACKERS: dict[str, Callable[[list[ExportRun], Path, str], None]] = {
    "trackio": _trackio,
    "mlflow": _mlflow,
    "wandb": _wandb,
}
_PACKAGES = {"trackio": "trackio", "mlflow": "mlflow-skinny", "wandb": "wandb"}


def export(con, to: str, out_dir: str | Path, project: str = "bench") -> list[ExportRun]:
    """Replay the store into ``out_dir`` through ``to``'s client; returns the runs written."""
    if to not in TRACKERS:
        raise BenchError(f"--to {to}: unknown tracker; use one of {', '.join(TRACKERS)}")
    import importlib.util

    module = "mlflow" if to == "mlflow" else to
    if importlib.util.find_spec(module) is None:
        raise BenchError(
            f"--to {to}: the {_PACKAGES[to]} package is not installed; "
            f"pip install '{_PACKAGES[to]}' (or bench's [trackers] extra)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = export_runs(con)
    TRACKERS[to](runs, out, project)
    return runs
