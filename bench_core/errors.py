"""User-facing errors: one line naming the file, the field and the fix; exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["BenchError", "closest"]


class BenchError(Exception):
    """A mistake in the user's input. The CLI prints ``error: <message>`` and exits 2."""

    exit_code = 2


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b?' hint for an unknown name (empty string when nothing is close)."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.4)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
