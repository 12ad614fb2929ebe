"""Verifier and metrics of causal_nli: read a valid/invalid verdict out of real model output.

Answer extraction, in order of trust, on the text after any ``<think>...</think>``:
1. an explicit marker: ``Answer: X``, ``final answer is X``, ``\\boxed{X}`` (the last one);
2. a leading verdict: the reply opens with ``Yes,``/``No.``/``Valid``/``Invalid``/...;
3. the last verdict word (valid/invalid, entailed/not entailed, with negations);
4. a reply that is nothing but yes/no/true/false.
Anything else (``I cannot tell``) is unparseable and scores 0 with a reason.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from tasks.scoring import Score

__all__ = ["VERSION", "verify", "parse_answer", "normalize_label", "f1_valid", "breakdown"]

# Bump when a completion could score differently: part of every eval and GRPO cell's key.
VERSION = "1"

_WORDS = {
    "valid": "valid",
    "yes": "valid",
    "true": "valid",
    "correct": "valid",
    "entailed": "valid",
    "entailment": "valid",
    "invalid": "invalid",
    "no": "invalid",
    "false": "invalid",
    "incorrect": "invalid",
    "not valid": "invalid",
    "not entailed": "invalid",
    "contradiction": "invalid",
    "neutral": "invalid",
    "not invalid": "valid",
}
_VERDICT = r"(not\s+valid|not\s+invalid|not\s+entailed|invalid|valid|yes|no|true|false|incorrect|correct|entailed)"
_MARKER = re.compile(
    rf"\b(?:final\s+answer|answer|verdict|conclusion)(?:\s*(?:is|:|：|=|-))+\s*[*_`\"'(\[]*\s*{_VERDICT}\b",
    re.IGNORECASE,
)
_BOXED = re.compile(rf"\\boxed\{{\s*(?:\\text\{{)?\s*{_VERDICT}\b", re.IGNORECASE)
_LEADING = re.compile(rf"^[\s*_#>\"'`(\[]*{_VERDICT}\b\s*(?:[,.!:;)\]*]|$|-)", re.IGNORECASE)
_STRONG = re.compile(
    r"(?:\bnot|n't)\s+(?:(?:necessarily|always|logically|a|an)\s+)*(valid|invalid|entailed)\b"
    r"|\b(invalid|valid|entailed|entailment|contradiction)\b",
    re.IGNORECASE,
)
_BARE = re.compile(rf"^\W*{_VERDICT}\W*$", re.IGNORECASE)
# "valid or invalid", "yes/no": the options echoed back, not a verdict
_OPTIONS = re.compile(
    r"\b(?:valid|invalid|yes|no|true|false)\s*(?:,|or|/|and)\s*(?:valid|invalid|yes|no|true|false)\b",
    re.IGNORECASE,
)


def _strip_thinking(text: str) -> str:
    """Drop reasoning: everything up to the last ``</think>``; an unclosed ``<think>`` is all reasoning."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return text.split("<think>", 1)[0]
    return text


def _canon(word: str) -> str:
    return _WORDS[" ".join(word.lower().split())]


def parse_answer(completion: str) -> str | None:
    """``"valid"``, ``"invalid"`` or ``None`` when the output commits to neither."""
    text = _OPTIONS.sub(" ", _strip_thinking(completion)).strip()
    if not text:
        return None
    marked = sorted(
        (m for rx in (_MARKER, _BOXED) for m in rx.finditer(text)), key=lambda m: m.start()
    )
    if marked:
        return _canon(marked[-1].group(1))
    if m := _LEADING.match(text):
        return _canon(m.group(1))
    strong = list(_STRONG.finditer(text))
    if strong:
        m = strong[-1]
        if m.group(1):  # negated: "is not valid", "isn't entailed"
            return "valid" if m.group(1).lower() == "invalid" else "invalid"
        return _canon(m.group(2))
    if m := _BARE.match(text):
        return _canon(m.group(1))
    return None


def normalize_label(reference: Any) -> str:
    """Gold label as ``"valid"``/``"invalid"``: accepts those, bools, 0/1 (int or str), yes/no."""
    if isinstance(reference, bool):
        return "valid" if reference else "invalid"
    if isinstance(reference, int | float) and reference in (0, 1):
        return "valid" if reference == 1 else "invalid"
    key = str(reference).strip().lower()
    if key in ("1", "1.0"):
        return "valid"
    if key in ("0", "0.0"):
        return "invalid"
    if key in _WORDS:
        return _WORDS[key]
    raise ValueError(
        f"causal_nli reference {reference!r} is not a label; use valid/invalid, 1/0 or true/false"
    )


def verify(completion: str, reference: Any) -> Score:
    gold = normalize_label(reference)
    answer = parse_answer(completion)
    if answer is None:
        return Score(0.0, None, "no valid/invalid verdict found in the output")
    ok = answer == gold
    return Score(1.0 if ok else 0.0, answer, f"answered {answer}, gold {gold}")


def f1_valid(items: Iterable[tuple[int, int]]) -> float:
    """F1 of the valid class (the paper's headline) over ``(gold, pred)`` pairs; pred -1 = unparsed."""
    tp = fp = fn = 0
    for gold, pred in items:
        tp += gold == 1 and pred == 1
        fp += gold != 1 and pred == 1
        fn += gold == 1 and pred != 1
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _flat(row: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """(kind, num_variables, gold, pred) of a flat row, an lm-eval sample or a harness row."""
    doc = row.get("doc") or row.get("meta") or row
    if isinstance(doc, str):  # harness Parquet rows keep doc fields as a JSON object
        doc = json.loads(doc)
    if "gold" in row and "pred" in row:
        gold, pred = int(row["gold"]), int(row["pred"])
    elif "f1" in row:  # lm-eval logged sample: the (gold, pred) pair of process_results
        gold, pred = (int(v) for v in row["f1"])
    else:  # harness row: target and the parsed answer
        gold = int(normalize_label(row.get("target") or doc["label"]) == "valid")
        pred = {"valid": 1, "invalid": 0}.get(row.get("answer") or "", -1)
    return str(doc.get("kind") or doc.get("template")), int(doc["num_variables"]), gold, pred


def breakdown(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy, valid-class F1 and n overall, per hypothesis kind and per number of variables.

    A row is ``{"kind", "num_variables", "gold": 0/1, "pred": 1/0/-1}``, an lm-eval logged
    sample (``doc`` with ``kind``/``num_variables`` and the ``f1`` pair of process_results),
    or a harness per-sample row (``meta`` JSON with those fields, ``target``, ``answer``).
    """
    groups: dict[tuple[str, Any], list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        kind, n, gold, pred = _flat(row)
        for key in (("all", "all"), ("kind", kind), ("num_variables", n)):
            groups[key].append((gold, pred))

    def stats(pairs: list[tuple[int, int]]) -> dict[str, float]:
        return {
            "n": len(pairs),
            "acc": sum(g == p for g, p in pairs) / len(pairs),
            "f1": f1_valid(pairs),
        }

    out: dict[str, Any] = {
        "all": stats(groups.pop(("all", "all"), [])) if groups else {"n": 0, "acc": 0.0, "f1": 0.0}
    }
    out.update(kind={}, num_variables={})
    for (axis, value), pairs in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        out.setdefault(axis, {})[value] = stats(pairs)
    return out
