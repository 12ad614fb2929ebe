"""``bench data ls`` and ``bench data pull``: the data mirror (registered on the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness._cli_common import JsonOpt, _print_json, app, console

data_app = typer.Typer(
    no_args_is_help=True,
    help="The data mirror for offline runs: DATA_DIR/<dataset_path>/<dataset_name>/<split>.jsonl (the name only where the task has one).",
)
app.add_typer(data_app, name="data")
MirrorOpt = Annotated[
    Path | None,
    typer.Option(
        "--to", "--mirror", help="The mirror folder; default $BENCH_DATA_DIR, ../shared/data."
    ),
]


@data_app.command("ls")
def data_ls_cmd(
    tasks: Annotated[list[str] | None, typer.Argument(help="Tasks, groups or tags.")] = None,
    mirror: MirrorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What each task needs and what the mirror holds (rows per split); no task: the whole mirror."""
    from bench_core.mirror import data_dir
    from harness.datamirror import data_ls, mirror_contents

    root = mirror or data_dir()
    if not tasks:
        contents = mirror_contents(root)
        if as_json:
            _print_json(contents)
            return
        table = Table(title=f"data mirror {root}")
        for col in ("dataset", "splits (rows)"):
            table.add_column(col)
        for folder, splits in contents.items():
            table.add_row(folder, ", ".join(f"{s} {n:,}" for s, n in splits.items()))
        console.print(table)
        return
    rows = data_ls(tasks, root)
    if as_json:
        _print_json([{**r.__dict__, "status": r.status} for r in rows])
        return
    table = Table(title=f"data mirror {root}")
    for col in (
        "task",
        "dataset",
        "needs (0-shot)",
        "k-shot from",
        "mirror holds (rows)",
        "status",
    ):
        table.add_column(col)
    for r in rows:
        held = ", ".join(f"{s} {n:,}" for s, n in r.held.items()) or "-"
        table.add_row(
            r.task, r.dataset or "-", ", ".join(r.needed) or "-", r.fewshot or "-", held, r.status
        )
    console.print(table)


@data_app.command("pull")
def data_pull_cmd(
    tasks: Annotated[list[str], typer.Argument(help="Tasks, groups or tags.")],
    mirror: MirrorOpt = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A folder of datasets repositories named as on the hub, instead of the hub.",
        ),
    ] = None,
) -> None:
    """Write every split the tasks name into the mirror (on a connected machine)."""
    from harness.datamirror import data_pull

    for path in data_pull(tasks, mirror, source):
        console.print(str(path), highlight=False, soft_wrap=True)
