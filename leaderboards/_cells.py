"""How a board cell's numbers read, shared by every renderer (text, Markdown, LaTeX, HTML).

A module of its own so that the HTML renderer and ``rendering`` (which dispatches to it)
both import it instead of each other.
"""

from __future__ import annotations

import math

from leaderboards.board import BoardCell

DASH = "—"


def num(x: float | None, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def deltas(cell: BoardCell, parent: str | None) -> str:
    """ "(Δ base)" for a first stage, "(Δ base / Δ parent)" below it; empty for the base row."""
    if parent is None or cell.delta_base is None and cell.delta_parent is None:
        return ""
    if parent == "base" or cell.delta_parent is None:
        return f"({num(cell.delta_base, True)})"
    return f"({num(cell.delta_base, True)} / {num(cell.delta_parent, True)})"
