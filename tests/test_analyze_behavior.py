"""Behaviour analysis (leaderboards.behavior): expectations computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leaderboards.behavior import (
    behavior,
    compare_behavior,
    crossover_k,
    default_ks,
    ece,
    entropy_bits,
    load_samples,
    normalize_answer,
    pass_at_k,
    repetition,
    split_think,
)


def _rows(cell: str, per_prompt: list[list[tuple[str | None, bool]]], **extra) -> list[dict]:
    """Sample rows: per prompt a list of (answer, correct); repeat numbers the samples."""
    return [
        {
            "cell_key": cell,
            "task": "math",
            "doc_id": d,
            "repeat": i,
            "answer": a,
            "correct": c,
            "score": float(c),
            "completion": f"<think>a b c</think> {a}",
            **extra,
        }
        for d, samples in enumerate(per_prompt)
        for i, (a, c) in enumerate(samples)
    ]


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 3) == 0.0 and pass_at_k(4, 1, 4) == 1.0 and pass_at_k(3, 3, 1) == 1.0
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # C(3,3)/C(5,3) = 1/10
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(4, 1, 5)
    assert default_ks(8) == [1, 2, 4, 8] and default_ks(6) == [1, 2, 4, 6] and default_ks(1) == [1]


def test_ece_on_hand_made_sets():
    # one prompt per bin: ECE = mean |conf - correct| = (.1+.2+.3+.4+.5+.4+.3+.2+.1+0)/10
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert ece(conf, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]) == pytest.approx(0.25)
    # 20 prompts, 2 per bin: conf .5 bins hold one right and one wrong; conf 1 bins all right
    assert ece([0.5] * 10 + [1.0] * 10, [1, 0] * 5 + [1] * 10) == pytest.approx(0.0)
    assert ece([0.8, 0.8], [1, 1]) == pytest.approx(0.2)


def test_entropy_repetition_think_split_and_answers():
    assert entropy_bits(["4", "4", "4", "5"]) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    )
    assert entropy_bits(["1", "2", "2", "3"]) == pytest.approx(1.5)
    assert entropy_bits(["7"] * 4) == 0.0
    # 8 words, 5 four-grams, abcd appears twice -> 1 - 4/5
    assert repetition("a b c d a b c d") == pytest.approx(0.2)
    assert repetition("a b c") == 0.0 and repetition("x x x x x", n=2) == pytest.approx(1 - 1 / 4)
    assert split_think("<think>r s</think> a") == ("r s", " a")
    assert split_think("<think>unfinished") == ("unfinished", "")
    assert split_think("r</think>a") == ("r", "a")  # opener in the prompt
    assert split_think("plain") == ("", "plain")
    assert normalize_answer("1,000.") == "1000" and normalize_answer("4.0") == "4"
    assert normalize_answer(" Yes ") == "yes" and normalize_answer(None) is None


def test_cell_figures_by_hand():
    # prompt 0: 4, 4, 4 right; 5 wrong -> modal 4 (share .75, right); prompt 1: 1, 2, 2, 3 all wrong
    rows = _rows(
        "c",
        [
            [("4", True), ("4", True), ("4", True), ("5", False)],
            [("1", False), ("2", False), ("2", False), ("3", False)],
        ],
    )
    b = behavior(rows).figures | {"pass": behavior(rows).pass_at}
    assert b["n_prompts"] == 2 and b["samples_per_prompt"] == 4
    assert b["pass"] == {1: pytest.approx(0.375), 2: pytest.approx(0.5), 4: pytest.approx(0.5)}
    assert b["distinct_answers"] == 2.5
    h1 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert b["answer_entropy"] == pytest.approx((h1 + 1.5) / 2)
    assert b["sc_confidence"] == pytest.approx(0.625) and b["sc_accuracy"] == 0.5
    assert b["brier"] == pytest.approx(((0.75 - 1) ** 2 + 0.5**2) / 2)
    assert b["ece"] == pytest.approx((0.25 + 0.5) / 2)  # two bins of one prompt
    assert (
        b["reasoning_len_median"] == 3 and b["answer_len_mean"] == 1
    )  # words: "a b c" vs the answer
    assert b["truncation_rate"] is None and b["score_completed"] is None  # no truncated column


def test_tokens_truncation_and_score_on_completed():
    rows = _rows("c", [[("4", True), ("4", False)]])
    rows[0] |= {"gen_tokens": 14, "truncated": False, "completion": "<think>abcde</think>xx"}
    rows[1] |= {"gen_tokens": 64, "truncated": True, "score": 0.0}
    b = behavior(rows)
    assert b.figures["truncation_rate"] == 0.5 and b.figures["score_completed"] == 1.0
    # 14 tokens split by characters: 5 reasoning, 2 answer -> 10 and 4
    assert b.per_prompt["reasoning_len"][0] == pytest.approx(
        (10 + 64 * 5 / 7) / 2
    )  # row 2: "a b c" (5) vs " 4" (2)
    assert b.length_unit.startswith("tokens")


def test_stage_vs_parent_crossover_solved_table_and_mcnemar():
    # parent: each prompt solved by exactly one of 4 samples (diverse); child: all or nothing
    parent = behavior(
        _rows(
            "p",
            [
                [("1", True), ("2", False), ("3", False), ("4", False)],
                [("5", False), ("6", False), ("7", False), ("8", True)],
            ],
        )
    )
    child = behavior(_rows("c", [[("1", True)] * 4, [("5", False)] * 4]))
    cmp = compare_behavior(parent, child)
    # pass@1: .25 vs .5; pass@2: .5 vs .5; pass@4: 1 vs .5 -> the sign flips at k = 4
    assert cmp["pass_at_k"]["1"] == {"parent": 0.25, "child": 0.5}
    assert cmp["pass_at_k"]["4"] == {"parent": 1.0, "child": 0.5}
    assert cmp["crossover_k"] == 4
    # solved at k=1 (first sample): parent [T, F], child [T, F]; at k=4 parent [T, T], child [T, F]
    assert cmp["solved_at_k"]["1"] | {"p": None} == {
        "both": 1,
        "parent_only": 0,
        "child_only": 0,
        "neither": 1,
        "p": None,
    }
    assert cmp["solved_at_k"]["4"]["parent_only"] == 1 and cmp["solved_at_k"]["4"]["p"] == 1.0
    d = cmp["deltas"]
    assert d["score"]["delta"] == pytest.approx(0.25) and d["distinct"]["delta"] == pytest.approx(
        1 - 4
    )
    assert d["confidence"]["delta"] == pytest.approx(1 - 0.25)
    lo, hi = d["score"]["ci"]
    assert lo <= 0.25 <= hi and compare_behavior(parent, child)["deltas"]["score"]["ci"] == [
        lo,
        hi,
    ]  # seeded


def test_mcnemar_counts_six_discordant_prompts():
    parent = behavior(_rows("p", [[("0", False)]] * 6 + [[("1", True)]] * 2))
    child = behavior(_rows("c", [[("1", True)]] * 8))
    t = compare_behavior(parent, child)["solved_at_k"]["1"]
    assert (t["both"], t["parent_only"], t["child_only"], t["neither"]) == (2, 0, 6, 0)
    assert t["p"] == pytest.approx(2 * 0.5**6)  # exact: 2 · P(X <= 0), X ~ Bin(6, 1/2)
    assert crossover_k({1: (0.3, 0.5), 2: (0.5, 0.6), 4: (0.8, 0.7)}) == 4
    assert crossover_k({1: (0.3, 0.5), 2: (0.5, 0.6)}) is None


def test_load_samples_keeps_repeat_tokens_and_truncation(tmp_path):
    path = tmp_path / "s.parquet"
    n = np.arange(4)
    pq.write_table(
        pa.table(
            {
                "cell_key": ["c"] * 4,
                "task": ["math"] * 4,
                "doc_id": n // 2,
                "score": [1.0, 0.0, 0.0, 0.0],
                "correct": [True, False, False, False],
                "answer": ["4", "5", None, "6"],
                "repeat": n % 2,
                "gen_tokens": [10, 20, 30, 40],
                "truncated": [False, False, True, False],
            }
        ),
        path,
    )
    rows = load_samples(path)
    assert [(r["doc_id"], r["repeat"], r["gen_tokens"], r["truncated"]) for r in rows][:2] == [
        (0, 0, 10, False),
        (0, 1, 20, False),
    ]
    b = behavior(rows)
    assert b.pass_at == {1: pytest.approx(0.25), 2: pytest.approx(0.5)}
    assert (
        b.figures["truncation_rate"] == 0.25 and b.figures["distinct_answers"] == 1.5
    )  # None is no answer
