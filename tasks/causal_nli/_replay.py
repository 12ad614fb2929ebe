"""Replay how the original Corr2Cause generator labelled a hypothesis, bugs included.

Why: the released labels disagree with a correct oracle on a few percent of rows, and
each disagreement must be classed as a label error or an oracle bug. Reimplementing the
original procedure (described from its published C++/Python generator) reproduces every
label of the 5k training sample, so a row whose label this replay reproduces and the
oracle rejects is a label error of the generator, not of the oracle. Two defects matter:

* Relabelling: each class member M is stored as (C, s) where C is the canonical
  representative of M's isomorphism class and M = s(C) (node k of C becomes s[k]); the
  relation of M between i and j is then read as C's relation between s[i] and s[j],
  i.e. through s instead of its inverse. Wrong whenever s is not an involution.
* Confounder paths: the loop meant to walk from the far end towards the common cause
  increments its index, so only W -> end with W =>...=> begin paths count, and
  begin/end are the pair in variable-list order.

Nothing here decides a label; ``check_file`` uses it to explain disagreements.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import networkx as nx

from tasks.causal_nli.language import Hypothesis, Premise
from tasks.causal_nli.oracle import Dag, equivalence_class

__all__ = ["original_label"]

# bit of each path class in the generator: parent, ancestor, child, descendant, collider, confounder
_PARENT, _ANCESTOR, _CHILD, _DESCENDANT, _COLLIDER, _CONFOUNDER, _MIXED = (1 << k for k in range(7))

IndexDag = frozenset[tuple[int, int]]


def _leading(flags: list[bool]) -> int:
    return next((i for i, f in enumerate(flags) if not f), len(flags))


def _path_class(path: list[int], edges: IndexDag) -> int:
    forward = [(a, b) in edges for a, b in itertools.pairwise(path)]
    k = len(forward)
    if k == 1:
        return _PARENT if forward[0] else _CHILD
    left, right = _leading(forward), _leading([not f for f in reversed(forward)])
    if left == k:
        return _ANCESTOR
    if right == k:
        return _DESCENDANT
    if left + right == k:
        return _COLLIDER
    # the generator's bug: its far-end walk stops after one step
    if _leading([not f for f in forward]) + (1 if forward[-1] else 0) == k:
        return _CONFOUNDER
    return _MIXED


@lru_cache(maxsize=4096)
def _relations(n: int, edges: IndexDag) -> dict[tuple[int, int], int]:
    skeleton = nx.Graph()
    skeleton.add_nodes_from(range(1, n + 1))
    skeleton.add_edges_from(edges)
    rel = {}
    for i, j in itertools.permutations(range(1, n + 1), 2):
        bits = 0
        for path in nx.all_simple_paths(skeleton, i, j):
            bits |= _path_class(path, edges)
        rel[i, j] = bits
    return rel


def _apply(s: tuple[int, ...], edges: IndexDag) -> IndexDag:
    return frozenset((s[a - 1], s[b - 1]) for a, b in edges)


@lru_cache(maxsize=4096)
def _canonical(n: int, edges: IndexDag) -> tuple[IndexDag, tuple[int, ...]]:
    """(C, s): C = the upper-triangular relabelling with the smallest edge bitmask, M = s(C)."""
    bit = {p: k for k, p in enumerate(itertools.combinations(range(1, n + 1), 2))}
    best: tuple[int, IndexDag] | None = None
    for perm in itertools.permutations(range(1, n + 1)):
        relabelled = _apply(perm, edges)
        if all(a < b for a, b in relabelled):
            mask = sum(1 << bit[e] for e in relabelled)
            if best is None or mask < best[0]:
                best = (mask, relabelled)
    assert best is not None  # a DAG always has a topological relabelling
    canonical = best[1]
    s = next(p for p in itertools.permutations(range(1, n + 1)) if _apply(p, canonical) == edges)
    return canonical, s


def _key(premise: Premise, hypothesis: Hypothesis) -> tuple[int, int, int]:
    ix = {v: k + 1 for k, v in enumerate(premise.variables)}
    a, b = ix[hypothesis.x], ix[hypothesis.y]
    if hypothesis.relation == "parent":
        return (a, b, _PARENT) if a < b else (b, a, _CHILD)
    if hypothesis.relation == "mediated":
        return (a, b, _ANCESTOR) if a < b else (b, a, _DESCENDANT)
    bit = _COLLIDER if hypothesis.relation == "collider" else _CONFOUNDER
    return min(a, b), max(a, b), bit


def original_label(premise: Premise, hypothesis: Hypothesis) -> bool:
    """The label the original generator gives (True = valid), defects included."""
    ix = {v: k + 1 for k, v in enumerate(premise.variables)}
    n = len(premise.variables)
    i, j, bit = _key(premise, hypothesis)
    members: tuple[Dag, ...] = equivalence_class(premise)
    for dag in members:
        canonical, s = _canonical(n, frozenset((ix[a], ix[b]) for a, b in dag))
        if not _relations(n, canonical)[s[i - 1], s[j - 1]] & bit:
            return False
    return True
