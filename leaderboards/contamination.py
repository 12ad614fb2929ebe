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

from leaderboards.curves import stage_dir, train_lineage

__all__ = [
    "N",
    "DOC_THRESHOLD",
    "TASK_THRESHOLD",
    "TRAIN_ROWS",
    "tokens",
    "doc_text",
    "NgramIndex",
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


class NgramIndex:
    """The n-grams of a set of training rows, for every n a doc needs (8, or a short doc's length)."""

    def __init__(self, rows: Iterable[str]):
        self.rows = [tokens(r) for r in rows]
        self._by_n: dict[int, set[int]] = {}

    def grams(self, n: int) -> set[int]:
        if n not in self._by_n:
            self._by_n[n] = {hash(g) for toks in self.rows for g in _grams(toks, n)}
        return self._by_n[n]


def contaminated(text: str, index: NgramIndex) -> bool:
    toks = tokens(text)
    if not toks:
        return False
    n = min(N, len(toks))
    grams = _grams(toks, n)
    seen = index.grams(n)
    hits = sum(hash(g) in seen for g in grams)
    return hits / len(grams) > DOC_THRESHOLD


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
    training rows; a cell with a stage that did not (older results) gets none: unknown, not 0."""
    out, cache = [], {}
    for key in eval_keys:
        lineage = [k for k, _ in train_lineage(con, key)]
        if not lineage:
            continue
        rows = []
        for k in lineage:
            if k not in cache:
                cache[k] = read_train_rows(results_dir, k)
            if cache[k] is None:
                rows = None
                break
            rows += cache[k]
        if rows is None:
            continue
        index = NgramIndex(rows)
        docs: dict[str, list[bool]] = {}
        for task, meta, prompt in con.execute(
            "SELECT task, meta, prompt FROM samples WHERE cell_key = ?", [key]
        ).fetchall():
            docs.setdefault(task, []).append(contaminated(doc_text(meta, prompt), index))
        for task, flags in sorted(docs.items()):
            out.append(
                {
                    "cell_key": key,
                    "task": task,
                    "n_docs": len(flags),
                    "n_contaminated": sum(flags),
                    "share": sum(flags) / len(flags),
                    "train_cells": lineage,
                }
            )
    return out
