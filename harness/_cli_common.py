"""What every ``bench`` command module shares: the app, the console, the shared options.

Its own module so that ``cli`` imports the command modules and they import this, never
``cli`` back (tests/test_imports.py: no module cycles). Importing it stays light
(typer and rich only): ``bench --help`` must not import torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["app", "console", "ResultsOpt", "JsonOpt", "DEFAULT_RESULTS", "_print_json"]

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="bench: train and evaluate post-training grids; render leaderboards.",
)

console = Console()

# Options shared by several commands, declared once.
ResultsOpt = Annotated[
    Path, typer.Option("--results", envvar="BENCH_RESULTS", help="Results directory.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_RESULTS = Path("results")


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
