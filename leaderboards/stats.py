"""Statistics for comparing eval cells: stderr, bootstrap CIs, paired tests, effect sizes.

Paired tests pair two cells' samples by ``doc_id`` (same task, same version). For 0/1
correctness the exact McNemar test is the binomial test on the discordant pairs; for
graded scores the paired bootstrap resamples doc-level differences. Everything random
takes a seed, so a leaderboard renders identically twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "stderr_mean",
    "bootstrap_ci",
    "McNemar",
    "mcnemar_exact",
    "mcnemar_exact_many",
    "mcnemar",
    "PairedBootstrap",
    "paired_bootstrap",
    "odds_ratio_ci",
]


def stderr_mean(x) -> float:
    """lm-eval's ``mean_stderr``: sample stddev (n-1) / sqrt(n); for 0/1 data sqrt(p(1-p)/(n-1))."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return math.nan
    return float(np.std(x, ddof=1) / math.sqrt(x.size))


def bootstrap_ci(
    x, alpha: float = 0.05, n_boot: int = 10_000, seed: int = 0, stat=np.mean
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` (default the mean), seeded."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    stats = _resampled(x, n_boot, seed, stat)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def _resampled(x: np.ndarray, n_boot: int, seed: int, stat) -> np.ndarray:
    """``stat`` of ``n_boot`` resamples of x, in chunks of ~4M draws to bound memory."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, 4_000_000 // max(1, x.size))
    out = []
    for start in range(0, n_boot, per_chunk):
        k = min(per_chunk, n_boot - start)
        out.append(stat(x[rng.integers(0, x.size, size=(k, x.size))], axis=1))
    return np.concatenate(out)


@dataclass(frozen=True)
class McNemar:
    """Paired 0/1 outcomes of cell A (reference) and cell B over shared docs."""

    n: int  # shared docs
    b_wins: int  # A wrong, B right
    a_wins: int  # A right, B wrong
    p_value: float
    odds_ratio: float  # b_wins / a_wins: the conditional (discordant-pair) odds ratio
    odds_ratio_ci: tuple[float, float]


@lru_cache(maxsize=65536)
def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: binomial test of b successes in b+c trials at 1/2."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def mcnemar_exact_many(b, c) -> np.ndarray:
    """Vectorized :func:`mcnemar_exact` for a whole leaderboard: min(1, 2·P(X ≤ min(b, c))).

    At p = 1/2 the binomial is symmetric, so binomtest's two-sided p-value is exactly
    twice the smaller tail (capped at 1); tests check the two agree.
    """
    b = np.asarray(b, dtype=np.int64).ravel()
    c = np.asarray(c, dtype=np.int64).ravel()
    n, k = b + c, np.minimum(b, c)
    p = np.ones(len(n))
    if not len(n) or n.max() == 0:
        return p
    # The tail from log-factorials, one cumulative sum per distinct n: importing scipy.stats
    # alone costs ~4 s on a 2-core box, more than the rest of a 10,000-row board.
    logfact = np.array([math.lgamma(i + 1) for i in range(int(n.max()) + 1)])
    for m in np.unique(n[n > 0]):
        j = np.arange(m // 2 + 1)
        cdf = np.cumsum(np.exp(logfact[m] - logfact[j] - logfact[m - j] - m * math.log(2.0)))
        at = n == m
        p[at] = np.minimum(1.0, 2.0 * cdf[k[at]])
    return p


def odds_ratio_ci(b: int, c: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact CI of the discordant odds ratio b/c: Clopper-Pearson on b/(b+c), mapped by p/(1-p)."""
    if b + c == 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    ci = binomtest(b, b + c, 0.5).proportion_ci(confidence_level=1 - alpha, method="exact")

    def odds(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p)

    return (odds(ci.low), odds(ci.high))


def mcnemar(a_correct, b_correct, alpha: float = 0.05) -> McNemar:
    """McNemar on two aligned boolean arrays (same docs, same order)."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mcnemar needs aligned arrays, got shapes {a.shape} and {b.shape}")
    b_wins = int(np.sum(~a & b))
    a_wins = int(np.sum(a & ~b))
    ratio = math.nan if b_wins + a_wins == 0 else (math.inf if a_wins == 0 else b_wins / a_wins)
    return McNemar(
        n=int(a.size),
        b_wins=b_wins,
        a_wins=a_wins,
        p_value=mcnemar_exact(b_wins, a_wins),
        odds_ratio=ratio,
        odds_ratio_ci=odds_ratio_ci(b_wins, a_wins, alpha),
    )


@dataclass(frozen=True)
class PairedBootstrap:
    diff: float  # mean(B) - mean(A)
    ci: tuple[float, float]
    p_value: float


def paired_bootstrap(
    a_scores, b_scores, alpha: float = 0.05, n_boot: int = 10_000, seed: int = 0
) -> PairedBootstrap:
    """Paired bootstrap over docs of mean(B) - mean(A), for graded (non-0/1) scores.

    The p-value is two-sided under the shifted null (the bootstrap distribution centred
    on 0): the share of resampled differences at least as far from the observed one as
    the observed one is from 0, with the +1 correction so it is never exactly 0.
    """
    a = np.asarray(a_scores, dtype=float)
    b = np.asarray(b_scores, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs aligned arrays, got {a.shape} and {b.shape}")
    if a.size == 0:
        return PairedBootstrap(math.nan, (math.nan, math.nan), math.nan)
    d = b - a
    observed = float(d.mean())
    means = _resampled(d, n_boot, seed, np.mean)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    extreme = np.sum(np.abs(means - observed) >= abs(observed) - 1e-12)
    return PairedBootstrap(observed, (float(lo), float(hi)), float((extreme + 1) / (n_boot + 1)))
