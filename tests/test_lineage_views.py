"""Training curves, contamination, cost and lineage samples: what the store holds for a trained
cell beside its scores, checked against values written out by hand."""

from __future__ import annotations

import json
import random
import re

import pytest

from leaderboards._synthetic import write_eval_cell, write_train_cell
from leaderboards.store import connect, ingest

DISTILL_LOG = [
    {"loss": 2.0, "grad_norm": 5.0, "learning_rate": 1e-3, "kl": 0.0, "nll": 2.0, "step": 1},
    {"loss": 1.5, "grad_norm": 4.0, "learning_rate": 8e-4, "kl": 0.1, "nll": 1.4, "step": 2},
    {"loss": 1.0, "grad_norm": 3.0, "learning_rate": 5e-4, "kl": 0.2, "nll": 0.8, "step": 3},
    {"train_runtime": 12.0, "train_loss": 1.5, "step": 3},  # trl's summary: not a step
]
GRPO_LOG = [
    {
        "loss": 0.01,
        "grad_norm": 0.5,
        "learning_rate": 3e-5,
        "reward": 0.25,
        "reward_std": 0.4,
        "rewards/math_reward/mean": 0.25,
        "rewards/math_reward/std": 0.4,
        "kl": 0.0,
        "completions/mean_length": 40.0,
        "completions/clipped_ratio": 0.5,
        "step": 1,
    },
    {
        "loss": 0.02,
        "grad_norm": 0.7,
        "learning_rate": 2e-5,
        "reward": 0.5,
        "reward_std": 0.5,
        "rewards/math_reward/mean": 0.5,
        "rewards/math_reward/std": 0.5,
        "kl": 0.01,
        "completions/mean_length": 30.0,
        "completions/clipped_ratio": 0.25,
        "step": 2,
    },
]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def question(rng: random.Random, i: int) -> str:
    return f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(14)) + "?"


def lineage(results, n_docs=40, *, distill_rows=(), grpo_rows=(), questions=None):
    """base -> distill -> distill+grpo of model m: train records with logs and rows, eval cells."""
    write_train_cell(
        results,
        "m",
        "distill",
        cell_key="t-distill",
        log_history=DISTILL_LOG,
        train_rows=list(distill_rows),
        wall_s=1800.0,
    )
    write_train_cell(
        results,
        "m",
        "distill+grpo",
        cell_key="t-grpo",
        parent_key="t-distill",
        log_history=GRPO_LOG,
        train_rows=list(grpo_rows),
        wall_s=3600.0,
        target="h100",
    )
    qs = questions or [f"q{d}" for d in range(n_docs)]
    correct = {  # doc -> right per stage; base->distill: 4 wins 1 loss; distill->grpo: 2 wins 3 losses
        "base": [d < 10 for d in range(n_docs)],
        "distill": [(d < 14 and d != 0) for d in range(n_docs)],
        "distill+grpo": [(d < 16 and d not in (0, 1, 2, 3)) for d in range(n_docs)],
    }
    for i, (stage, train) in enumerate(
        [("base", None), ("distill", "t-distill"), ("distill+grpo", "t-grpo")]
    ):
        scores = [float(c) for c in correct[stage]]
        write_eval_cell(
            results,
            "m",
            stage,
            {
                "t": {
                    "version": "1",
                    "scores": scores,
                    "completions": [
                        f"{stage} says {d}: The answer is {int(s)}." for d, s in enumerate(scores)
                    ],
                    "meta": [{"question": q, "level": 2} for q in qs],
                    "gen_tokens": [10 + i] * n_docs,
                }
            },
            cell_key=f"e-{stage.replace('+', '-')}",
            train_key=train,
            minutes=i,
        )
    return correct


@pytest.fixture()
def store(tmp_path):
    results = tmp_path / "results"
    lineage(results)
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    yield con, results
    con.close()


def test_curves_are_stored_per_train_cell_and_chained_by_cumulative_step(store):
    from leaderboards.curves import curves_dict, curves_text, lineage_curves

    con, _ = store
    got = con.execute(
        "SELECT step, value FROM train_curves WHERE cell_key = 't-distill' AND metric = 'loss' "
        "ORDER BY step"
    ).fetchall()
    assert got == [(1, 2.0), (2, 1.5), (3, 1.0)]  # the summary entry is not a step
    metrics = {
        m
        for (m,) in con.execute(
            "SELECT DISTINCT metric FROM train_curves WHERE cell_key = 't-grpo'"
        ).fetchall()
    }
    assert {
        "reward",
        "reward_std",
        "rewards/math_reward/mean",
        "kl",
        "completions/mean_length",
    } <= metrics
    curves = lineage_curves(con, "e-distill-grpo")  # an eval cell reaches its train lineage
    assert [(c.stage, c.offset) for c in curves] == [("distill", 0), ("distill+grpo", 3)]
    d = curves_dict(curves)
    assert d[1]["metrics"]["reward"] == [[4, 0.25], [5, 0.5]]  # x = cumulative step
    text = curves_text(curves, width=10)
    loss_lines = text.split("\nloss\n")[1].splitlines()[:2]
    assert "█▅▁" in loss_lines[0] and "2 → 1" in loss_lines[0] and "steps 1–3" in loss_lines[0]
    assert "steps 4–5" in loss_lines[1]
    assert lineage_curves(con, "e-base") == []


def test_sparkline_scales_to_the_series_range():
    from leaderboards.curves import sparkline

    assert sparkline([0, 7, 14]) == "▁▅█"
    assert sparkline([3, 3]) == "▁▁"
    assert sparkline([1, None, 2]) == "▁ █"
    assert sparkline(list(range(100)), width=4) == "▁▃▆█"


def reference_share(doc_texts: list[str], train_rows: list[str]) -> float:
    """Tulu 3's rule written out plainly: lower-case word/punctuation tokens; a doc is
    contaminated when more than half of its 8-grams (its own length when shorter) appear in
    some training row; the share is contaminated docs over docs."""

    def toks(s):
        return re.findall(r"\w+|[^\w\s]", s.lower())

    bad = 0
    for doc in doc_texts:
        t = toks(doc)
        n = min(8, len(t))
        grams = [" ".join(t[i : i + n]) for i in range(len(t) - n + 1)]
        found = 0
        for g in grams:
            for row in train_rows:
                r = toks(row)
                if any(" ".join(r[j : j + n]) == g for j in range(len(r) - n + 1)):
                    found += 1
                    break
        if grams and found / len(grams) > 0.5:
            bad += 1
    return bad / len(doc_texts)


def test_a_planted_5_percent_copy_is_flagged_and_equals_the_reference(tmp_path):
    rng = random.Random(0)
    qs = [question(rng, i) for i in range(200)]
    planted = [f"Here is a worked problem. {q} Let us think." for q in qs[:10]]  # 5 %
    # a paraphrase keeping fewer than half of a doc's 8-grams: not contaminated
    half = [" ".join(q.split()[:8]) + " and so on" for q in qs[10:20]]
    filler = [question(random.Random(1), i + 1000) for i in range(50)]
    results = tmp_path / "results"
    lineage(results, 200, distill_rows=filler + half, grpo_rows=planted, questions=qs)
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    rows = dict(
        con.execute("SELECT cell_key, share FROM contamination WHERE task = 't'").fetchall()
    )
    con.close()
    assert rows["e-distill-grpo"] >= 0.045  # the lineage's rows: distill's and grpo's
    assert rows["e-distill-grpo"] == pytest.approx(reference_share(qs, filler + half + planted))
    assert rows["e-distill-grpo"] == pytest.approx(0.05)
    assert rows["e-distill"] == pytest.approx(reference_share(qs, filler + half)) == 0.0
    assert "e-base" not in rows  # an untrained cell has no training rows to check


def test_a_stage_without_recorded_rows_leaves_contamination_unknown(tmp_path):
    results = tmp_path / "results"
    lineage(results, distill_rows=["x"], grpo_rows=["y"])
    (results / "checkpoints" / "t-distill" / "train_rows.jsonl.gz").unlink()
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM contamination").fetchall() == [(0,)]
    con.close()


def test_flipped_docs_are_the_mcnemar_discordant_pairs(store):
    from leaderboards.comparison import compare
    from leaderboards.lineage_samples import WIN, lineage_samples

    con, _ = store
    (ts,) = lineage_samples(con, "e-distill-grpo", "t")
    assert ts.stages == [
        ("base", "e-base"),
        ("distill", "e-distill"),
        ("distill+grpo", "e-distill-grpo"),
    ]
    # hand count: distill right on 1..13; distill+grpo right on 4..15 -> wins 14, 15; losses 1, 2, 3
    assert (ts.wins, ts.losses) == (2, 3)
    c = compare(con, "e-distill", "e-distill-grpo").tasks[0]
    assert (c.mcnemar.b_wins, c.mcnemar.a_wins) == (ts.wins, ts.losses)
    (only,) = lineage_samples(con, "e-distill-grpo", flipped=True)
    assert sorted((d.doc_id, d.flip) for d in only.docs) == [
        (1, "right → wrong"),
        (2, "right → wrong"),
        (3, "right → wrong"),
        (14, WIN),
        (15, WIN),
    ]
    d = only.docs[-1]
    assert [s.completion for s in d.by_stage] == [
        "base says 15: The answer is 0.",
        "distill says 15: The answer is 0.",
        "distill+grpo says 15: The answer is 1.",
    ]
    assert [s.correct for s in d.by_stage] == [False, False, True]
    (one,) = lineage_samples(con, "t-grpo", doc=7)  # a train key names its eval cell
    assert [d.doc_id for d in one.docs] == [7] and one.cell_key == "e-distill-grpo"


def test_board_rows_show_cost_beside_gain(store):
    from leaderboards.board import build_board

    con, _ = store
    rows = {r.stage: r for r in build_board(con).rows}
    # distill: 1800 s on CPU; eval 11 tokens x 40 docs over 13 right; Δ vs base +0.075 (3/40)
    d = rows["distill"].cost
    assert (d.device, d.train_hours) == ("CPU", 0.5)
    assert d.tokens_per_correct == pytest.approx(11 * 40 / 13)
    assert d.delta_per_hour == pytest.approx((13 - 10) / 40 / 0.5)
    g = rows["distill+grpo"].cost  # 3600 s on h100; 12 right (4..15) vs 13: Δ -1/40 per hour
    assert (g.device, g.train_hours) == ("GPU", 1.0)
    assert g.delta_per_hour == pytest.approx(-1 / 40)
    assert (
        rows["base"].cost.train_hours is None
        and rows["base"].cost.tokens_per_correct == 40 * 10 / 10
    )


def test_cli_samples_and_curves(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.errors import BenchError

    results = tmp_path / "results"
    lineage(results)
    r = CliRunner().invoke(
        app, ["samples", "e-distill-g", "--flipped", "--results", str(results)], terminal_width=200
    )
    assert r.exit_code == 0, r.output
    assert "vs parent: 2 wrong → right, 3 right → wrong" in " ".join(r.output.split())
    assert r.output.count("doc ") == 5 and "[wrong → right]" in r.output
    r = CliRunner().invoke(
        app, ["samples", "e-distill-g", "--doc", "15", "--json", "--results", str(results)]
    )
    (one,) = json.loads(r.output)
    (doc,) = one["docs"]
    assert doc["by_stage"][2]["completion"] == "distill+grpo says 15: The answer is 1."
    assert doc["flip"] == "wrong → right"
    r = CliRunner().invoke(app, ["curves", "t-grpo", "--results", str(results)])
    assert r.exit_code == 0, r.output
    assert "distill → distill+grpo" in r.output and "\nreward\n" in r.output
    r = CliRunner().invoke(app, ["samples", "nope", "--results", str(results)])
    assert isinstance(r.exception, BenchError)  # bench's main: one line, exit 2
    assert "no eval or train cell key starts with 'nope'" in str(r.exception)


def test_exports_carry_curves_cost_and_contamination(tmp_path):
    import csv

    from leaderboards.api import leaderboard

    results = tmp_path / "results"
    rng = random.Random(0)
    qs = [question(rng, i) for i in range(40)]
    lineage(results, grpo_rows=qs[:4], questions=qs)  # 10 % of the docs planted
    data = json.loads(leaderboard(results, "json"))
    assert data["curves"]["t-grpo"]["metrics"]["reward"] == [[4, 0.25], [5, 0.5]]
    assert data["curves"]["t-grpo"]["parent"] == "t-distill"
    row = next(r for r in data["rows"] if r["stage"] == "distill+grpo")
    assert row["cells"]["t@v1"]["contamination"] == 0.1 and row["cells"]["t@v1"]["contaminated"]
    assert row["cost"]["train_hours"] == 1.0 and row["cost"]["device"] == "GPU"
    out = tmp_path / "board.csv"
    leaderboard(results, "csv", out)
    board = list(csv.DictReader(out.open()))
    assert next(r for r in board if r["stage"] == "distill+grpo")["t@v1:contamination"] == "0.1"
    curves = list(csv.DictReader(out.with_suffix(".curves.csv").open()))
    loss = [(r["stage"], r["cumulative_step"], r["value"]) for r in curves if r["metric"] == "loss"]
    assert loss == [
        ("distill", "1", "2.0"),
        ("distill", "2", "1.5"),
        ("distill", "3", "1.0"),
        ("distill+grpo", "4", "0.01"),
        ("distill+grpo", "5", "0.02"),
    ]


def test_the_smoke_recipe_trains_on_none_of_its_test_docs():
    """The smoke grid's training rows (distill's conversations, grpo's prompts: the rows its
    stages build) against the 40 math_arith_2digit docs it is scored on: 0 % by the rule,
    and by the reference."""
    import yaml

    from leaderboards.contamination import contaminated
    from tasks.math import test_seed
    from tasks.math.generate import generate
    from trainers._stage import _strings
    from trainers.distill import distill_rows
    from trainers.grpo import prompt_rows
    from trainers.methods import method_config

    spec = yaml.safe_load(open("harness/grids/smoke.yaml"))
    distill = method_config("distill")(**spec["steps"]["distill"])
    grpo = method_config("grpo")(**spec["steps"]["grpo"])
    rows = ["\n".join(_strings(r)) for r in distill_rows(distill)[0] + prompt_rows(grpo)[0]]
    docs = [i["question"] for i in generate(100, test_seed(), levels=(2,))][: spec["eval"]["limit"]]
    assert len(rows) == 240 + 12 - 1 and len(docs) == 40  # one generated item was a test question
    assert sum(contaminated(d, rows) for d in docs) == 0
    assert reference_share(docs, rows) == 0.0
    # the rule would catch them: the same rows plus the test questions flag every doc
    assert all(contaminated(d, rows + docs) for d in docs)
