"""The ``bench`` CLI: a thin typer layer over the Python API; heavy imports stay inside commands."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench_core.errors import RecordWarning
from bench_core.names import strip_control
from harness._cli_common import DEFAULT_RESULTS, JsonOpt, ResultsOpt, _print_json, app, console
from harness.backends import names as backend_names
from harness.errors import BenchError

models_app = typer.Typer(invoke_without_command=True, help="The model zoo.")
grid_app = typer.Typer(no_args_is_help=True, help="Grids: models x recipes x tasks.")
tasks_app = typer.Typer(no_args_is_help=True, help="Tasks and their verifiers.")
app.add_typer(models_app, name="models")
app.add_typer(grid_app, name="grid")
app.add_typer(tasks_app, name="tasks")


@models_app.callback()
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the model zoo."""
    if ctx.invoked_subcommand is not None:
        return
    from harness.zoo import load_zoo

    zoo = load_zoo()
    if as_json:
        _print_json({name: spec.model_dump() for name, spec in zoo.items()})
        return
    table = Table(title="bench model zoo")
    for col in ("name", "hub", "arch", "params", "ctx", "chat", "think", "revision"):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    for spec in zoo.values():
        params = (
            f"{spec.params / 1e9:.2f}B"
            if spec.params and spec.params >= 1e9
            else f"{(spec.params or 0) / 1e6:.0f}M"
        )
        table.add_row(
            spec.name,
            spec.hub or spec.source,
            (spec.architecture or "?").removesuffix("ForCausalLM"),
            params,
            str(spec.context_length or "?"),
            "yes" if spec.chat_template_required else "",
            "yes" if spec.thinks else "",
            spec.revision or ("-" if spec.source != "hub" else "unpinned"),
        )
    console.print(table)


@models_app.command("fetch")
def models_fetch(name: str) -> None:
    """Materialize a model into the cache (the bundled default needs no hub)."""
    from harness.zoo import materialize

    path = materialize(name)
    console.print(escape(f"{name}: {path}"), highlight=False)


@grid_app.command("list")
def grid_list() -> None:
    """List the shipped grids."""
    from harness.grid import list_grids

    for name in list_grids():
        typer.echo(name)


@grid_app.command("show")
def grid_show(name: str, results: ResultsOpt = DEFAULT_RESULTS, as_json: JsonOpt = False) -> None:
    """The expanded cells of a grid with their keys, status and why (the first changed key input)."""
    from harness.api import grid_rows

    rows = grid_rows(name, results)
    if as_json:
        _print_json(rows)
        return
    n_train = sum(r["kind"] == "train" for r in rows)
    table = Table(title=f"grid {name}: {n_train} train + {len(rows) - n_train} eval cells")
    for col in ("kind", "key", "model", "stage", "status", "why"):
        table.add_column(col, overflow="fold", no_wrap=col == "key")
    for r in rows:
        table.add_row(r["kind"], r["key"], r["model"], r["stage"], r["status"], escape(r["why"]))
    console.print(table)


@tasks_app.command("list")
def tasks_list() -> None:
    """Tasks in the include_path with their versions."""
    from harness.taskinfo import task_index

    for info in task_index().values():
        members = f" = {', '.join(info.members)}" if info.members else ""
        typer.echo(f"{info.name}  v{info.version}{members}")


@tasks_app.command("check")
def tasks_check(
    task: str,
    data: Annotated[Path, typer.Option("--data", help="File with gold labels.")],
    show: Annotated[bool, typer.Option("--show", help="Print every disagreement.")] = False,
) -> None:
    """A task's oracle/verifier against a file's labels; last line agreement=<f> n=<n>."""
    from tasks import FAMILIES, family

    checks = [name for name in FAMILIES if hasattr(family(name), "check_file")]
    if task not in checks:
        raise BenchError(f"no check for task '{task}': checks exist for {', '.join(checks)}")
    if not data.exists():
        raise BenchError(f"--data: file not found: {data}")
    # show: the check prints each one; a malformed file is its BenchError
    report = family(task).check_file(data, show=show)
    if report.failures:
        typer.echo(f"failures={report.failures} (rows that could not be parsed)")
    typer.echo(report.last_line())


@app.command("eval")
def eval_cmd(
    model: Annotated[
        str | None, typer.Option("--model", help="Zoo name, hub id or model directory.")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="A trained stage directory.")
    ] = None,
    tasks: Annotated[
        str, typer.Option("--tasks", help="Comma-separated tasks or groups.")
    ] = "math_arith",
    backend: Annotated[str, typer.Option("--backend", help=f"{backend_names()}.")] = "hf",
    limit: Annotated[int | None, typer.Option("--limit", help="Docs per task.")] = None,
    num_fewshot: Annotated[
        int | None, typer.Option("--num-fewshot", help="Few-shot examples (zoo default: 0).")
    ] = None,
    max_gen_toks: Annotated[
        int | None, typer.Option("--max-gen-toks", help="Cap generated tokens per doc.")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option("--repeats", help="Samples per prompt (with --temperature).")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature (0: greedy).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    target: Annotated[
        str | None, typer.Option("--target", help="Hardware target; detected when omitted.")
    ] = None,
    chat_template: Annotated[
        bool | None,
        typer.Option(
            "--chat-template/--no-chat-template", help="Default: the zoo's choice for the model."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    results: ResultsOpt = DEFAULT_RESULTS,
) -> None:
    """Evaluate a model or checkpoint on tasks in one lm-eval call; writes a run record."""
    from harness.api import eval_model

    if not 0 <= seed < 2**32:  # numpy's and torch's seeds
        raise BenchError(f"--seed {seed}: must be in [0, 2^32)")
    if not tasks.strip(" ,"):
        raise BenchError("--tasks '': name at least one task, e.g. math_arith")

    record = eval_model(
        model=model,
        checkpoint=checkpoint,
        tasks=tasks.split(","),
        backend=backend,
        limit=limit,
        num_fewshot=num_fewshot,
        max_gen_toks=max_gen_toks,
        batch_size=batch_size,
        target=target,
        chat_template=chat_template,
        seed=seed,
        repeats=repeats,
        temperature=temperature,
        results=results,
    )
    table = Table(
        title=f"{record.model_id} / {record.stage}  (cell {record.cell_key}, {record.wall_s:.1f}s)"
    )
    for col in ("task", "version", "metric", "value", "stderr", "n"):
        table.add_column(col)
    for t in record.tasks:
        for name, m in t.metrics.items():
            star = "*" if name == t.primary_metric else ""
            table.add_row(
                t.name,
                t.version,
                name + star,
                f"{m.value:.4f}",
                f"{m.stderr:.4f}" if m.stderr is not None else "",
                str(m.n or ""),
            )
    console.print(table)


@app.command("doctor")
def doctor(as_json: JsonOpt = False) -> None:
    """What this machine can run: Python, torch/CUDA, vLLM, bitsandbytes, flash-attn, caches, schedulers."""
    from harness.doctor import CORE, run_checks

    checks = run_checks()
    if as_json:
        _print_json([c.to_dict() for c in checks])
    else:
        table = Table(title="bench doctor")
        for col in ("check", "status", "detail"):
            table.add_column(col, overflow="fold")
        style = {"works": "green", "missing": "yellow", "broken": "red"}
        for c in checks:
            table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", escape(c.detail))
        console.print(table)
    if any(c.name in CORE and c.status != "works" for c in checks):
        raise typer.Exit(1)


# Commands defined in sibling modules register themselves on `app` (from _cli_common) when imported.
from harness import _cli_analyze, _cli_ci, _cli_data, _cli_inspect, _cli_run, _cli_tools  # noqa: E402,F401


def main() -> None:
    """Console entry point: a user mistake (BenchError) is one line on stderr and exit code 2.

    Anything else is a bug: its traceback is shown and the exit code is 1 (a failing grid
    cell has already written its failure record by then). BENCH_DEBUG=1 shows a traceback
    for user mistakes too.
    """
    import warnings

    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RecordWarning):  # a skipped file: one line, like an error
            sys.stderr.write(f"warning: {strip_control(str(message))}\n")
        else:
            default_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        app()
    except (BenchError, OSError, RecursionError) as e:
        message = user_error(e)
        if message is None or os.environ.get("BENCH_DEBUG"):
            raise
        Console(stderr=True).print(
            f"[red]error:[/] {escape(strip_control(message))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)


# errno values that are the storage's state, not a bug: the user frees space or picks a folder
_STORAGE = {
    errno.ENOSPC: "disk full (no space left on device); free space and run again: finished "
    "cells are kept",
    errno.EDQUOT: "disk quota exceeded; free space and rerun: finished cells are kept",
    errno.EROFS: "read-only file system; pick a writable folder",
    errno.EACCES: "permission denied; pick a folder you can write, or fix its permissions",
    errno.EPERM: "operation not permitted; pick a folder you can write",
    errno.ENAMETOOLONG: "name too long; use a name of at most 255 bytes",
    errno.ENOENT: "no such file or directory; check the path",
    errno.ENOTDIR: "a part of the path is not a directory; check the path",
    errno.EISDIR: "is a directory; name a file",
    errno.ENXIO: "not a regular file (a FIFO or device?); name a file",
    errno.ELOOP: "too many levels of symbolic links; check the path",
}


def user_error(e: BaseException) -> str | None:
    """The one line for a failure the user caused (bad input, a path they named, full or
    read-only storage, input nested past Python's recursion limit); None for a bug."""
    if isinstance(e, BenchError):
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, RecursionError):
        return "input nested too deeply (JSON or YAML); flatten the file"
    if isinstance(e, OSError) and e.errno in _STORAGE:
        where = e.filename if e.filename is not None else ""
        return f"{where}: {_STORAGE[e.errno]}" if where else _STORAGE[e.errno]
    return None


if __name__ == "__main__":
    main()
