"""``bench train+eval``, ``bench train``, ``bench leaderboard``, ``bench compare`` (registered on the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness._cli_common import DEFAULT_RESULTS, ResultsOpt, app, console
from harness.backends import names as backend_names
from harness.executors import EXECUTORS

GridOpt = Annotated[
    str, typer.Option("--grid", help="Grid name (bench grid list) or a grid YAML path.")
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help=f"Where cells run: {' or '.join(EXECUTORS)}.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print what would run and why; run nothing.")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Recompute cells that already have a record.")
]
OnlyOpt = Annotated[
    str | None, typer.Option("--only", help="Glob(s) over model/stage, key, kind or stage.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help=f"Override the grid's eval backend: {backend_names()}."),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Override the grid's docs per task.")]
ContainerOpt = Annotated[
    str | None,
    typer.Option("--container", help="SLURM: run each cell under apptainer exec --nv IMAGE."),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="Local: run eval cells in N processes (default 1).")
]
PartitionOpt = Annotated[str | None, typer.Option("--partition", help="SLURM partition.")]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Stream third-party output (lm-eval, trl, "
        "transformers) too; it always goes to results/logs/KIND-KEY.log.",
    ),
]


def _print_plan(plan) -> None:
    table = Table(title=f"grid {plan.grid.name}: {len(plan.todo)} to run, {len(plan.skipped)} done")
    for col in ("kind", "key", "model", "stage", "why"):
        table.add_column(col)
    for cell in plan.todo:
        table.add_row(
            cell.kind, cell.key, cell.model, cell.stage, escape(plan.status[cell.key].why)
        )
    console.print(table)


def _failure_tail(results: Path, cell) -> str:
    """The last traceback lines of a failed cell's record: a bug is shown, not hidden."""
    from harness.status import failure_path
    from leaderboards.sidecar import read_failure

    try:
        tb = read_failure(failure_path(results, cell.kind, cell.key)).traceback or ""
    except (OSError, ValueError):
        return ""
    return "\n".join(tb.strip().splitlines()[-6:])


def _run(spec, *, dry_run: bool, render_after: bool, verbose: bool = False) -> None:
    """Plan ``spec`` (a harness.api.RunSpec), then run it under the live view and report."""
    from harness._live import LiveView
    from harness.api import load_plan, run_plan

    results = spec.results
    plan = load_plan(spec)
    if dry_run:
        _print_plan(plan)
        return
    with LiveView(plan.todo, results, console, verbose=verbose) as view:
        outcome = run_plan(plan, spec, progress=view)
    if view.rows:
        console.print(view.summary())
    cells = {c.key: c for c in plan.todo}
    count = {
        s: sum(o.status == s for o in outcome.values())
        for s in ("done", "failed", "blocked", "busy")
    }
    if render_after:  # first: the failures and the summary must be the last lines a user reads
        if count["done"] or plan.skipped:
            from harness.errors import BenchError

            try:
                leaderboard(
                    results=results, fmt="terminal", out=None, model=None, method=None, task=None
                )
            except BenchError as e:
                console.print(f"leaderboard: {escape(str(e))}")
        else:
            console.print("leaderboard: no finished cells yet")
    for key, o in outcome.items():
        if o.status == "failed":
            # the key goes through escape too: '[abc123]' is rich markup and would vanish
            where = escape(f"{cells[key].cell_id} [{key}]")
            console.print(f"[red]failed[/] {where}: {escape(o.detail)}")
            tail = _failure_tail(results, cells[key])
            if tail:
                console.print(escape(tail), highlight=False)
        elif o.status in ("blocked", "busy", "unfinished"):
            console.print(escape(f"{o.status} {cells[key].cell_id} [{key}]: {o.detail}"))
    busy = (
        f", {count['busy']} busy (another runner holds them; run again when it is done)"
        if count["busy"]
        else ""
    )
    console.print(
        f"ran {count['done']} cells, {count['failed']} failed, {count['blocked']} blocked by a failure"
        f"{busy}; {len(plan.skipped)} already done (record exists)"
    )
    if (
        count["failed"]
        or count["blocked"]
        or any(o.status == "unfinished" for o in outcome.values())
    ):
        raise typer.Exit(1)
    # a cell another runner holds is not a failure, but not run either: a script that reads
    # exit 0 as "every cell has its record" must not go on (3: run again when it is done)
    if count["busy"]:
        raise typer.Exit(3)


@app.command("train+eval")
def train_eval(
    grid: GridOpt,
    executor: ExecutorOpt = "local",
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    only: OnlyOpt = None,
    backend: BackendOpt = None,
    limit: LimitOpt = None,
    container: ContainerOpt = None,
    partition: PartitionOpt = None,
    workers: WorkersOpt = None,
    results: ResultsOpt = DEFAULT_RESULTS,
    verbose: VerboseOpt = False,
) -> None:
    """Train every stage of a grid and evaluate every checkpoint; then print the leaderboard."""
    from harness.api import RunSpec

    spec = RunSpec.of(
        grid=grid,
        results=results,
        force=force,
        only=only,
        backend=backend,
        limit=limit,
        executor=executor,
        container=container,
        partition=partition,
        workers=workers,
    )
    _run(spec, dry_run=dry_run, render_after=True, verbose=verbose)


@app.command("train")
def train(
    grid: GridOpt,
    executor: ExecutorOpt = "local",
    dry_run: DryRunOpt = False,
    force: ForceOpt = False,
    only: OnlyOpt = None,
    container: ContainerOpt = None,
    partition: PartitionOpt = None,
    results: ResultsOpt = DEFAULT_RESULTS,
    verbose: VerboseOpt = False,
) -> None:
    """Train the stages of a grid (no evaluation)."""
    from harness.api import RunSpec

    spec = RunSpec.of(
        grid=grid,
        results=results,
        kind="train",
        force=force,
        only=only,
        executor=executor,
        container=container,
        partition=partition,
    )
    _run(spec, dry_run=dry_run, render_after=False, verbose=verbose)


@app.command("leaderboard")
def leaderboard(
    results: ResultsOpt = DEFAULT_RESULTS,
    fmt: Annotated[
        str, typer.Option("--format", help="terminal, md, latex, csv, json or html.")
    ] = "terminal",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Filter rows by model (glob).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", help="Keep stages containing this method.")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Keep these task columns.")
    ] = None,
    publish: Annotated[
        Path | None, typer.Option("--publish", help="Write a static site to this folder.")
    ] = None,
    diff_scorer: Annotated[
        bool, typer.Option("--diff-scorer", help="What `bench rescore` changed.")
    ] = False,
) -> None:
    """Ingest records into results/bench.duckdb and render the leaderboard."""
    from harness.api import render_leaderboard

    if publish is not None or diff_scorer:  # harness/_cli_ci.py: the site and the re-scoring diff
        from harness._cli_ci import leaderboard_extras

        leaderboard_extras(results, publish, diff_scorer)
        return

    text = render_leaderboard(results, fmt=fmt, out=out, models=model, methods=method, tasks=task)
    if out is None:
        typer.echo(text)
    else:
        console.print(escape(f"wrote {out}"))


@app.command("compare")
def compare(
    cell_a: str,
    cell_b: str,
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """Paired test (exact McNemar / paired bootstrap) between two eval cells, per shared task."""
    from leaderboards import compare_cells

    console.print(compare_cells(results, cell_a, cell_b, task=task))
