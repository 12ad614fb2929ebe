"""The math verifier: extracted answer vs gold, equivalence decided by math-verify.

Bounded time per item. math-verify's own timeouts use ``signal.alarm``, which only
works in the main thread (elsewhere ``parse``/``verify`` raise ``ValueError``). So:

- main thread: math-verify's signal timeouts (``TIMEOUT_S`` per parse/comparison),
  which really interrupt a runaway sympy computation;
- any other thread (a threaded reward server, a thread pool): math-verify runs with
  its timeouts off inside a daemon worker thread that we wait on for at most
  ``TIMEOUT_S``; on timeout the item scores 0 and the orphaned worker is left to
  finish on its own (Python cannot kill a thread).

Identical normalised strings (the common case, e.g. every GSM8K reference) are settled
without math-verify; everything else — "0.5" vs "1/2", "18.00" vs "18" — is its call.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tasks.math.extract import extract_answer, reference_answer
from tasks.scoring import Score, as_reward

__all__ = ["VERSION", "verify", "equivalent", "reward", "TIMEOUT_S"]

# Bump when a completion could score differently: part of every eval and GRPO cell's key.
VERSION = "1"

TIMEOUT_S = 2  # seconds, an int: signal.alarm has whole-second resolution


class _DropTimeoutDisabledWarning(logging.Filter):
    """We disable math-verify's timeouts off the main thread on purpose and bound time ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


_warm = threading.Lock()
_warmed = False


def _warm_up() -> None:
    """Import sympy and the LaTeX grammar once, untimed: the per-item timeout should bound a
    comparison, not a cold import (seconds on a loaded machine)."""
    global _warmed
    with _warm:
        if not _warmed:
            from math_verify import parse
            from math_verify import verify as mv_verify

            mv_verify(
                parse("\\boxed{1+x^2}", parsing_timeout=None),
                parse("\\boxed{x^2+1}", parsing_timeout=None),
                timeout_seconds=None,
            )
            _warmed = True


def _math_verify(pred: str, gold: str, timeout: int | None) -> bool:
    from math_verify import parse
    from math_verify import verify as mv_verify

    _warm_up()
    # Wrapping in \boxed makes math-verify read both sides as LaTeX answers first.
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(mv_verify(gold_parsed, pred_parsed, timeout_seconds=timeout))


def _in_worker(pred: str, gold: str, timeout: float) -> bool | None:
    result: list[bool] = []

    def work() -> None:
        try:
            result.append(_math_verify(pred, gold, None))
        except Exception:  # a sympy failure is a mismatch, not a crash
            result.append(False)

    worker = threading.Thread(target=work, name="math-verify", daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else None


def equivalent(pred: str, gold: str, timeout: int | None = None) -> bool | None:
    """Whether two answer strings are mathematically equal; ``None`` on timeout.

    ``timeout`` (whole seconds) defaults to ``TIMEOUT_S``.
    """
    timeout = TIMEOUT_S if timeout is None else timeout
    if pred == gold:  # already normalised by extraction: equal text is equal value
        return True
    if threading.current_thread() is threading.main_thread():
        try:
            return _math_verify(pred, gold, timeout)
        except Exception:
            return False
    return _in_worker(pred, gold, timeout)


def verify(completion: str, reference: Any) -> Score:
    """Score a completion against a gold answer (bare, ``#### N`` solution, or ``\\boxed``)."""
    gold = reference_answer(reference)
    if gold is None:
        return Score(0.0, None, f"reference {reference!r} holds no answer")
    pred = extract_answer(completion)
    if pred is None:
        return Score(0.0, None, "no answer found in the completion")
    same = equivalent(pred, gold)
    if same is None:
        return Score(0.0, pred, f"timed out comparing {pred!r} with {gold!r}")
    if same:
        return Score(1.0, pred, f"{pred!r} equals {gold!r}")
    return Score(0.0, pred, f"{pred!r} differs from {gold!r}")


reward = as_reward(verify)
