"""The Corr2Cause sentence format: parse premises/hypotheses into symbols, render them back.

One table of phrasings serves both directions, so every generated sentence is one the
parser reads, and the real files (original and paraphrased hypothesis templates) read
through the same code.

Kinds follow the released data's ``template`` column: ``parent``/``child`` share the
phrase "X directly causes Y" and differ by whether X comes before Y in the premise's
variable list; the two mediated-path phrasings are told apart by their wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "RELATIONS",
    "ParseError",
    "Premise",
    "Hypothesis",
    "parse_premise",
    "parse_hypothesis",
    "parse_input",
    "render_premise",
    "format_premise",
    "render_hypothesis",
    "render_input",
    "list2text",
]

KINDS = (
    "parent",
    "child",
    "non-parent ancestor",
    "non-child descendant",
    "has_collider",
    "has_confounder",
)
# What a hypothesis claims about the ordered pair (x, y), independent of its wording.
RELATIONS = ("parent", "mediated", "collider", "confounder")


class ParseError(ValueError):
    """A premise or hypothesis sentence that is not in the Corr2Cause format."""


@dataclass(frozen=True)
class Premise:
    """Variables in listed order, correlated pairs, and every stated independence (pair, given-set)."""

    variables: tuple[str, ...]
    correlations: frozenset[frozenset[str]]
    independences: frozenset[tuple[frozenset[str], frozenset[str]]]


@dataclass(frozen=True)
class Hypothesis:
    kind: str  # one of KINDS
    relation: str  # one of RELATIONS
    x: str
    y: str


_V = r"(?P<x>\w+)"
_W = r"(?P<y>\w+)"
# (relation, regex, render template or None for read-only paraphrases)
_HYPOTHESES = (
    ("parent", rf"{_V} directly causes {_W}", "{x} directly causes {y}."),
    (
        "mediated",
        rf"{_V} causes something else which causes {_W}",
        "{x} causes something else which causes {y}.",
    ),
    (
        "mediated",
        rf"{_V} is a cause for {_W}, but not a direct one",
        "{x} is a cause for {y}, but not a direct one.",
    ),
    (
        "collider",
        rf"There exists at least one collider \(i\.e\., common effect\) of {_V} and {_W}",
        "There exists at least one collider (i.e., common effect) of {x} and {y}.",
    ),
    (
        "confounder",
        rf"There exists at least one confounder \(i\.e\., common cause\) of {_V} and {_W}",
        "There exists at least one confounder (i.e., common cause) of {x} and {y}.",
    ),
    # The paraphrased templates of the original generator (its robustness split).
    ("parent", rf"{_V} directly affects {_W}", None),
    ("mediated", rf"{_V} influences {_W} through some mediator\(s\)", None),
    ("collider", rf"{_V} and {_W} together cause some other variable\(s\)", None),
    ("confounder", rf"Some variable\(s\) cause\(s\) both {_V} and {_W}", None),
)
_HYP_RE = [(rel, re.compile(rx + r"\.?", re.IGNORECASE), tpl) for rel, rx, tpl in _HYPOTHESES]
_RENDER = {
    "parent": _HYPOTHESES[0][2],
    "child": _HYPOTHESES[0][2],
    "non-parent ancestor": _HYPOTHESES[1][2],
    "non-child descendant": _HYPOTHESES[2][2],
    "has_collider": _HYPOTHESES[3][2],
    "has_confounder": _HYPOTHESES[4][2],
}

_PREMISE_RE = re.compile(
    r"Suppose there is a closed system of (?P<n>\d+) variables?, (?P<vars>.+?)\. "
    r"All the statistical relations among these \d+ variables? are as follows:\s*(?P<body>.*)",
    re.DOTALL,
)
_LIST_SPLIT = re.compile(r",\s*|\s+and\s+")
_CORR = re.compile(r"(\w+) correlates with (\w+)")
_INDEP = re.compile(r"(\w+) is independent of (\w+)")
_COND = re.compile(
    r"(\w+) and (\w+) are independent given (.+)|(\w+) is independent of (\w+) given (.+)"
)


def list2text(items: list[str] | tuple[str, ...]) -> str:
    """``[A, B, C] -> "A, B and C"``, the generator's list phrasing."""
    items = list(items)
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 2 else items)


def _names(text: str) -> list[str]:
    return [v.strip() for v in _LIST_SPLIT.split(text.strip()) if v.strip()]


def parse_premise(text: str) -> Premise:
    m = _PREMISE_RE.search(" ".join(text.split()))
    if not m:
        raise ParseError(f"not a Corr2Cause premise: {text[:80]!r}")
    variables = tuple(_names(m["vars"]))
    if len(variables) != int(m["n"]) or len(set(variables)) != len(variables):
        raise ParseError(f"premise announces {m['n']} variables but lists {m['vars']!r}")
    known = set(variables)
    corrs: set[frozenset[str]] = set()
    indeps: set[tuple[frozenset[str], frozenset[str]]] = set()
    body = re.sub(r"\bHowever,\s*", "", m["body"]).strip()
    for sentence in re.split(r"(?<=\.)\s+", body):
        s = sentence.strip().rstrip(".")
        if not s:
            continue
        if c := _COND.fullmatch(s):
            x, y, given = (c[1], c[2], c[3]) if c[1] else (c[4], c[5], c[6])
            z = frozenset(_names(given))
            pair = frozenset((x, y))
            if not z or z & pair or not z <= known:
                raise ParseError(f"bad conditioning set in {sentence!r}")
            indeps.add((pair, z))
        elif c := _INDEP.fullmatch(s):
            x, y = c.groups()
            indeps.add((frozenset((x, y)), frozenset()))
        elif c := _CORR.fullmatch(s):
            x, y = c.groups()
            corrs.add(frozenset((x, y)))
        else:
            raise ParseError(f"unknown premise sentence {sentence!r}")
        if x == y or not {x, y} <= known:
            raise ParseError(f"{sentence!r} names a variable not among {list2text(variables)}")
    return Premise(variables, frozenset(corrs), frozenset(indeps))


def parse_hypothesis(text: str, variables: tuple[str, ...]) -> Hypothesis:
    s = " ".join(text.split()).strip()
    for relation, rx, _ in _HYP_RE:
        if m := rx.fullmatch(s):
            x, y = m["x"], m["y"]
            if x == y or x not in variables or y not in variables:
                raise ParseError(
                    f"hypothesis {s!r} names a variable not among {list2text(variables)}"
                )
            first = variables.index(x) < variables.index(y)
            if relation == "parent":
                kind = "parent" if first else "child"
            elif relation == "mediated" and "causes something else" in s.lower():
                kind = "non-parent ancestor"
            elif relation == "mediated" and "is a cause for" in s.lower():
                kind = "non-child descendant"
            elif relation == "mediated":  # paraphrase "influences ... through some mediator(s)"
                kind = "non-parent ancestor" if first else "non-child descendant"
            else:
                kind = f"has_{relation}"
            return Hypothesis(kind, relation, x, y)
    raise ParseError(f"unknown hypothesis {s!r}")


def parse_input(text: str) -> tuple[Premise, Hypothesis]:
    """Parse a Corr2Cause ``input`` field: ``"Premise: ...\\nHypothesis: ..."``."""
    head, sep, hyp = text.rpartition("Hypothesis:")
    if not sep:
        raise ParseError(f"no 'Hypothesis:' in {text[:80]!r}")
    premise = parse_premise(head.strip().removeprefix("Premise:"))
    return premise, parse_hypothesis(hyp, premise.variables)


def render_premise(
    variables: tuple[str, ...],
    correlations: list[tuple[str, str]],
    independences: list[tuple[str, str, tuple[str, ...]]],
) -> str:
    """The original wording; statements are rendered in the order given."""
    n = len(variables)
    text = (
        f"Suppose there is a closed system of {n} variables, {list2text(variables)}. "
        f"All the statistical relations among these {n} variables are as follows: "
    )
    corr = " ".join(f"{x} correlates with {y}." for x, y in correlations)
    ind = " ".join(
        f"{x} and {y} are independent given {list2text(z)}." if z else f"{x} is independent of {y}."
        for x, y, z in independences
    )
    if corr and ind:
        return text + corr + " However, " + ind
    return text + (corr or ind)


def format_premise(premise: Premise) -> str:
    """Render a parsed premise in the original statement order (pairs, then given-sets, by index)."""
    ix = {v: i for i, v in enumerate(premise.variables)}

    def ordered(pair: frozenset[str]) -> tuple[str, str]:
        x, y = sorted(pair, key=ix.__getitem__)
        return x, y

    corrs = sorted((ordered(p) for p in premise.correlations), key=lambda p: (ix[p[0]], ix[p[1]]))
    indeps = sorted(
        (*ordered(pair), tuple(sorted(z, key=ix.__getitem__))) for pair, z in premise.independences
    )
    indeps.sort(key=lambda t: (ix[t[0]], ix[t[1]], [ix[v] for v in t[2]]))
    return render_premise(premise.variables, corrs, indeps)


def render_hypothesis(kind: str, x: str, y: str) -> str:
    """``x``/``y`` in the sentence's order (e.g. child "B directly causes A": x=B, y=A)."""
    return _RENDER[kind].format(x=x, y=y)


def render_input(premise: str, hypothesis: str) -> str:
    return f"Premise: {premise}\nHypothesis: {hypothesis}"
