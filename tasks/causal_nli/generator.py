"""Seeded Corr2Cause-format problems from random DAGs, labelled by the oracle.

A fresh seed gives a fresh, contamination-free set; the same seed gives the same rows.
Rows have the columns of the released CSVs (``input``, ``label``, ``num_variables``,
``template``) plus ``id``, so ``check_file``, the lm-eval loaders and the real files all
read them the same way.

Unlike the released data, variable names are by default *not* a topological order of
the generating DAG: there every "child" and later-named "non-child descendant"
hypothesis is invalid by construction, a shortcut a model can learn.
``topological_names=True`` restores the original convention.
"""

from __future__ import annotations

import csv
import itertools
import random
import string
from functools import lru_cache
from pathlib import Path

import networkx as nx

from tasks.causal_nli.language import (
    KINDS,
    Premise,
    format_premise,
    parse_hypothesis,
    parse_premise,
    render_hypothesis,
    render_input,
)
from tasks.causal_nli.oracle import Dag, entailed, is_d_separator

__all__ = ["FIELDS", "random_dag", "premise_of", "rows_for_dag", "generate", "write_csv"]

FIELDS = ("input", "label", "num_variables", "template", "id")
_DENSITIES = (0.25, 0.4, 0.55, 0.7, 0.85)


def random_dag(
    rng: random.Random, n: int, *, topological_names: bool = False
) -> tuple[tuple[str, ...], Dag]:
    """Variables ``A, B, ...`` and a DAG over them; edge density varies per draw."""
    variables = tuple(string.ascii_uppercase[:n])
    order = list(variables)
    if not topological_names:
        rng.shuffle(order)
    density = rng.choice(_DENSITIES)
    edges = frozenset(
        (order[a], order[b])
        for a, b in itertools.combinations(range(n), 2)
        if rng.random() < density
    )
    return variables, edges


@lru_cache(maxsize=4096)  # small sizes redraw the same DAGs often
def premise_of(variables: tuple[str, ...], dag: Dag) -> Premise:
    """Every d-separation of the DAG as an independence; pairs dependent given nothing correlate."""
    g = nx.DiGraph()
    g.add_nodes_from(variables)
    g.add_edges_from(sorted(dag))
    corrs, indeps = set(), set()
    for x, y in itertools.combinations(variables, 2):
        rest = [v for v in variables if v not in (x, y)]
        for r in range(len(rest) + 1):
            for z in itertools.combinations(rest, r):
                if is_d_separator(g, {x}, {y}, set(z)):
                    indeps.add((frozenset((x, y)), frozenset(z)))
        if (frozenset((x, y)), frozenset()) not in indeps:
            corrs.add(frozenset((x, y)))
    return Premise(variables, frozenset(corrs), frozenset(indeps))


def rows_for_dag(
    rng: random.Random, variables: tuple[str, ...], dag: Dag, kinds=KINDS
) -> list[dict]:
    """One row per variable pair and kind; labels come from the oracle on the rendered text."""
    premise_text = format_premise(premise_of(variables, dag))
    premise = parse_premise(premise_text)  # label exactly what a reader of the text sees
    rows = []
    for x, y in itertools.combinations(variables, 2):  # x is listed before y
        for kind in kinds:
            if kind == "parent":
                a, b = x, y
            elif kind == "child":
                a, b = y, x
            else:  # the released data uses both orders for these phrasings
                a, b = (x, y) if rng.random() < 0.5 else (y, x)
            sentence = render_hypothesis(kind, a, b)
            hypothesis = parse_hypothesis(sentence, premise.variables)
            rows.append(
                {
                    "input": render_input(premise_text, sentence),
                    "label": int(entailed(premise, hypothesis)),
                    "num_variables": len(variables),
                    "template": hypothesis.kind,
                }
            )
    return rows


def _quotas(n_items: int, cells: list) -> dict:
    base, extra = divmod(n_items, len(cells))
    return {cell: base + (k < extra) for k, cell in enumerate(cells)}


def _targets(n_items: int, num_variables, kinds, balance: bool) -> dict[tuple, int]:
    """(n, kind, label) -> rows wanted; label is None when labels are not balanced."""
    quota = _quotas(n_items, [(n, k) for n in num_variables for k in kinds])
    if not balance:
        return {(n, k, None): q for (n, k), q in quota.items()}
    targets = {}
    for (n, k), q in quota.items():
        # odd quotas: a checkerboard over (size, kind) decides which label gets the extra row
        valid = (q + (num_variables.index(n) + kinds.index(k)) % 2) // 2
        targets[n, k, 1], targets[n, k, 0] = valid, q - valid
    return targets


def _takes(targets: dict[tuple, int], available: dict[tuple, int]) -> dict[tuple, int]:
    """Rows to take per bucket; a bucket that cannot meet its target hands the rest to others:
    first the same kind and label at other sizes, then the same label, then any bucket."""
    take = {key: min(want, available[key]) for key, want in targets.items()}
    policies = (lambda a, b: a[1:] == b[1:], lambda a, b: a[2] == b[2], lambda a, b: True)
    shortfall = {key: want - take[key] for key, want in targets.items()}
    for key, need in shortfall.items():
        for same in policies:
            donors = [k for k in targets if k != key and same(k, key)]
            while need and any(take[k] < available[k] for k in donors):
                for k in donors:  # round robin, so no single size absorbs the shortfall
                    if need and take[k] < available[k]:
                        take[k] += 1
                        need -= 1
    return take


def generate(
    n_items: int,
    seed: int,
    *,
    num_variables: tuple[int, ...] = (2, 3, 4, 5, 6),
    kinds: tuple[str, ...] = KINDS,
    balance: bool = True,
    topological_names: bool = False,
    max_draws: int = 400,
    patience: int = 60,
) -> list[dict]:
    """``n_items`` distinct rows spread evenly over (num_variables, kind) cells.

    ``balance``: half of each cell valid. Where the class makes that impossible (nothing
    is valid with 2 variables; no mediated path or confounder is with 3) the valid share
    moves to the same kind at other sizes, so kinds and labels stay balanced and sizes
    nearly so. Without it labels keep their natural rate (~10% valid). Per size, DAGs
    are drawn until every bucket is full or ``patience`` draws in a row add nothing to a
    bucket still short.
    """
    if not all(2 <= n <= 26 for n in num_variables) or not set(kinds) <= set(KINDS):
        raise ValueError(f"num_variables must be in 2..26 and kinds among {KINDS}")
    rng = random.Random(seed)
    targets = _targets(n_items, num_variables, kinds, balance)
    pool: dict[tuple, dict[str, dict]] = {key: {} for key in targets}  # key -> input -> row
    for n in num_variables:
        stale = 0
        for _ in range(max_draws):
            short = {k for k in targets if k[0] == n and len(pool[k]) < 2 * targets[k]}
            if not short or stale >= patience:
                break
            grew = False
            dag = random_dag(rng, n, topological_names=topological_names)
            for row in rows_for_dag(rng, *dag, kinds):
                key = (n, row["template"], row["label"] if balance else None)
                if row["input"] not in pool[key]:
                    pool[key][row["input"]] = row
                    grew |= key in short
            stale = 0 if grew else stale + 1
    rows = {key: list(bucket.values()) for key, bucket in pool.items()}
    for bucket in rows.values():
        rng.shuffle(bucket)
    take = _takes(targets, {key: len(bucket) for key, bucket in rows.items()})
    chosen = [row for key, bucket in rows.items() for row in bucket[: take[key]]]
    if len(chosen) < n_items:
        raise ValueError(
            f"only {len(chosen)} distinct items for n_items={n_items}; "
            "raise max_draws or allow more num_variables"
        )
    rng.shuffle(chosen)
    return [{**row, "id": f"causal_nli-s{seed}-{k}"} for k, row in enumerate(chosen)]


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """The released CSV layout (``input,label,num_variables,template``) plus ``id``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
