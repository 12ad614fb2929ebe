"""Render the leaderboard: terminal (rich), Markdown, LaTeX (booktabs), CSV, JSON, HTML.

Every format is a function ``Board -> str``; :func:`render` opens the store, builds the
board once and dispatches. CSV and JSON carry full-precision numbers (machine-readable);
the human formats show 4 decimals.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

from bench_core.errors import BenchError
from bench_core.names import strip_control
from leaderboards._cells import DASH, deltas, num
from leaderboards.board import Board, BoardCell, build_board

__all__ = ["FORMATS", "render", "to_rich"]

_DASH, _num, _deltas = DASH, num, deltas  # the names this module's renderers use


def _cell_text(cell: BoardCell | None, parent: str | None, pm: str = "±") -> str:
    if cell is None:
        return _DASH
    se = f" {pm} {_num(cell.stderr)}" if cell.stderr is not None else ""
    d = _deltas(cell, parent)
    return (
        f"{_num(cell.value)}{se}{cell.marks}"
        + (f" {d}" if d else "")
        + (f" {cell.tails}" if cell.tails else "")
    )


def to_rich(board: Board, stacked: bool = False, short: dict[str, str] | None = None):
    """A rich Table (the CLI prints it with colour; :func:`to_terminal` renders it to text).
    ``stacked`` puts a cell's deltas on a second line; ``short`` maps column labels to the
    abbreviations shown in the header (the legend spells them out)."""
    from rich.table import Table

    short = short or {}
    legend = [*(f"{a} = {label}" for label, a in short.items()), *board.legend]
    table = Table(title="Leaderboard", caption="\n".join(legend), caption_justify="left")
    table.add_column("model", style="bold")
    table.add_column("stage")
    for col in board.columns:
        table.add_column(short.get(col.label, col.label), justify="right")
    prev_model = None
    for row in board.rows:
        if prev_model is not None and row.model != prev_model:
            table.add_section()
        prev_model = row.model
        cells = []
        for col in board.columns:
            cell = row.cells.get(col.label)
            text = _cell_text(cell, row.parent) if cell else _DASH
            if stacked:
                text = text.replace(" (", "\n(", 1)
            if cell and cell.delta_base is not None and cell.delta_base != 0:
                better = (cell.delta_base > 0) == col.higher_is_better
                text = f"[{'green' if better else 'red'}]{text}[/]"
            cells.append(text)
        table.add_row(row.model, row.stage, *cells)
    return table


TERMINAL_WIDTH = 120  # the board fits a 120-column terminal
RICH_MAX_ROWS = 2000  # rich lays out ~3 ms per row; beyond this a plain aligned table


def to_terminal(board: Board) -> str:
    texts = [
        [r.model, r.stage, *(_cell_text(r.cells.get(c.label), r.parent) for c in board.columns)]
        for r in board.rows
    ]
    heads = ["model", "stage", *(c.label for c in board.columns)]
    widths = [max([len(h), *(len(t[i]) for t in texts)]) for i, h in enumerate(heads)]
    if len(board.rows) > RICH_MAX_ROWS:
        return _plain(heads, texts, widths, board)
    from rich.console import Console

    # Wide enough that rich never wraps a cell: the longest text per column plus borders; past
    # TERMINAL_WIDTH the deltas go to a second line, then long task names to abbreviations.
    stacked = sum(widths) + 3 * len(widths) + 1 > TERMINAL_WIDTH
    short = {}
    if stacked:
        widths = widths[:2] + [
            max([len(h), *(len(ln) for t in texts for ln in t[i].split(" (", 1))])
            for i, h in enumerate(heads)
            if i >= 2
        ]
        if sum(widths) + 3 * len(widths) + 1 > TERMINAL_WIDTH:
            short = {c.label: f"t{i + 1}" for i, c in enumerate(board.columns)}
    width = (
        max(80, min(TERMINAL_WIDTH, sum(widths) + 3 * len(widths) + 1))
        if stacked
        else max(80, sum(widths) + 3 * len(widths) + 1)
    )
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(to_rich(board, stacked=stacked, short=short))
    return console.file.getvalue() + _failure_text(board)


def _failure_text(board: Board) -> str:
    if not board.failures:
        return ""
    lines = [board.failure_head, *(f"  failed {strip_control(str(f))}" for f in board.failures)]
    return "\n" + "\n".join(lines) + "\n"


def _plain(heads, texts, widths, board: Board) -> str:
    def line(cells):
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(heads), "  ".join("-" * w for w in widths)]
    out += [line(t) for t in texts]
    return "\n".join([*out, "", *board.legend]) + "\n" + _failure_text(board)


def _md_escape(s: str) -> str:
    # Markdown renderers pass raw HTML through: a model named <script> must stay text
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]"})


def _md_text(s: str) -> str:
    """A name from a record as Markdown text: no link, image, code span or emphasis it could
    open, no control character (a newline would end the table row)."""
    return _md_escape(strip_control(str(s)).translate(_MD_SPECIAL))


def to_markdown(board: Board) -> str:
    head = ["model", "stage", *[c.label for c in board.columns]]
    lines = [
        "| "
        + " | ".join([_md_text(h) for h in head[:2]] + [_md_escape(h) for h in head[2:]])
        + " |",
        "|" + "|".join([":---", ":---"] + ["---:"] * len(board.columns)) + "|",
    ]
    for row in board.rows:
        cells = [_cell_text(row.cells.get(c.label), row.parent) for c in board.columns]
        lines.append(
            "| "
            + " | ".join([_md_text(row.model), _md_text(row.stage), *map(_md_escape, cells)])
            + " |"
        )
    lines.append("")
    lines.extend(f"- {x}" for x in board.legend)
    if board.failures:
        lines += ["", _md_escape(board.failure_head), ""]
        lines += [f"- failed {_md_text(str(f))}" for f in board.failures]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def _tex_cell(cell: BoardCell | None, parent: str | None) -> str:
    if cell is None:
        return "--"
    se = rf" $\pm$ {_num(cell.stderr)}" if cell.stderr is not None else ""
    marks = "".join(
        {"*": "*", "†": r"\dagger", "‡": r"\ddagger", "↻": r"\circlearrowleft"}[m]
        for m in cell.marks
    )
    sup = f"$^{{{marks}}}$" if marks else ""
    d = _deltas(cell, parent)
    tails = rf" {{\scriptsize {latex_escape(cell.tails)}}}" if cell.tails else ""
    return f"{_num(cell.value)}{se}{sup}" + (rf" {{\scriptsize {d}}}" if d else "") + tails


def to_latex(board: Board) -> str:
    ncol = 2 + len(board.columns)
    out = [
        r"% bench leaderboard; needs \usepackage{booktabs}",
        r"\begin{tabular}{ll" + "r" * len(board.columns) + "}",
        r"\toprule",
        " & ".join(["Model", "Stage", *[latex_escape(c.label) for c in board.columns]]) + r" \\",
        r"\midrule",
    ]
    prev_model = None
    for row in board.rows:
        if prev_model is not None and row.model != prev_model:
            out.append(r"\midrule")
        prev_model = row.model
        cells = [_tex_cell(row.cells.get(c.label), row.parent) for c in board.columns]
        out.append(" & ".join([latex_escape(row.model), latex_escape(row.stage), *cells]) + r" \\")
    out.append(r"\bottomrule")
    legend = "; ".join(
        latex_escape(x)
        .replace("±", r"$\pm$")
        .replace("†", r"$\dagger$")
        .replace("‡", r"$\ddagger$")
        .replace("↻", r"$\circlearrowleft$")
        .replace("Δ", r"$\Delta$")
        for x in board.legend
    )
    out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\scriptsize {legend}}} \\")
    for text in [board.failure_head, *map(str, board.failures)] if board.failures else []:
        out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\scriptsize {latex_escape(text)}}} \\")
    out.append(r"\end{tabular}")
    return "\n".join(out) + "\n"


_CSV_FIELDS = (
    "stderr",
    "n",
    "delta_base",
    "delta_parent",
    "p_base",
    "p_parent",
    "cell_key",
    "contamination",
)
_COST_FIELDS = ("train_hours", "device", "tokens_per_correct", "delta_per_hour")


def to_csv(board: Board) -> str:
    """Wide CSV: ``<task@v>`` holds the value, ``<task@v>:<field>`` the rest, then the row's
    cost; empty = missing. The training curves are a long table of their own
    (:func:`curves_table_csv`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["model", "stage", "depth", "parent"]
    for c in board.columns:
        header += [c.label, *(f"{c.label}:{f}" for f in _CSV_FIELDS)]
    w.writerow(header + list(_COST_FIELDS))
    for row in board.rows:
        line = [row.model, row.stage, row.depth, row.parent or ""]
        for c in board.columns:
            cell = row.cells.get(c.label)
            vals = [None] * (1 + len(_CSV_FIELDS))
            if cell:
                vals = [cell.value, *(getattr(cell, f) for f in _CSV_FIELDS)]
            line += ["" if v is None else repr(v) if isinstance(v, float) else v for v in vals]
        cost = [getattr(row.cost, f) for f in _COST_FIELDS]
        line += ["" if v is None else repr(v) if isinstance(v, float) else v for v in cost]
        w.writerow(line)
    return buf.getvalue()


def curves_table_csv(board: Board) -> str:
    """Every board lineage's training curves, one row per stage, step and metric (a train
    cell shared by two lineages once): ``bench leaderboard --format csv --out X.csv`` writes
    it beside the board as ``X.curves.csv``."""
    from leaderboards.curves import CSV_FIELDS, curves_csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", *CSV_FIELDS])
    seen = set()
    for model, curves in board.curves or []:
        fresh = [c for c in curves if c.cell_key not in seen]
        seen.update(c.cell_key for c in fresh)
        for line in csv.reader(curves_csv(fresh).splitlines()[1:]):
            w.writerow([model, *line])
    return buf.getvalue()


def _jnum(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def board_to_dict(board: Board) -> dict:
    return {
        "alpha": board.alpha,
        "legend": board.legend,
        "columns": [asdict(c) for c in board.columns],
        "rows": [
            {
                "model": r.model,
                "stage": r.stage,
                "depth": r.depth,
                "parent": r.parent,
                "cells": {
                    label: {k: _jnum(v) for k, v in vars(c).items() if k != "alpha"}
                    | {
                        "sig_base": c.sig_base,
                        "sig_parent": c.sig_parent,
                        "contaminated": c.contaminated,
                    }
                    for label, c in r.cells.items()
                },
                "cost": {k: _jnum(v) for k, v in r.cost.to_dict().items()},
            }
            for r in board.rows
        ],
        "curves": _curves_json(board.curves),
        "failures": [asdict(f) for f in board.failures],
    }


def _curves_json(lineages) -> dict:
    """Per train cell on the board: its stage, parent and logged steps (x: cumulative step)."""
    from leaderboards.curves import curves_dict

    out = {}
    for model, curves in lineages or []:
        for i, c in enumerate(curves_dict(curves)):
            out.setdefault(
                c["cell_key"],
                {"model": model, "parent": curves[i - 1].cell_key if i else None, **c},
            )
    return out


def to_json(board: Board) -> str:
    return json.dumps(board_to_dict(board), indent=2, ensure_ascii=False) + "\n"


def _html(board: Board) -> str:
    from leaderboards.html import to_html

    return to_html(board)


FORMATS = {
    "terminal": to_terminal,
    "md": to_markdown,
    "latex": to_latex,
    "csv": to_csv,
    "json": to_json,
    "html": _html,
}
_ALIASES = {"markdown": "md", "tex": "latex", "text": "terminal", "htm": "html"}


def _format(fmt: str):
    key = _ALIASES.get(fmt, fmt)
    if key not in FORMATS:
        raise BenchError(f"unknown leaderboard format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return FORMATS[key]


def render(
    db_path_or_conn, fmt: str, *, models=None, methods=None, tasks=None, alpha: float = 0.05
) -> str:
    """Render the store's leaderboard. Filters are glob patterns (see :func:`build_board`)."""
    formatter = _format(fmt)
    filters = {"models": models, "methods": methods, "tasks": tasks, "alpha": alpha}
    if not isinstance(db_path_or_conn, str | Path):
        return formatter(_board(db_path_or_conn, formatter, filters))
    from leaderboards.store import connect

    con = connect(db_path_or_conn, read_only=True)
    try:
        board = _board(con, formatter, filters)
    finally:
        con.close()
    return formatter(board)


def _board(con, formatter, filters) -> Board:
    board = build_board(con, **filters)
    if formatter is _html:  # only the HTML page shows bench analyze's panels and curve charts
        from leaderboards.analysis_store import board_panels
        from leaderboards.curves import board_curves

        board.analysis = board_panels(con, board)
        board.curves = board_curves(con, board)
    elif formatter in (to_json, to_csv):  # machine-readable: every lineage's curves
        from leaderboards.curves import board_curves

        board.curves = board_curves(con, board, limit=None)
    return board
