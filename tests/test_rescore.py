"""bench rescore: stored completions scored again by the current verifiers, no model; and the diff."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tasks.math as math_family
import tasks.math.utils as math_utils
from harness.cli import app
from harness.rescore import rescore_results
from leaderboards.record import MetricValue, RunRecord, TaskResult, load_record, write_record
from leaderboards.samples import read_samples, samples_path, write_samples
from leaderboards.scorer_diff import scorer_diff

# (completion, stored correct under verifier v1); references are 10 + doc id
CELL_A = [
    "The answer is 10.",
    "The answer is 11.",
    "The answer is 12.",
    "so 13",
    "it is 14",
    "The answer is 99.",
]
STORED_A = [1, 1, 1, 1, 1, 0]
CELL_B = [
    "The answer is 10.",
    "The answer is 11.",
    "The answer is 12.",
    "The answer is 13.",
    "x",
    "y",
]
STORED_B = [1, 1, 1, 1, 0, 0]


def _write(root: Path, model: str, key: str, completions: list[str], stored: list[int]) -> None:
    rows = [
        {
            "cell_key": key,
            "task": "math_arith",
            "doc_id": d,
            "score": float(c),
            "correct": bool(c),
            "answer": str(10 + d) if c else None,
            "completion": text,
            "meta": {"reference": str(10 + d), "source": "arith", "level": 2},
        }
        for d, (text, c) in enumerate(zip(completions, stored, strict=True))
    ]
    path = write_samples(rows, samples_path(root, key, "math_arith"))
    inputs = {
        "key_schema": 2,
        "kind": "eval",
        "weights": model,
        "tasks": {"math_arith": "1.0"},
        "verifiers": {"math_arith": {"math": "1"}},
        "eval": {"limit": 6},
        "seed": 0,
        "target": "cpu",
    }
    rec = RunRecord(
        kind="eval",
        cell_key=key,
        model_id=model,
        stage="base",
        inputs=inputs,
        weights_key=f"w-{model}",
        base_weights=f"w-{model}",
        tasks=[
            TaskResult(
                name="math_arith",
                version="1.0",
                primary_metric="exact_match",
                settings="n≤6 0-shot chat",
                metrics={"exact_match": MetricValue(value=sum(stored) / 6, n=6)},
                samples_file=str(path.relative_to(root)),
            )
        ],
    )
    write_record(rec, root)


def _strict(completion: str, reference) -> float:
    """The planted v2 verifier: only a final "The answer is N." counts."""
    m = re.search(r"The answer is (-?\d+)\.\s*$", completion)
    return float(m is not None and m.group(1) == str(reference))


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    _write(tmp_path, "a", "ka", CELL_A, STORED_A)
    _write(tmp_path, "b", "kb", CELL_B, STORED_B)
    monkeypatch.setattr(math_family, "VERSION", "2")  # the version keys read (tasks.FAMILIES)
    monkeypatch.setattr(
        math_utils,
        "sample_fields",
        lambda doc, c: {
            "answer": (re.findall(r"-?\d+", c) or [None])[-1],
            "correct": _strict(c, doc["reference"]) == 1.0,
            "score": _strict(c, doc["reference"]),
        },
    )
    monkeypatch.setattr(
        math_utils,
        "process_results",
        lambda doc, r: {"exact_match": _strict(r[0], doc["reference"])},
    )
    return tmp_path


def test_rescore_writes_new_records_and_keeps_the_old(results):
    done = {r.cell: r for r in rescore_results(results)}
    assert set(done) == {"a/base", "b/base"}
    a = done["a/base"]
    assert (a.rows, a.flips, a.tasks) == (6, 2, ("math_arith",))
    assert done["b/base"].flips == 0
    assert (results / "records" / "eval-ka.json").exists()  # the old record stays
    new = load_record(results / "records" / f"eval-{a.new_key}.json")
    assert new.rescored_from == "ka"
    assert new.inputs["verifiers"] == {"math_arith": {"math": "2"}}
    t = new.tasks[0]
    assert t.metrics["exact_match"].value == pytest.approx(3 / 6)
    assert t.metrics["exact_match"].stderr == pytest.approx(
        (0.5 * 0.5 / 5) ** 0.5
    )  # sqrt(p(1-p)/(n-1))
    assert t.settings == "n≤6 0-shot chat · rescored math v2"
    rows = read_samples(results / t.samples_file).to_pylist()
    assert [r["correct"] for r in rows] == [True, True, True, False, False, False]
    assert {r["cell_key"] for r in rows} == {a.new_key}
    old_rows = read_samples(results / "samples" / "ka" / "math_arith.parquet").to_pylist()
    assert [r["correct"] for r in old_rows] == [bool(c) for c in STORED_A]


def test_a_second_run_rescores_nothing(results):
    assert len(rescore_results(results)) == 2
    assert rescore_results(results) == []
    assert len(list((results / "records").glob("eval-*.json"))) == 4


def test_diff_lists_flips_and_rank_changes(results):
    rescore_results(results)
    diff = scorer_diff(results)
    assert len(diff.pairs) == 2
    assert [(f.cell, f.doc_id, f.old_answer, f.new_answer, f.now_correct) for f in diff.flips] == [
        ("a/base", 3, "13", "13", False),
        ("a/base", 4, "14", "14", False),
    ]
    # a: 5/6 -> 3/6 falls behind b: 4/6 -> 4/6
    assert [(r.cell, r.old_rank, r.new_rank) for r in diff.ranks] == [
        ("a/base", 1, 2),
        ("b/base", 2, 1),
    ]
    assert diff.marks == []


def test_cli_rescore_and_diff_scorer(results):
    runner = CliRunner()
    res = runner.invoke(app, ["rescore", "--results", str(results)])
    assert res.exit_code == 0, res.output
    assert "re-scored 2 records, 12 rows" in res.output
    assert (
        "re-scored 0 records, 0 rows"
        in runner.invoke(app, ["rescore", "--results", str(results)]).output
    )
    res = runner.invoke(app, ["leaderboard", "--results", str(results), "--diff-scorer"])
    assert res.exit_code == 0, res.output
    assert "2 flipped samples, 2 rank changes" in res.output
    assert "rank a/base math_arith: 1 -> 2" in res.output


def test_the_board_shows_both_scorings_as_columns(results):
    rescore_results(results)
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--format", "json"])
    board = json.loads(res.output)
    labels = [c["label"] for c in board["columns"]]
    assert len(labels) == 2 and any("rescored math v2" in x for x in labels)
    assert len(board["rows"]) == 2  # one row per model: old and new scorings are columns, not rows
