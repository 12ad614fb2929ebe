"""Library entry points behind ``bench leaderboard`` and ``bench compare`` (the CLI stays thin)."""

from __future__ import annotations

from pathlib import Path

from leaderboards.comparison import Comparison, compare
from leaderboards.rendering import render
from leaderboards.store import ingest, writable_store

__all__ = ["leaderboard", "compare_cells"]


def leaderboard(
    results_dir: str | Path = "results",
    fmt: str = "terminal",
    out: str | Path | None = None,
    *,
    models: list[str] | None = None,
    methods: list[str] | None = None,
    tasks: list[str] | None = None,
    db_path: str | Path | None = None,
) -> str:
    """Ingest ``results_dir`` (idempotent), render the leaderboard, write it to ``out`` if given.

    Ingest problems (corrupt records, missing samples) are issued as ``IngestWarning``
    and do not stop the render.
    """
    with writable_store(results_dir, db_path) as db:  # a read-only results folder: a copy
        ingest(results_dir, db)
        return _render(db, fmt, out, models, methods, tasks)


def _render(db: Path, fmt: str, out, models, methods, tasks) -> str:
    if out is None:
        return render(db, fmt, models=models, methods=methods, tasks=tasks)
    from leaderboards.rendering import _board, _format, _html, curves_table_csv, to_csv
    from leaderboards.sample_page import SAMPLES_DIR, write_sample_pages
    from leaderboards.store import connect

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    formatter = _format(fmt)
    con = connect(db, read_only=True)
    try:
        board = _board(
            con, formatter, {"models": models, "methods": methods, "tasks": tasks, "alpha": 0.05}
        )
        text = formatter(board)
        out.write_text(text, encoding="utf-8")
        if formatter is _html:  # the board links each cell to its sample page
            write_sample_pages(con, board, out.parent / SAMPLES_DIR)
        elif formatter is to_csv:
            out.with_suffix(".curves.csv").write_text(curves_table_csv(board), encoding="utf-8")
    finally:
        con.close()
    return text


def compare_cells(
    results_dir: str | Path, cell_a: str, cell_b: str, task: str | None = None
) -> Comparison:
    """``bench compare``: read the results dir's files directly (no database write)."""
    return compare(results_dir, cell_a, cell_b, task)
