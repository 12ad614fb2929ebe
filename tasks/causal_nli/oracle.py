"""Symbolic oracle: a hypothesis is valid iff it holds in every DAG of the premise's class.

The premise lists every statistical relation of a closed system (causal sufficiency,
faithfulness): a pair/given-set not stated independent is dependent. So the class is the
set of DAGs whose d-separations are *exactly* the stated independences:

1. skeleton: X - Y adjacent iff no statement separates them (PC with a perfect CI oracle);
2. v-structures: unshielded X - Z - Y is a collider iff Z is in none of X, Y's given-sets;
3. candidates: every acyclic orientation of the skeleton (one per variable ordering)
   with exactly those v-structures (Verma-Pearl: the Markov equivalence class);
4. each candidate's full d-separation profile is recomputed with networkx and must
   reproduce the statements, so a premise no DAG is faithful to raises instead of
   yielding a vacuous "valid".

Relations, as the original generator defines them on paths (see ``holds``):
parent X -> Y; mediated X -> ... -> Y through at least one other variable (a direct edge
may exist too); collider: some C other than X, Y with directed paths X => C <= Y that
share only C; confounder: some W other than X, Y with directed paths X <= W => Y that
share only W (so an ancestor of X alone, e.g. W -> X -> Y, is not a confounder).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from functools import lru_cache

import networkx as nx

from tasks.causal_nli.language import Hypothesis, ParseError, Premise, parse_input

__all__ = [
    "Dag",
    "InconsistentPremise",
    "skeleton",
    "colliders",
    "equivalence_class",
    "holds",
    "entailed",
    "label_input",
    "dag_text",
    "is_d_separator",
]

Dag = frozenset[tuple[str, str]]  # directed edges

# networkx renamed d_separated to is_d_separator in 3.3 and removed the old name in 3.5.
is_d_separator = getattr(nx, "is_d_separator", None) or nx.d_separated
MAX_VARIABLES = 8  # candidates are enumerated through variable orderings (n!)


class InconsistentPremise(ValueError):
    """No DAG has exactly the premise's (in)dependences."""


def _sepsets(premise: Premise) -> dict[frozenset[str], set[frozenset[str]]]:
    seps: dict[frozenset[str], set[frozenset[str]]] = defaultdict(set)
    for pair, given in premise.independences:
        seps[pair].add(given)
    for pair in premise.correlations:
        if frozenset() in seps.get(pair, ()):
            raise InconsistentPremise(
                f"{'/'.join(sorted(pair))} stated both correlated and independent"
            )
    return seps


def _v_structures(dag: Dag, adjacent: set[frozenset[str]]) -> set[tuple[frozenset[str], str]]:
    parents: dict[str, list[str]] = defaultdict(list)
    for a, b in dag:
        parents[b].append(a)
    return {
        (frozenset((a, b)), c)
        for c, ps in parents.items()
        for a, b in itertools.combinations(ps, 2)
        if frozenset((a, b)) not in adjacent
    }


def _digraph(variables: tuple[str, ...], dag: Dag) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(variables)
    g.add_edges_from(sorted(dag))
    return g


def _reproduces(
    premise: Premise, dag: Dag, seps: dict[frozenset[str], set[frozenset[str]]]
) -> bool:
    g = _digraph(premise.variables, dag)
    for x, y in itertools.combinations(premise.variables, 2):
        stated = seps.get(frozenset((x, y)), set())
        if not stated and (g.has_edge(x, y) or g.has_edge(y, x)):
            continue  # adjacent: never separated, and the skeleton came from this very fact
        rest = [v for v in premise.variables if v not in (x, y)]
        for r in range(len(rest) + 1):
            for z in itertools.combinations(rest, r):
                if is_d_separator(g, {x}, {y}, set(z)) != (frozenset(z) in stated):
                    return False
    return True


def skeleton(premise: Premise) -> list[tuple[str, str]]:
    """Step 1: the adjacent pairs (no statement separates them), in listed order."""
    seps = _sepsets(premise)
    return [p for p in itertools.combinations(premise.variables, 2) if frozenset(p) not in seps]


def colliders(premise: Premise) -> set[tuple[frozenset[str], str]]:
    """Step 2: the v-structures ({X, Y}, Z): X - Z - Y unshielded and Z in none of X, Y's given-sets."""
    adjacent = {frozenset(p) for p in skeleton(premise)}
    out = set()
    for pair, given in _sepsets(premise).items():
        x, y = sorted(pair)
        for z in premise.variables:
            unshielded = frozenset((x, z)) in adjacent and frozenset((y, z)) in adjacent
            if unshielded and not any(z in s for s in given):
                out.add((pair, z))
    return out


@lru_cache(maxsize=2048)
def equivalence_class(premise: Premise) -> tuple[Dag, ...]:
    """Every DAG whose d-separations are exactly the stated independences (sorted, never empty)."""
    variables = premise.variables
    if len(variables) > MAX_VARIABLES:
        raise ParseError(
            f"{len(variables)} variables; the oracle enumerates at most {MAX_VARIABLES}"
        )
    seps = _sepsets(premise)
    edges = skeleton(premise)
    adjacent = {frozenset(p) for p in edges}
    wanted = colliders(premise)
    members: set[Dag] = set()
    for order in itertools.permutations(variables):
        pos = {v: i for i, v in enumerate(order)}
        dag = frozenset((a, b) if pos[a] < pos[b] else (b, a) for a, b in edges)
        if dag not in members and _v_structures(dag, adjacent) == wanted:
            members.add(dag)
    verified = tuple(sorted((d for d in members if _reproduces(premise, d, seps)), key=sorted))
    if not verified:
        raise InconsistentPremise("no DAG has exactly the stated (in)dependences")
    return verified


def holds(g: nx.DiGraph, hypothesis: Hypothesis) -> bool:
    """Does the relation hold in this one DAG? (Path definitions of the original generator.)"""
    x, y = hypothesis.x, hypothesis.y
    if hypothesis.relation == "parent":
        return g.has_edge(x, y)
    if hypothesis.relation == "mediated":
        return any(c != y and nx.has_path(g, c, y) for c in g.successors(x))
    without_x, without_y = g.subgraph(set(g) - {x}), g.subgraph(set(g) - {y})
    if hypothesis.relation == "collider":  # reachable from x avoiding y and from y avoiding x
        shared = nx.descendants(without_y, x) & nx.descendants(without_x, y)
    elif hypothesis.relation == "confounder":
        shared = nx.ancestors(without_y, x) & nx.ancestors(without_x, y)
    else:
        raise ValueError(f"unknown relation {hypothesis.relation!r}")
    return bool(shared - {x, y})


@lru_cache(maxsize=2048)
def _member_graphs(premise: Premise) -> tuple[nx.DiGraph, ...]:
    return tuple(nx.freeze(_digraph(premise.variables, d)) for d in equivalence_class(premise))


@lru_cache(maxsize=65536)
def entailed(premise: Premise, hypothesis: Hypothesis) -> bool:
    """Valid iff the hypothesis holds in every DAG of the premise's equivalence class."""
    return all(holds(g, hypothesis) for g in _member_graphs(premise))


def label_input(text: str) -> bool:
    """Oracle label of a Corr2Cause ``input`` field (True = valid)."""
    return entailed(*parse_input(text))


def dag_text(dag: Dag) -> str:
    """``"A->C, B->C"``: a class member in one line (for reports)."""
    return ", ".join(f"{a}->{b}" for a, b in sorted(dag)) or "(no edges)"
