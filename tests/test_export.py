"""bench export --to trackio|mlflow|wandb: each tracker's own client writes offline into a temp
folder, and that library's reader finds the lineage's scores and training curves, and the tags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_lineage_views import lineage
from typer.testing import CliRunner

from harness.cli import app

# what the distill+grpo eval cell's run must hold (test_lineage_views.lineage, by hand):
# scores along the lineage at the step each stage's training ended (base 10/40, distill 13/40,
# distill+grpo 12/40 right), and the two stages' losses on the cumulative step axis
EVAL = [(0, 0.25), (3, 0.325), (5, 0.3)]
LOSS = [(1, 2.0), (2, 1.5), (3, 1.0), (4, 0.01), (5, 0.02)]
REWARD = [(4, 0.25), (5, 0.5)]
TAGS = {
    "cell_key": "e-distill-grpo",
    "lineage": "base > distill > distill+grpo",
    "lineage_keys": "e-base > e-distill > e-distill-grpo",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export") / "results"
    lineage(root)
    return root


def run_export(results: Path, to: str, out: Path) -> None:
    r = CliRunner().invoke(app, ["export", str(out), "--to", to, "--results", str(results)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert f"exported 3 run(s) to {to}" in r.output


def test_mlflow_file_store_round_trip(results, tmp_path):
    from mlflow.tracking import MlflowClient

    run_export(results, "mlflow", tmp_path / "mlruns")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    exp = client.get_experiment_by_name("bench")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == ["m/base", "m/distill", "m/distill+grpo"]
    run = runs["m/distill+grpo"]
    assert {k: run.data.tags[k] for k in TAGS} == TAGS
    hist = lambda key: [  # noqa: E731
        (m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)
    ]
    assert sorted(hist("eval/t_v1")) == EVAL
    assert sorted(hist("train/loss")) == LOSS
    assert sorted(hist("train/reward")) == REWARD
    assert hist("train/reward") and not [
        m for m in client.get_metric_history(runs["m/base"].info.run_id, "train/loss")
    ]


def read_wandb_records(path: Path) -> list:
    """The records of a W&B offline run file: wandb's own protobuf ``Record``, framed as
    LevelDB log blocks after a 7-byte ``:W&B`` header (the reader wandb-core uses for sync)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, records, buf = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        buf += chunk
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE/LAST
            records.append(pb.Record.FromString(buf))
            buf = b""
    return records


def test_wandb_offline_round_trip(results, tmp_path):
    run_export(results, "wandb", tmp_path / "wb")
    files = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 3
    by_name = {}
    for f in files:
        recs = read_wandb_records(f)
        run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
        history = {}
        for r in recs:
            if r.WhichOneof("record_type") == "history":
                items = {
                    "/".join(i.nested_key) or i.key: json.loads(i.value_json)
                    for i in r.history.item
                }
                for k, v in items.items():
                    if not k.startswith("_"):
                        history.setdefault(k, []).append((r.history.step.num, v))
        config = {i.key: json.loads(i.value_json) for i in run.config.update if i.key != "_wandb"}
        by_name[run.display_name] = (list(run.tags), config, history)
    assert sorted(by_name) == ["m/base", "m/distill", "m/distill+grpo"]
    tags, config, history = by_name["m/distill+grpo"]
    assert "cell_key:e-distill-grpo" in tags
    assert {k: config[k] for k in TAGS} == TAGS
    assert history["eval/t_v1"] == EVAL
    assert history["train/loss"] == LOSS
    assert history["train/reward"] == REWARD


def test_trackio_local_store_round_trip(results, tmp_path):
    run_export(results, "trackio", tmp_path / "tk")
    reader = """
import json, sys
from trackio.sqlite_storage import SQLiteStorage
out = {}
for run in SQLiteStorage.get_runs("bench"):
    logs = SQLiteStorage.get_logs("bench", run)
    out[run] = {"config": SQLiteStorage.get_run_config("bench", run),
                "logs": [{k: v for k, v in e.items() if k != "timestamp"} for e in logs]}
print(json.dumps(out, default=str))
"""
    env = {"TRACKIO_DIR": str(tmp_path / "tk"), "PATH": "/usr/bin:/bin"}
    got = json.loads(
        subprocess.run(
            [sys.executable, "-c", reader], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert sorted(got) == ["m/base", "m/distill", "m/distill+grpo"]
    run = got["m/distill+grpo"]
    assert {k: run["config"][k] for k in TAGS} == TAGS

    def series(key):
        return [(e["step"], e[key]) for e in run["logs"] if e.get(key) is not None]

    assert series("eval/t_v1") == EVAL
    assert series("train/loss") == LOSS
    assert series("train/reward") == REWARD


def test_export_refuses_an_unknown_tracker(results, tmp_path):
    from harness.errors import BenchError

    r = CliRunner().invoke(
        app, ["export", str(tmp_path), "--to", "neptune", "--results", str(results)]
    )
    assert isinstance(r.exception, BenchError)
    assert "--to neptune: unknown tracker; use one of trackio, mlflow, wandb" in str(r.exception)
