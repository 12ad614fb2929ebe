"""How a stage's outputs behave, from stored per-sample rows only (no model is run).

Rows of one cell × task are grouped into prompts by ``doc_id`` (``repeat`` orders a prompt's
samples; file order when absent). Per prompt: response length (reasoning inside
``<think>…</think>`` vs answer), truncation, pass@k (unbiased, 1 − C(n−c, k)/C(n, k)),
distinct final answers and their entropy, self-consistency confidence (the modal answer's
share) and whether the modal answer is right, repetition (share of repeated n-grams).
A cell's figure is the mean over prompts (lengths: over samples, with medians); ECE uses
10 equal-mass bins of prompts. Stage vs parent pairs prompts by doc_id: Δ with a seeded
paired bootstrap CI, and solved-at-k tables with the exact McNemar test of
:mod:`leaderboards.stats`.

Answers are compared after a light normalization (case, whitespace, trailing period,
thousands separators, numeric form): leaderboards cannot run a task's verifier, so two
answers the verifier equates but which differ in form count as distinct.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench_core.errors import BenchError
from leaderboards.samples import read_samples
from leaderboards.stats import mcnemar, paired_bootstrap

__all__ = [
    "EXTRA_COLUMNS",
    "Behavior",
    "load_samples",
    "behavior",
    "compare_behavior",
    "pass_at_k",
    "default_ks",
    "looping",
    "ece",
    "entropy_bits",
    "repetition",
    "split_think",
    "normalize_answer",
]

EXTRA_COLUMNS = ("repeat", "gen_tokens", "truncated")
MEAN_FIGURES = (
    "reasoning_len",
    "answer_len",
    "total_len",
    "truncated",
    "score",
    "distinct",
    "entropy",
    "confidence",
    "modal_correct",
    "brier",
    "repetition",
)


def load_samples(path: str | Path) -> list[dict]:
    """Rows of a samples file, with ``repeat``/``gen_tokens``/``truncated`` when the file has them.

    read_samples casts to the samples schema; columns the file has beyond it are read from
    the file too, so files written before and after the schema gained them both work.
    """
    table = read_samples(path)
    extra = [c for c in EXTRA_COLUMNS if c not in table.column_names]
    if extra:
        import pyarrow.parquet as pq

        present = [c for c in extra if c in pq.read_schema(path).names]
        if present:
            more = pq.read_table(path, columns=present)
            for c in present:
                table = table.append_column(c, more.column(c))
    return table.to_pylist()


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k)/C(n, k), as a stable product (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per prompt, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def default_ks(n: int) -> list[int]:
    """1, 2, 4, … up to n, and n itself."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)] if n >= 1 else []
    return ks + ([n] if ks and ks[-1] != n else [])


def entropy_bits(answers: list) -> float:
    counts = np.array(list(Counter(answers).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def ece(confidence, correct, bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins (prompts sorted by confidence)."""
    conf, corr = np.asarray(confidence, float), np.asarray(correct, float)
    if conf.size == 0:
        return math.nan
    order = np.argsort(conf, kind="stable")
    return float(
        sum(
            len(b) / conf.size * abs(conf[b].mean() - corr[b].mean())
            for b in np.array_split(order, min(bins, conf.size))
        )
    )


def repetition(text: str | None, n: int = 4) -> float:
    """Share of a text's word n-grams that repeat an earlier one: 1 − distinct/total."""
    words = (text or "").split()
    grams = list(zip(*(words[i:] for i in range(n)), strict=False))
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def looping(text: str | None, tail: int = 48, max_period: int = 16) -> bool:
    """A degenerate loop: the completion's last ``tail`` characters are one unit of at most
    ``max_period`` characters repeated (``<<<<…``, ``= 4 = 4 = 4…``), the failure mode of an
    over-trained or broken stage that generates until the cap. Text that merely reuses words
    is not periodic, so ordinary answers and step-by-step reasoning never count."""
    t = (text or "").rstrip()
    if len(t) < tail:
        return False
    end = t[-tail:]
    for period in range(1, max_period + 1):
        unit = end[-period:]
        if unit.strip() and (unit * (tail // period + 1))[-tail:] == end:
            return True
    return False


def split_think(text: str | None) -> tuple[str, str]:
    """(reasoning, answer): inside ``<think>…</think>`` vs the rest; an unclosed think is all reasoning."""
    text = text or ""
    if "</think>" in text:
        head, answer = text.split("</think>", 1)
        before, _, reasoning = head.rpartition("<think>")
        return reasoning, before + answer
    if "<think>" in text:
        before, _, reasoning = text.partition("<think>")
        return reasoning, before
    return "", text


_NUM = re.compile(r"^[-+]?\d[\d,]*(\.\d+)?$|^[-+]?\.\d+$")


def normalize_answer(answer: str | None) -> str | None:
    if answer is None:
        return None
    s = answer.strip().strip("$").strip().rstrip(".").strip().lower()
    if _NUM.match(s):
        x = float(s.replace(",", ""))
        return str(int(x)) if x.is_integer() else repr(x)
    return s


@dataclass
class Behavior:
    """One cell × task: cell-level figures plus per-prompt arrays (for paired comparisons)."""

    cell_key: str
    task: str
    figures: dict
    pass_at: dict[int, float]
    length_unit: str
    doc_ids: list[int] = field(default_factory=list)
    per_prompt: dict[str, np.ndarray] = field(default_factory=dict)  # figure -> values by doc_ids
    solved: dict[int, np.ndarray] = field(
        default_factory=dict
    )  # k -> any of the first k samples right
    n_per_prompt: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {
            "cell_key": self.cell_key,
            "task": self.task,
            "length_unit": self.length_unit,
            "figures": self.figures,
            "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
        }


def _lengths(s: dict) -> tuple[float, float]:
    reasoning, answer = split_think(s.get("completion"))
    if s.get("gen_tokens") is None:
        return float(len(reasoning.split())), float(len(answer.split()))
    total, chars = float(s["gen_tokens"]), len(reasoning) + len(answer)
    share = len(reasoning) / chars if chars else 0.0
    return total * share, total * (1 - share)


def _stat(xs) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(xs)) if xs else None


def behavior(rows: list[dict], *, ngram: int = 4, ks: list[int] | None = None) -> Behavior:
    """Figures of one cell × task's rows (see the module doc)."""
    if not rows:
        raise BenchError("behavior: no sample rows")
    prompts: dict[int, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rows):
        order = r.get("repeat") if r.get("repeat") is not None else i
        prompts.setdefault(int(r["doc_id"]), []).append((order, r))
    doc_ids = sorted(prompts)
    samples = [[r for _, r in sorted(prompts[d], key=lambda x: x[0])] for d in doc_ids]
    n = np.array([len(s) for s in samples])
    ks = ks or default_ks(int(n.max()))
    per: dict[str, list] = {f: [] for f in MEAN_FIGURES}
    lens, solved = [], {k: [] for k in ks}
    pass_at = {k: [] for k in ks}
    for group in samples:
        correct = [bool(s["correct"]) for s in group]
        answers = [normalize_answer(s.get("answer")) for s in group]
        counts = Counter(answers)
        modal = max(counts, key=lambda a: (counts[a], -answers.index(a)))  # ties: the earliest
        right = [c for a, c in zip(answers, correct, strict=True) if a == modal]
        conf = counts[modal] / len(group)
        modal_ok = float(modal is not None and sum(right) * 2 > len(right))
        ls = [_lengths(s) for s in group]
        lens += ls
        trunc = [s.get("truncated") for s in group]
        per["reasoning_len"].append(np.mean([x[0] for x in ls]))
        per["answer_len"].append(np.mean([x[1] for x in ls]))
        per["total_len"].append(np.mean([x[0] + x[1] for x in ls]))
        per["truncated"].append(math.nan if None in trunc else float(np.mean(trunc)))
        per["score"].append(float(np.mean([float(s["score"]) for s in group])))
        per["distinct"].append(float(len({a for a in answers if a is not None})))
        per["entropy"].append(entropy_bits(answers))
        per["confidence"].append(conf)
        per["modal_correct"].append(modal_ok)
        per["brier"].append((conf - modal_ok) ** 2)
        per["repetition"].append(
            float(np.mean([repetition(s.get("completion"), ngram) for s in group]))
        )
        for k in ks:
            ok = k <= len(group)
            pass_at[k].append(pass_at_k(len(group), sum(correct), k) if ok else math.nan)
            solved[k].append(float(any(correct[:k])) if ok else math.nan)
    flat = [s for g in samples for s in g]
    done = [float(s["score"]) for s in flat if s.get("truncated") is False]
    has_trunc = all(s.get("truncated") is not None for s in flat)
    figures = {
        "n_prompts": len(doc_ids),
        "n_samples": len(flat),
        "samples_per_prompt": int(n.max()),
        "score": _stat(float(s["score"]) for s in flat),
        "reasoning_len_mean": float(np.mean([x[0] for x in lens])),
        "reasoning_len_median": float(np.median([x[0] for x in lens])),
        "answer_len_mean": float(np.mean([x[1] for x in lens])),
        "answer_len_median": float(np.median([x[1] for x in lens])),
        "truncation_rate": _stat(float(bool(s["truncated"])) for s in flat) if has_trunc else None,
        "score_completed": (_stat(done) if done else None) if has_trunc else None,
        "distinct_answers": _stat(per["distinct"]),
        "answer_entropy": _stat(per["entropy"]),
        "sc_confidence": _stat(per["confidence"]),
        "sc_accuracy": _stat(per["modal_correct"]),
        "ece": ece(per["confidence"], per["modal_correct"]),
        "brier": _stat(per["brier"]),
        "repetition": _stat(per["repetition"]),
        "repetition_n": ngram,
    }
    unit = (
        "tokens (gen_tokens; reasoning/answer split by character share)"
        if all(s.get("gen_tokens") is not None for s in flat)
        else "words (whitespace; no gen_tokens)"
    )
    return Behavior(
        cell_key=str(rows[0].get("cell_key", "")),
        task=str(rows[0].get("task", "")),
        figures=figures,
        pass_at={k: _stat(v) for k, v in pass_at.items()},
        length_unit=unit,
        doc_ids=doc_ids,
        per_prompt={f: np.asarray(v, float) for f, v in per.items()}
        | {f"pass@{k}": np.asarray(v, float) for k, v in pass_at.items()},
        solved={k: np.asarray(v, float) for k, v in solved.items()},
        n_per_prompt=n,
    )


def _ece_delta(pc, pm, cc, cm, n_boot: int, seed: int, alpha: float) -> dict:
    d = ece(cc, cm) - ece(pc, pm)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(pc), len(pc))
        boots.append(ece(cc[i], cm[i]) - ece(pc[i], pm[i]))
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return {"delta": d, "ci": [float(lo), float(hi)]}


def compare_behavior(
    parent: Behavior, child: Behavior, *, seed: int = 0, n_boot: int = 2000, alpha: float = 0.05
) -> dict:
    """Child minus parent over shared prompts: Δ with paired bootstrap CIs, solved tables, crossover."""
    shared = sorted(set(parent.doc_ids) & set(child.doc_ids))
    if not shared:
        raise BenchError(
            f"cells {parent.cell_key} and {child.cell_key} share no doc_id on task {child.task}"
        )
    ip, ic = (
        np.searchsorted(parent.doc_ids, shared),
        np.searchsorted(child.doc_ids, shared),
    )  # both sorted
    deltas = {}
    for f in [f for f in child.per_prompt if f in parent.per_prompt]:
        a, b = parent.per_prompt[f][ip], child.per_prompt[f][ic]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() == 0:
            continue
        pb = paired_bootstrap(a[ok], b[ok], alpha=alpha, n_boot=n_boot, seed=seed)
        deltas[f] = {"delta": pb.diff, "ci": list(pb.ci), "p": pb.p_value}
    deltas["ece"] = _ece_delta(
        parent.per_prompt["confidence"][ip],
        parent.per_prompt["modal_correct"][ip],
        child.per_prompt["confidence"][ic],
        child.per_prompt["modal_correct"][ic],
        min(n_boot, 1000),
        seed,
        alpha,
    )
    tables = {}
    for k in sorted(set(parent.solved) & set(child.solved)):
        a, b = parent.solved[k][ip], child.solved[k][ic]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() == 0:
            continue
        a, b = a[ok].astype(bool), b[ok].astype(bool)
        m = mcnemar(a, b, alpha)
        tables[k] = {
            "both": int((a & b).sum()),
            "parent_only": int((a & ~b).sum()),
            "child_only": int((~a & b).sum()),
            "neither": int((~a & ~b).sum()),
            "p": m.p_value,
        }
    pk = {
        k: (parent.pass_at[k], child.pass_at[k])
        for k in sorted(set(parent.pass_at) & set(child.pass_at))
        if parent.pass_at[k] is not None and child.pass_at[k] is not None
    }
    return {
        "parent": parent.cell_key,
        "child": child.cell_key,
        "task": child.task,
        "n_shared": len(shared),
        "deltas": deltas,
        "solved_at_k": {str(k): v for k, v in tables.items()},
        "pass_at_k": {str(k): {"parent": a, "child": b} for k, (a, b) in pk.items()},
        "crossover_k": crossover_k(pk),
    }


def crossover_k(curves: dict[int, tuple[float, float]]) -> int | None:
    """The first k at which child − parent pass@k changes sign from its sign at the smallest k."""
    ks = sorted(curves)
    signs = [np.sign(curves[k][1] - curves[k][0]) for k in ks]
    first = next((s for s in signs if s != 0), 0)
    return next((k for k, s in zip(ks, signs, strict=True) if s * first < 0), None)
