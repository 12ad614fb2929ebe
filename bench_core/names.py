"""Names that become file names or markup: checked where the value is read, not where it is used.

A task name becomes ``views/<task>.md`` and ``samples/<key>/<task>.parquet``, a cell key a
record's file name, a grid name a job folder: none may hold a path part. Free text that is
shown (model ids, stage labels) keeps its characters but loses control characters, which a
terminal or a Markdown renderer would act on.
"""

from __future__ import annotations

import os
import re

from bench_core.errors import BenchError

__all__ = [
    "CELL_KEY",
    "TASK_NAME",
    "check_cell_key",
    "check_relative",
    "check_task_name",
    "strip_control",
]

# lm-eval task names: letters, digits, '_', '-', '.', '+' (``mmlu_pro``, ``arc_challenge``,
# ``leaderboard_math_algebra_hard``); never '/', '..' or a leading '.'
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
# bench's keys are hex digests; a test's or a tool's own key may add lowercase letters and '-'
CELL_KEY = re.compile(r"[0-9a-z][0-9a-z-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_task_name(name: str) -> str:
    if not isinstance(name, str) or not TASK_NAME.fullmatch(name) or ".." in name:
        raise BenchError(
            f"task name {name!r} is not letters, digits, '_', '-', '.' or '+' "
            "(at most 128, no '/' or '..')"
        )
    return name


def check_cell_key(key: str) -> str:
    if not isinstance(key, str) or not CELL_KEY.fullmatch(key):
        raise BenchError(f"cell key {key!r} is not a lowercase hex digest (no '/', '.' or markup)")
    return key


def check_relative(path: str, what: str = "path") -> str:
    """A path relative to a results folder that stays inside it (no absolute path, no '..')."""
    norm = os.path.normpath(path) if isinstance(path, str) and path else ""
    if (
        not norm
        or "\x00" in path
        or os.path.isabs(path)
        or norm == ".."
        or norm.startswith("../")
        or norm == "."
    ):
        raise BenchError(f"{what} {path!r} must be a path inside the results folder")
    return path


def strip_control(text: str) -> str:
    """``text`` without control or bidi-override characters (a newline would break a table row)."""
    return _CONTROL.sub("", text) if isinstance(text, str) else text
