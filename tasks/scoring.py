"""The verifier contract shared by lm-eval metrics and RL rewards.

A verifier is a plain function ``verify(completion, reference) -> Score``. lm-eval's
``process_results`` hooks call it to score a sample; :func:`as_reward` wraps it into
trl's reward signature so that what GRPO optimizes is exactly what the leaderboard
measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Score", "Verifier", "CheckReport", "as_reward", "completion_text", "score_once"]


@dataclass(frozen=True)
class Score:
    """One verified sample: ``value`` in [0, 1], the parsed answer and why."""

    value: float
    answer: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"Score.value must be in [0, 1], got {self.value}")


Verifier = Callable[[str, Any], Score]


def completion_text(completion: Any) -> str:
    """trl passes plain strings or conversational lists of messages; return the text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def score_once(verify: Callable[..., Any], maxsize: int = 1 << 16) -> Callable[..., Any]:
    """``verify`` remembered per (completion, reference, ...): lm-eval's metric hook and the
    harness's per-sample rows ask about the same sample, and it is verified once for both."""
    import functools

    cache: dict[tuple, Any] = {}

    @functools.wraps(verify)
    def once(completion: str, reference: Any, *rest: Any) -> Any:
        key = (completion, repr(reference), rest)  # references may be unhashable (dicts, lists)
        if key not in cache:
            if len(cache) >= maxsize:
                cache.clear()
            cache[key] = verify(completion, reference, *rest)
        return cache[key]

    return once


def as_reward(verify: Verifier, reference_column: str = "reference") -> Callable[..., list[float]]:
    """Wrap a verifier as a trl reward function ``(completions, **columns) -> list[float]``."""

    def reward(completions: Sequence[Any], **columns: Any) -> list[float]:
        references = columns[reference_column]
        return [
            verify(completion_text(c), r).value
            for c, r in zip(completions, references, strict=True)
        ]

    reward.__name__ = f"{getattr(verify, '__module__', 'task').rsplit('.', 1)[-1]}_reward"
    return reward


@dataclass
class CheckReport:
    """``bench tasks check``: a task's verifier or oracle against a file's gold labels."""

    task: str
    source: str
    n: int = 0
    agree: int = 0
    failures: int = 0  # rows that could not be parsed: counted, never a crash mid-run
    disagreements: list[dict[str, Any]] | None = None

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else 0.0

    def last_line(self) -> str:
        return f"agreement={self.agreement:.4f} n={self.n}"
