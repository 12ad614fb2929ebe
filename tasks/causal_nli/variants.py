"""Robustness variants of causal_nli: the perturbations the Corr2Cause authors used to show
that fine-tuned models pattern-match instead of reasoning.

* ``rename``: the variables get other names (other letters, or words such as ``rain``),
  listed in the same order, so every statement and the label stay the same.
* ``paraphrase``: the hypothesis is worded with the released data's paraphrased templates
  ("X directly affects Y", "Some variable(s) cause(s) both X and Y", ...).
* more variables than training saw: ``generate`` at a larger N (a YAML setting only).

Every variant row is re-parsed and re-labelled by the oracle; a row whose oracle label
differs from the original raises, so a variant never changes what it asks.
"""

from __future__ import annotations

import random
import re

from tasks.causal_nli.language import (
    Hypothesis,
    Premise,
    format_premise,
    parse_hypothesis,
    parse_input,
    render_input,
)
from tasks.causal_nli.oracle import entailed

__all__ = [
    "LETTERS",
    "WORDS",
    "PARAPHRASES",
    "rename",
    "paraphrase",
    "renamed_rows",
    "paraphrased_rows",
]

# No A-F (the training names at N <= 6), no I/O (read as digits), no names that parse as
# list words ("and") or that the hypothesis phrasings use.
LETTERS = tuple("GHJKLMNPQRSTUVWXYZ")
WORDS = (
    "rain",
    "smoke",
    "traffic",
    "noise",
    "stress",
    "sleep",
    "diet",
    "exercise",
    "income",
    "rent",
    "wind",
    "frost",
    "pollen",
    "fever",
    "sunlight",
    "humidity",
    "caffeine",
    "fatigue",
)
# relation -> the paraphrased wording the parser reads (tasks.causal_nli.language)
PARAPHRASES = {
    "parent": "{x} directly affects {y}.",
    "mediated": "{x} influences {y} through some mediator(s).",
    "collider": "{x} and {y} together cause some other variable(s).",
    "confounder": "Some variable(s) cause(s) both {x} and {y}.",
}


def _check(row: dict, premise: Premise, hypothesis: Hypothesis, text: str) -> dict:
    label = int(entailed(premise, hypothesis))
    if label != int(row["label"]):
        raise ValueError(
            f"variant of {row.get('id')} changed the oracle's label; not a perturbation"
        )
    return {**row, "input": text, "label": label}


def rename(row: dict, names: tuple[str, ...], rng: random.Random) -> dict:
    """The row with its variables renamed to a seeded draw from ``names``, in listed order."""
    premise, hypothesis = parse_input(row["input"])
    new = dict(zip(premise.variables, rng.sample(names, len(premise.variables)), strict=True))
    renamed = Premise(
        tuple(new[v] for v in premise.variables),
        frozenset(frozenset(new[v] for v in pair) for pair in premise.correlations),
        frozenset(
            (frozenset(new[v] for v in pair), frozenset(new[v] for v in given))
            for pair, given in premise.independences
        ),
    )
    sentence = row["input"].rpartition("Hypothesis:")[2].strip()
    for old in sorted(premise.variables, key=len, reverse=True):
        sentence = _swap_word(sentence, old, new[old])
    hyp = parse_hypothesis(sentence, renamed.variables)
    if (hyp.relation, hyp.x, hyp.y) != (hypothesis.relation, new[hypothesis.x], new[hypothesis.y]):
        raise ValueError(f"renaming {row.get('id')} changed its hypothesis")
    return _check(row, renamed, hyp, render_input(format_premise(renamed), sentence))


def _swap_word(sentence: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, sentence)


def paraphrase(row: dict) -> dict:
    """The row with its hypothesis in the paraphrased wording of the same relation and pair."""
    premise, hypothesis = parse_input(row["input"])
    sentence = PARAPHRASES[hypothesis.relation].format(x=hypothesis.x, y=hypothesis.y)
    hyp = parse_hypothesis(sentence, premise.variables)
    if (hyp.relation, hyp.x, hyp.y) != (hypothesis.relation, hypothesis.x, hypothesis.y):
        raise ValueError(f"paraphrasing {row.get('id')} changed its hypothesis")
    head = row["input"].rpartition("Hypothesis:")[0].strip().removeprefix("Premise:").strip()
    return _check(row, premise, hyp, render_input(head, sentence))


def renamed_rows(rows: list[dict], names: str, seed: int) -> list[dict]:
    """Every row renamed; ``names`` is ``letters``, ``words`` or ``mixed`` (alternating)."""
    pools = {"letters": (LETTERS,), "words": (WORDS,), "mixed": (LETTERS, WORDS)}
    if names not in pools:
        raise ValueError(f"names {names!r}: use letters, words or mixed")
    rng = random.Random(f"rename:{seed}")
    choice = pools[names]
    return [rename(r, choice[k % len(choice)], rng) for k, r in enumerate(rows)]


def paraphrased_rows(rows: list[dict]) -> list[dict]:
    return [paraphrase(r) for r in rows]
