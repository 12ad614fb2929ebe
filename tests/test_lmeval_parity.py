"""Parity with lm-eval's own CLI: ``bench eval`` and ``lm_eval`` (its entry point, a subprocess that
imports none of bench's harness) on the same model folder, tasks, limit, chat template and batch
size give identical per-sample completions on bench's math_arith (generate_until), identical
per-sample loglikelihoods on lm-eval's built-in arc_easy (multiple_choice) read from the data
mirror, and equal metrics and stderr. The mirror is tests/fixtures/arc (CC BY-SA 4.0, AI2); lm_eval
reads the same files through arc_easy's own YAML with the mirror's data files, which is what bench
does offline. The two processes run one after the other: at once, their torch thread pools fight
over the cores, and the fixture took 267 s on an idle 2-core machine, and 74 s in turn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
ARC = Path(__file__).parent / "fixtures" / "arc"
LIMIT, BATCH = 16, 8
TASKS = ("math_arith", "arc_easy")


def _env(mirror: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BENCH_DATA_DIR": str(mirror),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _lm_eval_tasks(folder: Path, mirror: Path) -> Path:
    """An include_path with bench's tasks, and arc_easy's built-in YAML reading the mirror's files."""
    import lm_eval

    shutil.copytree(REPO / "tasks", folder, ignore=shutil.ignore_patterns("__pycache__"))
    easy = mirror / "allenai" / "ai2_arc" / "ARC-Easy"
    builtin = Path(lm_eval.__file__).parent / "tasks" / "arc" / "arc_easy.yaml"
    (folder / "arc_easy_mirror.yaml").write_text(
        f"include: {builtin}\n"
        "task: arc_easy_mirror\n"
        "dataset_path: json\n"
        "dataset_name: null\n"
        "dataset_kwargs:\n  data_files:\n"
        f"    test: {easy / 'test.jsonl'}\n    validation: {easy / 'validation.jsonl'}\n"
        "training_split: null\n"
    )
    return folder


@pytest.fixture(scope="module")
def runs(bundled_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    mirror = tmp / "mirror"
    shutil.copytree(ARC, mirror, ignore=shutil.ignore_patterns("README.md"))
    env = _env(mirror)
    bench = [sys.executable, "-m", "harness.cli", "eval", "--model", "smollm2-135m-instruct"]
    bench += ["--tasks", ",".join(TASKS), "--limit", str(LIMIT), "--batch-size", str(BATCH)]
    bench += ["--chat-template", "--results", str(tmp / "bench")]
    include = _lm_eval_tasks(tmp / "lm_eval_tasks", mirror)
    lm = [sys.executable, "-m", "lm_eval", "run", "--model", "hf"]
    lm += ["--model_args", f"pretrained={bundled_model},dtype=float32"]
    lm += ["--tasks", "math_arith,arc_easy_mirror", "--include_path", str(include)]
    lm += ["--limit", str(LIMIT), "--batch_size", str(BATCH), "--num_fewshot", "0"]
    lm += ["--apply_chat_template", "--log_samples", "--output_path", str(tmp / "lm_eval")]
    for cmd, cwd in ((bench, REPO), (lm, tmp)):  # one after the other (docstring)
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (record,) = (tmp / "bench" / "records").glob("eval-*.json")
    (results,) = (tmp / "lm_eval").rglob("results_*.json")
    return tmp, json.loads(record.read_text()), json.loads(results.read_text())


def _lm_samples(tmp: Path, task: str) -> dict[int, dict]:
    (path,) = (tmp / "lm_eval").rglob(f"samples_{task}_*.jsonl")
    return {s["doc_id"]: s for s in map(json.loads, path.read_text().splitlines())}


def _bench_samples(tmp: Path, record: dict, task: str) -> dict[int, dict]:
    (t,) = [t for t in record["tasks"] if t["name"] == task]
    return {r["doc_id"]: r for r in pq.read_table(tmp / "bench" / t["samples_file"]).to_pylist()}


def test_generated_completions_are_identical(runs):
    tmp, record, _ = runs
    ours, theirs = _bench_samples(tmp, record, "math_arith"), _lm_samples(tmp, "math_arith")
    assert sorted(ours) == sorted(theirs) == list(range(LIMIT))
    for doc, row in ours.items():
        assert row["completion"] == theirs[doc]["filtered_resps"][0], doc


def test_multiple_choice_loglikelihoods_are_identical(runs):
    tmp, record, _ = runs
    ours, theirs = _bench_samples(tmp, record, "arc_easy"), _lm_samples(tmp, "arc_easy_mirror")
    assert sorted(ours) == sorted(theirs) == list(range(LIMIT))
    compared = 0
    for doc, row in ours.items():
        expected = [float(r[0][0]) for r in theirs[doc]["resps"]]  # lm-eval logs them as str
        assert row["choice_logprobs"] == pytest.approx(expected, abs=1e-6, rel=0), doc
        assert row["score"] == theirs[doc]["acc"]
        compared += len(expected)
    assert compared >= 3 * LIMIT  # every choice of every doc: ARC questions have 3-5


def test_metrics_and_stderr_are_equal(runs):
    _, record, theirs = runs
    names = {"math_arith": "math_arith", "arc_easy": "arc_easy_mirror"}
    for t in record["tasks"]:
        lm = theirs["results"][names[t["name"]]]
        for metric, value in t["metrics"].items():
            assert value["value"] == pytest.approx(lm[f"{metric},none"], abs=1e-12), metric
            assert value["stderr"] == pytest.approx(lm[f"{metric}_stderr,none"], abs=1e-12), metric
        assert {m for m in t["metrics"]} == {
            k.split(",")[0] for k in lm if "," in k and "_stderr" not in k
        }
