"""Leaderboards: a DuckDB store over run records, statistics and renderers.

Reads records and per-sample files only; never runs models. Submodules import lazily so
that ``import leaderboards.record`` (used by every cell) stays cheap. No submodule shares a
name with a function exported here (hence ``rendering``/``comparison``): importing a
submodule sets the package attribute of the same name, which would shadow the function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "ingest",
    "render",
    "compare",
    "leaderboard",
    "compare_cells",
    "write_samples",
    "read_samples",
    "IngestReport",
    "Comparison",
]

_WHERE = {
    "ingest": "store",
    "IngestReport": "store",
    "render": "rendering",
    "compare": "comparison",
    "Comparison": "comparison",
    "leaderboard": "api",
    "compare_cells": "api",
    "write_samples": "samples",
    "read_samples": "samples",
}

if TYPE_CHECKING:
    from leaderboards.api import compare_cells, leaderboard
    from leaderboards.comparison import Comparison, compare
    from leaderboards.rendering import render
    from leaderboards.samples import read_samples, write_samples
    from leaderboards.store import IngestReport, ingest


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"leaderboards.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'leaderboards' has no attribute '{name}'")
