"""Hand-computed checks of leaderboards.stats and leaderboards.comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta

from leaderboards._synthetic import write_eval_cell
from leaderboards.comparison import compare
from leaderboards.stats import (
    bootstrap_ci,
    mcnemar,
    mcnemar_exact,
    mcnemar_exact_many,
    odds_ratio_ci,
    paired_bootstrap,
    stderr_mean,
)
from leaderboards.store import ingest


def test_mcnemar_exact_hand_computed():
    # 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024 = 0.109375
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375, abs=1e-12)
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375, abs=1e-12)
    # 2 * P(X <= 2 | n=22) = 2 * (1 + 22 + 231) / 2**22
    assert mcnemar_exact(20, 2) == pytest.approx(508 / 2**22, rel=1e-9)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_vectorized_mcnemar_equals_binomtest():
    b, c = np.meshgrid(np.arange(0, 16), np.arange(0, 16))
    many = mcnemar_exact_many(b.ravel(), c.ravel())
    one = [mcnemar_exact(int(x), int(y)) for x, y in zip(b.ravel(), c.ravel(), strict=True)]
    assert np.allclose(many, one, rtol=1e-12, atol=0)
    assert mcnemar_exact_many([480], [20])[0] == pytest.approx(mcnemar_exact(480, 20), rel=1e-9)


def test_mcnemar_from_aligned_outcomes():
    a = np.array([1] * 2 + [0] * 8 + [1] * 5 + [0] * 5, bool)  # A right on the 2, wrong on the 8
    b = np.array([0] * 2 + [1] * 8 + [1] * 5 + [0] * 5, bool)
    m = mcnemar(a, b)
    assert (m.n, m.b_wins, m.a_wins) == (20, 8, 2)
    assert m.p_value == pytest.approx(0.109375)
    assert m.odds_ratio == 4.0
    # Clopper-Pearson for 8/10, mapped to odds p/(1-p)
    lo, hi = beta.ppf(0.025, 8, 3), beta.ppf(0.975, 9, 2)
    assert m.odds_ratio_ci == pytest.approx((lo / (1 - lo), hi / (1 - hi)), rel=1e-6)
    assert m.odds_ratio_ci[0] < 1 < m.odds_ratio_ci[1]  # consistent with p > 0.05
    with pytest.raises(ValueError, match="aligned"):
        mcnemar([True], [True, False])


def test_odds_ratio_edge_cases():
    assert all(math.isnan(x) for x in odds_ratio_ci(0, 0))
    lo, hi = odds_ratio_ci(5, 0)
    assert hi == math.inf and lo > 0


def test_stderr_matches_lm_eval_formula():
    x = [1, 1, 0, 0, 1]  # p = 0.6, n = 5
    assert stderr_mean(x) == pytest.approx(math.sqrt(0.6 * 0.4 / 4))  # sqrt(p(1-p)/(n-1))
    y = [0.2, 0.4, 0.9]
    mean = sum(y) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in y) / 2)  # lm-eval: sample stddev / sqrt(n)
    assert stderr_mean(y) == pytest.approx(sd / math.sqrt(3))
    assert math.isnan(stderr_mean([1.0]))


def test_bootstrap_ci_contains_mean_and_is_seeded():
    rng = np.random.default_rng(1)
    x = (rng.random(400) < 0.3).astype(float)
    lo, hi = bootstrap_ci(x, n_boot=2000, seed=7)
    assert lo < x.mean() < hi
    # width ≈ 2 * 1.96 * stderr for a mean
    assert hi - lo == pytest.approx(2 * 1.96 * stderr_mean(x), rel=0.15)
    assert bootstrap_ci(x, n_boot=2000, seed=7) == (lo, hi)
    y = rng.random(50)  # continuous, so a different seed moves the percentiles
    assert bootstrap_ci(y, n_boot=500, seed=8) != bootstrap_ci(y, n_boot=500, seed=9)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random(300)
    same = paired_bootstrap(a, a, n_boot=500)
    assert same.diff == 0 and same.p_value == 1.0 and same.ci == (0.0, 0.0)
    b = np.clip(a + 0.1, 0, 1)
    shifted = paired_bootstrap(a, b, n_boot=500, seed=3)
    assert shifted.diff == pytest.approx(np.mean(b - a))
    assert shifted.ci[0] > 0 and shifted.p_value == pytest.approx(1 / 501)
    noise = paired_bootstrap(a, rng.permutation(a), n_boot=500)
    assert noise.ci[0] < noise.diff < noise.ci[1] and noise.p_value > 0.05


def _scores(pattern: list[tuple[int, int, int]]) -> tuple[list[float], list[float]]:
    """[(count, a, b)] → aligned 0/1 score lists."""
    a, b = [], []
    for count, x, y in pattern:
        a += [float(x)] * count
        b += [float(y)] * count
    return a, b


@pytest.fixture
def two_cells(tmp_path):
    # Shared docs 0..29: 8 where only B is right, 2 where only A is right, 10 both, 10 neither.
    a, b = _scores([(8, 0, 1), (2, 1, 0), (10, 1, 1), (10, 0, 0)])
    ra = write_eval_cell(
        tmp_path,
        "m",
        "base",
        {
            "math": {"version": "1", "scores": a + [1.0, 1.0], "doc_ids": list(range(32))},
            "nli": {"version": "1", "scores": [0.0, 1.0]},
            "graded": {"version": "1", "scores": [0.2, 0.4, 0.6, 0.0]},
        },
        cell_key="aaaa1111",
    )
    rb = write_eval_cell(
        tmp_path,
        "m",
        "grpo",
        {
            "math": {"version": "1", "scores": b + [0.0], "doc_ids": list(range(30)) + [99]},
            "nli": {"version": "2", "scores": [1.0, 1.0]},
            "graded": {"version": "1", "scores": [0.5, 0.7, 0.9, 0.3]},
        },
        cell_key="bbbb2222",
    )
    return tmp_path, ra, rb


@pytest.mark.parametrize("source", ["files", "db"])
def test_compare_pairs_by_doc_id(two_cells, source):
    results, _, _ = two_cells
    src = results
    if source == "db":
        ingest(results)
        src = results / "bench.duckdb"
    comp = compare(src, "aaaa", "bbbb", n_boot=500)
    by = {t.task: t for t in comp.tasks}
    math_ = by["math"]
    assert math_.n_shared == 30  # docs 30, 31 (A only) and 99 (B only) are not paired
    assert (math_.mcnemar.b_wins, math_.mcnemar.a_wins) == (8, 2)
    assert math_.binary and math_.p_value == pytest.approx(0.109375)
    assert math_.diff == pytest.approx((8 - 2) / 30)
    assert math_.mean_a == pytest.approx(12 / 30) and math_.mean_b == pytest.approx(18 / 30)
    assert math_.diff_ci[0] < math_.diff < math_.diff_ci[1]
    graded = by["graded"]
    assert not graded.binary and graded.diff == pytest.approx(0.3)
    assert graded.p_value == graded.bootstrap.p_value
    assert dict(comp.skipped) == {"nli": "versions differ (1 vs 2)"}
    text = str(comp)
    assert "math@v1" in text and "0.1094" in text and "versions differ" in text
    assert comp.to_table().row_count == 2
    assert [t.row_count for t in comp.__rich__().renderables[:2]] == [2, 2]
    d = {t["task"]: t for t in comp.to_dict()["tasks"]}
    assert d["math"]["mcnemar"]["b_wins"] == 8 and d["math"]["p_value"] == pytest.approx(0.109375)


def test_compare_single_task_and_bad_keys(two_cells):
    results, _, _ = two_cells
    comp = compare(results, "aaaa1111", "bbbb2222", task="math", n_boot=200)
    assert [t.task for t in comp.tasks] == ["math"]
    with pytest.raises(ValueError, match="no eval cell key starts with 'zzz'"):
        compare(results, "zzz", "bbbb")
    write_eval_cell(
        results, "m", "sft", {"math": {"version": "1", "scores": [1.0]}}, cell_key="aaaa9999"
    )
    with pytest.raises(ValueError, match="ambiguous"):
        compare(results, "aaaa", "bbbb")
