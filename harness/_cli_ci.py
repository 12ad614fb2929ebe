"""``bench ci check|update`` and ``bench rescore`` (registered on the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness._cli_common import DEFAULT_RESULTS, ResultsOpt, app, console
from harness.errors import BenchError

ci_app = typer.Typer(
    no_args_is_help=True, help="Regression checks of small models against ci/baselines/."
)
app.add_typer(ci_app, name="ci")

GridOpt = Annotated[str, typer.Option("--grid", help="The regression grid.")]
BaselinesOpt = Annotated[
    Path | None, typer.Option("--baselines", help="Baseline folder (default: ci/baselines).")
]
CiResultsOpt = Annotated[
    Path, typer.Option("--results", help="Where the fresh run writes its records.")
]
NoRunOpt = Annotated[
    bool, typer.Option("--no-run", help="Compare the records already in --results; run nothing.")
]


def _records(grid: str, results: Path, no_run: bool):
    from harness.regression import eval_records, run_grid_fresh

    if no_run:
        if not (results / "records").is_dir():
            raise BenchError(
                f"--results {results}: no records/ there; drop --no-run to run the grid"
            )
        return eval_records(results)
    from harness._live import LiveView

    return run_grid_fresh(grid, results, view=lambda cells: LiveView(cells, results, console))


def _failures(results: Path) -> dict[str, str]:
    """cell -> the first line of its newest eval failure under ``results/failures/`` and the file."""
    from leaderboards.sidecar import read_failure

    newest: dict[str, tuple[str, str]] = {}
    for path in (Path(results) / "failures").glob("eval-*.json"):
        try:
            failure = read_failure(path)
            cell, at, first = failure.cell, str(failure.at or ""), failure.first_line
        except (OSError, ValueError) as e:  # a failure all the same: named by its file
            cell, at, first = path.stem, "", f"unreadable failure file ({str(e).splitlines()[0]})"
        if cell not in newest or at > newest[cell][0]:
            newest[cell] = (at, f"{first} ({path})")
    return {cell: why for cell, (_, why) in newest.items()}


@ci_app.command("check")
def ci_check(
    grid: GridOpt = "regression",
    baselines: BaselinesOpt = None,
    results: CiResultsOpt = Path("results/ci"),
    no_run: NoRunOpt = False,
    alpha: Annotated[float, typer.Option("--alpha", help="McNemar level of a regression.")] = 0.01,
) -> None:
    """Run the regression grid afresh and compare its per-sample outcomes with the baselines; exit 1 on a regression."""
    from harness.regression import BASELINES_DIR, POOLED, check_records, load_baselines

    if not 0 < alpha < 1:  # nan fails this too: a level outside (0, 1) passes every regression
        raise BenchError(f"--alpha {alpha}: must be in (0, 1), e.g. 0.01")
    directory = baselines or BASELINES_DIR
    base = load_baselines(directory)
    if not base:
        raise BenchError(
            f"--baselines {directory}: no baseline files; write them with `bench ci update`"
        )
    report = check_records(_records(grid, results, no_run), results, base, alpha)
    table = Table(
        title=f"bench ci check: {len(report.checks)} cell x task checks (exact McNemar, alpha {alpha:g})"
    )
    for col in (
        "cell",
        "task",
        "n",
        "baseline",
        "now",
        "Δ",
        "lost",
        "won",
        "p",
        "answers moved",
        "status",
    ):
        table.add_column(col, overflow="fold")
    for c in report.checks:
        style = {
            "regression": "red",
            "missing docs": "red",
            "changed inputs": "yellow",
            "flips": "yellow",
        }.get(c.status)
        status = f"[{style}]{c.status}[/]" if style else c.status
        table.add_row(
            c.cell,
            c.task,
            str(c.n),
            f"{c.old_mean:.3f}",
            f"{c.new_mean:.3f}",
            f"{c.delta:+.3f}",
            str(c.losses),
            str(c.gains),
            f"{c.p_value:.3g}",
            "" if c.task == POOLED else str(c.answers_moved),
            status,
        )
    # a CI log is no terminal: rich would fold the table into 80 columns, one word per line
    wide = (
        console if console.is_terminal else Console(width=160, file=console.file, highlight=False)
    )
    wide.print(table)
    for c in report.checks:
        for change in c.changed:
            console.print(
                f"changed input {c.cell} {c.task}: {escape(change)} (not a regression; "
                "`bench ci update` takes the new outcomes)",
                highlight=False,
            )
        for f in c.flips:
            console.print(
                f"flip {c.cell} {c.task} doc {f.doc_id}: {'right' if f.old_correct else 'wrong'} -> "
                f"{'right' if f.new_correct else 'wrong'} (answer {escape(repr(f.old_answer))} -> "
                f"{escape(repr(f.new_answer))})",
                highlight=False,
            )
    errors = _failures(results) if report.missing_cells else {}
    for cell in report.missing_cells:
        why = f"it failed: {errors[cell]}" if cell in errors else "no record and no failure file"
        console.print(
            f"[red]missing[/] {cell}: a baseline without a fresh record; {escape(why)}",
            highlight=False,
            soft_wrap=True,
        )
    for cell in report.new_cells:
        console.print(escape(f"new cell {cell}: no baseline yet (`bench ci update`)"))
    bad = report.regressions
    console.print(
        f"{len(bad)} regressions, {len(report.missing_cells)} missing cells, "
        f"{sum(len(c.flips) for c in report.checks)} flipped docs"
    )
    if report.failed:
        raise typer.Exit(1)


@ci_app.command("update")
def ci_update(
    grid: GridOpt = "regression",
    baselines: BaselinesOpt = None,
    results: CiResultsOpt = Path("results/ci"),
    no_run: NoRunOpt = False,
) -> None:
    """Run the regression grid and rewrite the baselines from it, saying what changed."""
    from harness.regression import BASELINES_DIR, write_baselines

    records = _records(grid, results, no_run)
    if not records:
        raise BenchError(
            f"--results {results}: the grid wrote no eval records; see results/failures/"
        )
    for line in write_baselines(records, results, baselines or BASELINES_DIR):
        console.print(escape(line), highlight=False)


@app.command("rescore")
def rescore(
    results: ResultsOpt = DEFAULT_RESULTS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be re-scored.")
    ] = False,
) -> None:
    """Re-score stored completions with the current verifiers (no model): new records, the old ones stay."""
    from harness.rescore import rescore_results

    if not (Path(results) / "records").is_dir():
        raise BenchError(f"--results {results}: no records/ there; run a grid first")
    done = rescore_results(results, dry_run=dry_run)
    for r in done:
        console.print(
            f"{r.cell} [{r.old_key}] -> [{r.new_key}]: {r.rows} rows re-scored in {', '.join(r.tasks)}; "
            f"{r.flips} flipped",
            highlight=False,
        )
    console.print(
        f"{'would re-score' if dry_run else 're-scored'} {len(done)} records, "
        f"{sum(r.rows for r in done)} rows"
    )


def leaderboard_extras(results: Path, publish: Path | None, diff_scorer: bool) -> None:
    """``bench leaderboard --publish DIR`` and ``--diff-scorer`` (the command lives in _cli_run)."""
    if not (Path(results) / "records").is_dir():
        raise BenchError(f"--results {results}: no records/ there; run a grid first")
    if publish is not None:
        from leaderboards.publish import publish as publish_site

        if publish.exists() and not publish.is_dir():
            raise BenchError(f"--publish {publish}: is a file; name a folder")
        written = publish_site(results, publish)
        console.print(
            escape(f"wrote {len(written)} files to {publish} (open {publish / 'index.html'})")
        )
    if diff_scorer:
        from leaderboards.scorer_diff import scorer_diff

        diff = scorer_diff(results)
        if not diff.pairs:
            console.print(
                "no re-scored records (run `bench rescore` after a verifier version changes)"
            )
        else:
            console.print(escape(str(diff)), highlight=False)
