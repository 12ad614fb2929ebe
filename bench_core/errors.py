"""User-facing errors: one line naming the file, the field and the fix; exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["BenchError", "RecordWarning", "closest", "pydantic_reason"]


class BenchError(ValueError):
    """A mistake in the user's input. The CLI prints ``error: <message>`` and exits 2.

    Every package raises it for input mistakes (a config field, a file or folder the user
    named, a CLI value), so no caller translates; a ``ValueError`` is left for bugs and for
    checks that run inside a cell, whose failure is recorded. It is a ``ValueError``, so
    callers that catch those keep working.
    """

    exit_code = 2


class RecordWarning(UserWarning):
    """A results file that could not be read (corrupt or hostile): skipped. The CLI prints
    ``warning: <message>`` on one line."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'did you mean a, b?' hint for an unknown name (empty string when nothing is close)."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.4)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""


def pydantic_reason(err: dict) -> str:
    """One entry of ``ValidationError.errors()`` as the range it broke ("must be at least 1"),
    not pydantic's "Input should be greater than or equal to 1" or "1 validation error for X"."""
    ctx = err.get("ctx") or {}
    reason = {
        "greater_than_equal": lambda: f"must be at least {ctx.get('ge')}",
        "greater_than": lambda: f"must be greater than {ctx.get('gt')}",
        "less_than_equal": lambda: f"must be at most {ctx.get('le')}",
        "less_than": lambda: f"must be less than {ctx.get('lt')}",
        "literal_error": lambda: f"must be {ctx.get('expected', '').replace(chr(39), '')}",
        "int_parsing": lambda: "must be an integer",
        "int_from_float": lambda: "must be an integer",
        "float_parsing": lambda: "must be a number",
        "finite_number": lambda: "must be a finite number",
        "bool_parsing": lambda: "must be true or false",
        "missing": lambda: "is required",
        "extra_forbidden": lambda: "is not a known field",
    }.get(err.get("type", ""))
    return reason() if reason else str(err.get("msg", "invalid")).removeprefix("Value error, ")
