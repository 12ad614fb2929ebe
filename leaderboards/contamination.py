"""Were a trained cell's test docs in its training rows? Tulu 3's 8-gram rule, per cell × task.

A test doc is *contaminated* when more than half of its 8-grams occur in the training rows
of the cell's lineage (every stage from the base up: each writes ``train_rows.jsonl.gz``,
the text of the rows its trainer trained on). A task is *flagged* when more than 2 % of its
docs are. Text is compared as lower-case word and punctuation tokens; a doc shorter than
8 tokens is one n-gram of its own length (a 6-token question is contaminated when the whole
question occurs). A doc's text is its own fields (the sample's ``meta``: question, premise
…), not the prompt's shared instruction or few-shot examples, which every training row in
the task's format repeats.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from pathlib import Path

from leaderboards.curves import stage_dir

__all__ = [
    "N",
    "DOC_THRESHOLD",
    "TASK_THRESHOLD",
    "TRAIN_ROWS",
    "tokens",
    "doc_text",
    "contaminated",
    "read_train_rows",
    "contamination_rows",
]

N = 8
DOC_THRESHOLD = 0.5  # a doc is contaminated above this share of its n-grams
TASK_THRESHOLD = 0.02  # a task is flagged above this share of its docs
TRAIN_ROWS = "train_rows.jsonl.gz"  # trainers._stage writes it into the stage dir
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _grams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def doc_text(meta: str | None, prompt: str | None) -> str:
    """The doc's own strings (its ``meta`` fields); the prompt when a sample has no meta."""
    if meta:
        try:
            doc = json.loads(meta)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            strings = [v for v in doc.values() if isinstance(v, str)]
            if strings:
                return "\n".join(strings)
    return prompt or ""


def contaminated(text: str, train_rows: Iterable[str]) -> bool:
    """One doc against a list of rows (the rule in its plainest form; ingest batches it)."""
    toks = tokens(text)
    if not toks:
        return False
    n = min(N, len(toks))
    grams = _grams(toks, n)
    seen = {g for r in train_rows for g in _grams(tokens(r), n)}
    return sum(g in seen for g in grams) / len(grams) > DOC_THRESHOLD


def read_train_rows(results_dir: str | Path, train_key: str) -> list[str] | None:
    """The rows a train cell trained on, or None when its stage dir has no such file."""
    d = stage_dir(results_dir, train_key)
    file = d / TRAIN_ROWS if d else None
    if file is None or not file.is_file():
        return None
    with gzip.open(file, "rt", encoding="utf-8") as f:
        return [str(json.loads(line)) for line in f if line.strip()]


def contamination_rows(con, results_dir: str | Path, eval_keys: list[str]) -> list[dict]:
    """A row per (eval cell, task) of each trained cell whose every lineage stage recorded its
    training rows; a cell with a stage that did not (older results) gets none: unknown, not 0.

    Batched for a store of thousands of cells: the distinct docs of all the cells are read once,
    each train cell's rows are reduced once to the doc n-grams they contain, and only the docs
    a lineage's hits touch are checked."""
    import pyarrow as pa

    from leaderboards._rows import registered

    if not eval_keys:
        return []
    with registered(con, "_contam_new", pa.table({"cell_key": eval_keys})):
        trained = con.execute(
            "SELECT e.cell_key, e.parent_key FROM records e JOIN records t "
            "ON t.cell_key = e.parent_key AND t.kind = 'train' "
            "WHERE e.kind = 'eval' AND e.cell_key IN (SELECT cell_key FROM _contam_new)"
        ).fetchall()
    if not trained:
        return []
    parents = dict(
        con.execute("SELECT cell_key, parent_key FROM records WHERE kind = 'train'").fetchall()
    )
    rows: dict[str, list[str] | None] = {}
    lineages: dict[str, tuple[str, ...]] = {}
    for cell, key in trained:
        chain, k = [], key
        while k and k not in chain and k in parents:
            chain.append(k)
            k = parents[k]
        for k in chain:
            if k not in rows:
                rows[k] = read_train_rows(results_dir, k)
        if all(rows[k] is not None for k in chain):
            lineages[cell] = tuple(chain[::-1])
    if not lineages:
        return []
    with registered(con, "_contam_cells", pa.table({"cell_key": list(lineages)})):
        docs = con.execute(
            "SELECT DISTINCT task, doc_id, meta, prompt FROM samples "
            "WHERE cell_key IN (SELECT cell_key FROM _contam_cells)"
        ).fetchall()
        counts = con.execute(
            "SELECT cell_key, task, count(*) FROM samples "
            "WHERE cell_key IN (SELECT cell_key FROM _contam_cells) GROUP BY ALL"
        ).fetchall()
    # every doc's n-grams (n = 8, or its length when shorter), and which docs hold each one
    doc_grams: list[list[int]] = []
    holders: dict[int, dict[int, list[int]]] = {}  # n -> gram -> doc indices
    for i, (_, _, meta, prompt) in enumerate(docs):
        toks = tokens(doc_text(meta, prompt))
        n = min(N, len(toks))
        grams = [hash(g) for g in _grams(toks, n)] if toks else []
        doc_grams.append(grams)
        for g in set(grams):
            holders.setdefault(n, {}).setdefault(g, []).append(i)
    hits: dict[str, set[int]] = {}  # train key -> doc n-grams its rows contain
    for k in {k for chain in lineages.values() for k in chain}:
        toks = [tokens(r) for r in rows[k]]
        hits[k] = {
            h
            for n, grams in holders.items()
            for t in toks
            for g in _grams(t, n)
            if (h := hash(g)) in grams
        }
    bad_by_lineage: dict[tuple[str, ...], set[tuple]] = {}
    for chain in set(lineages.values()):
        found = set().union(*(hits[k] for k in chain))
        touched = {i for grams in holders.values() for g in found & grams.keys() for i in grams[g]}
        bad_by_lineage[chain] = {
            docs[i]
            for i in touched
            if sum(g in found for g in doc_grams[i]) / len(doc_grams[i]) > DOC_THRESHOLD
        }
    bad_counts: dict[tuple[str, str], int] = {}
    for cell, chain in lineages.items():
        bad = bad_by_lineage[chain]
        if not bad:
            continue
        for row in con.execute(
            "SELECT task, doc_id, meta, prompt FROM samples WHERE cell_key = ?", [cell]
        ).fetchall():
            if row in bad:
                bad_counts[(cell, row[0])] = bad_counts.get((cell, row[0]), 0) + 1
    return [
        {
            "cell_key": cell,
            "task": task,
            "n_docs": n,
            "n_contaminated": bad_counts.get((cell, task), 0),
            "share": bad_counts.get((cell, task), 0) / n,
            "train_cells": list(lineages[cell]),
        }
        for cell, task, n in sorted(counts)
    ]
