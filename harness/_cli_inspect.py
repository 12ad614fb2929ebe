"""``bench samples``, ``bench curves`` and ``bench export`` (registered on the app): what a
cell's lineage wrote and how its training went, read from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness._cli_common import DEFAULT_RESULTS, JsonOpt, ResultsOpt, _print_json, app, console
from harness.errors import BenchError


def _store(results: Path):
    """Ingest (idempotent) and open the store read-only; a bad results dir is one line."""
    from leaderboards.store import connect, default_db_path, ingest

    ingest(results)
    return connect(default_db_path(results), read_only=True)


@app.command("samples")
def samples_cmd(
    cell: Annotated[str, typer.Argument(help="An eval or train cell key (a unique prefix).")],
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    flipped: Annotated[
        bool, typer.Option("--flipped", help="Only docs whose verdict changed vs the parent.")
    ] = False,
    doc: Annotated[int | None, typer.Option("--doc", help="Only this doc_id.")] = None,
    results: ResultsOpt = DEFAULT_RESULTS,
    as_json: JsonOpt = False,
) -> None:
    """Per doc: the prompt, each lineage stage's completion, parsed answer, verdict and flags."""
    from leaderboards.lineage_samples import lineage_samples, to_dict, to_rich

    con = _store(results)
    try:
        got = lineage_samples(con, cell, task, flipped=flipped, doc=doc)
    finally:
        con.close()
    if as_json:
        _print_json([to_dict(t) for t in got])
    else:
        console.print(to_rich(got))


@app.command("curves")
def curves_cmd(
    cell: Annotated[str, typer.Argument(help="An eval or train cell key (a unique prefix).")],
    fmt: Annotated[str, typer.Option("--format", help="text, csv or json.")] = "text",
    width: Annotated[int, typer.Option("--width", help="Sparkline characters.")] = 40,
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """A sparkline per logged metric for each train stage of the cell's lineage."""
    from leaderboards.curves import curves_csv, curves_dict, curves_text, lineage_curves
    from leaderboards.lineage_samples import resolve_train_or_eval_cell

    if fmt not in ("text", "csv", "json"):
        raise BenchError(f"--format: unknown format '{fmt}'; use text, csv or json")
    con = _store(results)
    try:
        key = resolve_train_or_eval_cell(con, cell)
        curves = lineage_curves(con, key)
    finally:
        con.close()
    if fmt == "json":
        _print_json(curves_dict(curves))
    else:
        typer.echo(curves_csv(curves) if fmt == "csv" else curves_text(curves, width), nl=False)


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Argument(help="The tracker's local folder to write.")],
    to: Annotated[str, typer.Option("--to", help="trackio, mlflow or wandb.")] = "trackio",
    project: Annotated[str, typer.Option("--project", help="Project / experiment name.")] = "bench",
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """Replay the store through Trackio, MLflow or W&B offline: per eval cell, its lineage's
    scores and training curves on one step axis, the cell key and lineage as tags."""
    from leaderboards.export import export

    if out.exists() and not out.is_dir():
        raise BenchError(f"{out}: is a file; name a folder for the tracker's local store")
    con = _store(results)
    try:
        runs = export(con, to, out, project)
    finally:
        con.close()
    console.print(f"exported {len(runs)} run(s) to {to} in {out}")
