"""The programmatic teacher of causal_nli: the oracle's own steps written out as a trace.

A trace follows the oracle (:mod:`tasks.causal_nli.oracle`) step by step, so a model
distilled on it sees how a verdict is reached rather than only the verdict::

    <think>
    Step 1: Skeleton: A-C, B-C.
    Step 2: V-structures: A -> C <- B.
    Step 3: Markov equivalence class: 1 DAG: {A->C, B->C}.
    Step 4: "A directly causes C" holds in 1 of 1 DAGs.
    Step 5: It holds in every DAG of the class, so the hypothesis is valid.
    </think>
    valid

The answer after ``</think>`` is the bare verdict, the one word the eval prompt asks for;
``direct=True`` gives that verdict alone (the target of verdict-only SFT, and the
non-reasoning share of a mixed distillation set).
"""

from __future__ import annotations

import networkx as nx

from tasks.causal_nli.language import Hypothesis, Premise, parse_input
from tasks.causal_nli.oracle import colliders, dag_text, equivalence_class, holds, skeleton

__all__ = ["think_trace", "trace_for_input", "MAX_LISTED"]

MAX_LISTED = 3  # class members written out; dense 4-variable skeletons have up to 24


def _graph(premise: Premise, dag) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(premise.variables)
    g.add_edges_from(sorted(dag))
    return g


def _dag(dag) -> str:
    return f"{{{dag_text(dag)}}}" if dag else "the empty graph"


def _members(dags) -> str:
    shown = "; ".join(_dag(d) for d in dags[:MAX_LISTED])
    more = f"; and {len(dags) - MAX_LISTED} more" if len(dags) > MAX_LISTED else ""
    return f"{len(dags)} DAG{'s' if len(dags) > 1 else ''}: {shown}{more}"


def think_trace(
    premise: Premise, hypothesis: Hypothesis, sentence: str, *, direct: bool = False
) -> str:
    """The trace for one problem; ``sentence`` is the hypothesis as the prompt words it."""
    dags = equivalence_class(premise)
    hold = [holds(_graph(premise, d), hypothesis) for d in dags]
    verdict = "valid" if all(hold) else "invalid"
    if direct:
        return verdict
    ix = {v: i for i, v in enumerate(premise.variables)}
    edges = ", ".join(f"{x}-{y}" for x, y in skeleton(premise)) or "no edges"
    vs = sorted((tuple(sorted(pair, key=ix.__getitem__)), z) for pair, z in colliders(premise))
    v_text = ", ".join(f"{a} -> {z} <- {b}" for (a, b), z in vs) or "none"
    claim = sentence.strip().rstrip(".")
    step4 = f'"{claim}" holds in {sum(hold)} of {len(dags)} DAGs'
    if not all(hold):
        step4 += f"; not in {_dag(dags[hold.index(False)])}"
    conclusion = (
        "It holds in every DAG of the class, so the hypothesis is valid."
        if all(hold)
        else "It does not hold in every DAG of the class, so the hypothesis is invalid."
    )
    steps = [
        f"Skeleton: {edges}.",
        f"V-structures: {v_text}.",
        f"Markov equivalence class: {_members(dags)}.",
        f"{step4}.",
        conclusion,
    ]
    body = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    return f"<think>\n{body}\n</think>\n{verdict}"


def trace_for_input(text: str, *, direct: bool = False) -> str:
    """The trace for a Corr2Cause ``input`` field (``Premise: ...\\nHypothesis: ...``)."""
    premise, hypothesis = parse_input(text)
    return think_trace(premise, hypothesis, text.rpartition("Hypothesis:")[2], direct=direct)
