"""Reasoning-format scoring: ``<think>…</think>`` then an answer.

Metrics of one completion:

- ``format_ok``: the completion (leading/trailing whitespace aside) starts with
  ``<think>``, holds exactly one ``<think>`` and one ``</think>``, the reasoning between
  them is non-empty, and a non-empty answer follows ``</think>``. A chat template that
  opens ``<think>`` inside the prompt leaves no opening tag in the completion: that
  is not ``format_ok`` (the model did not write the block).
- ``think_tokens``: whitespace-separated tokens of the reasoning (tokenizer-free, so
  equal across models). The reasoning is the text inside the first block; for a
  malformed completion, after an unclosed ``<think>`` or before a stray ``</think>``.
- ``steps``: the number of "Step n"/"n." / "n)" lines of the reasoning if it has any;
  else its non-empty lines if there are several; else its sentences (split after
  ``.``, ``!``, ``?`` followed by whitespace).
- ``correct``: the underlying task's verifier (``math`` or ``causal_nli``) applied to
  the visible answer (the completion without its reasoning, see
  :func:`tasks.math.extract.strip_think`).

Composite in [0, 1]::

    composite = 0.5 * correct + 0.3 * format_ok + 0.2 * effort
    effort    = (min(1, think_tokens / 10) + min(1, steps / 2)) / 2   if format_ok else 0

so a correct, well-formed trace with at least 10 tokens over 2 steps scores 1.0, a
correct bare answer 0.5, and a well-formed but wrong trace at most 0.5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tasks.math.extract import strip_think
from tasks.scoring import Score

__all__ = [
    "VERSION",
    "ThinkScore",
    "score",
    "verify",
    "count_steps",
    "think_content",
    "format_ok",
    "composite",
    "USES",
    "W_CORRECT",
    "W_FORMAT",
    "W_EFFORT",
    "FULL_TOKENS",
    "FULL_STEPS",
]

# Bump when a completion could score differently: part of every eval and GRPO cell's key.
VERSION = "1"

W_CORRECT, W_FORMAT, W_EFFORT = 0.5, 0.3, 0.2
FULL_TOKENS, FULL_STEPS = 10, 2  # reasoning this long counts as full effort

# The task families (tasks.FAMILIES) whose verifiers decide ``correct``: their versions are
# part of every key think_quality scores.
USES = ("math", "causal_nli")

_OPEN, _CLOSE = "<think>", "</think>"
_STEP_LINE_RE = re.compile(r"^\s*(?:step\s*\d+\b|\d+[.)]\s)", re.I | re.M)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ThinkScore:
    format_ok: bool
    think_tokens: int
    steps: int
    correct: float
    composite: float
    answer: str | None = None
    reason: str = ""


def format_ok(completion: str) -> bool:
    text = completion.strip()
    if not text.startswith(_OPEN) or text.count(_OPEN) != 1 or text.count(_CLOSE) != 1:
        return False
    inner, _, after = text[len(_OPEN) :].partition(_CLOSE)
    return bool(inner.strip()) and bool(after.strip())


def think_content(completion: str) -> str:
    """The reasoning text of a completion, well-formed or not ("" when there is none)."""
    start = completion.find(_OPEN)
    if start >= 0:
        return completion[start + len(_OPEN) :].split(_CLOSE, 1)[0].strip()
    if _CLOSE in completion:
        return completion.split(_CLOSE, 1)[0].strip()
    return ""


def count_steps(reasoning: str) -> int:
    markers = len(_STEP_LINE_RE.findall(reasoning))
    if markers:
        return markers
    lines = [line for line in reasoning.splitlines() if line.strip()]
    if len(lines) > 1:
        return len(lines)
    return len([s for s in _SENTENCE_END_RE.split(reasoning.strip()) if s.strip()])


def composite(correct: float, well_formed: bool, think_tokens: int, steps: int) -> float:
    effort = 0.0
    if well_formed:
        effort = (min(1.0, think_tokens / FULL_TOKENS) + min(1.0, steps / FULL_STEPS)) / 2
    return W_CORRECT * correct + W_FORMAT * float(well_formed) + W_EFFORT * effort


def _verifier(task: str):
    from tasks import family

    if task not in USES:
        raise ValueError(f"think_quality: unknown task {task!r}; use one of {', '.join(USES)}")
    return family(task).verify


def score(completion: str, reference: Any, task: str = "math") -> ThinkScore:
    """All think-quality metrics of one completion; correctness by ``task``'s verifier."""
    task_score = _verifier(task)(strip_think(completion), reference)
    reasoning = think_content(completion)
    ok = format_ok(completion)
    tokens, steps = len(reasoning.split()), count_steps(reasoning)
    value = composite(task_score.value, ok, tokens, steps)
    reason = f"format_ok={ok} think_tokens={tokens} steps={steps} correct={task_score.value:g} ({task_score.reason})"
    return ThinkScore(ok, tokens, steps, task_score.value, value, task_score.answer, reason)


def verify(completion: str, reference: Any, task: str = "math") -> Score:
    """The verifier contract: value = the composite."""
    s = score(completion, reference, task)
    return Score(min(1.0, max(0.0, s.composite)), s.answer, s.reason)
