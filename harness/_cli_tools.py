"""``bench plan`` and ``bench containers`` (registered on the app)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from harness._cli_common import DEFAULT_RESULTS, JsonOpt, ResultsOpt, _print_json, app, console
from harness.errors import BenchError

containers_app = typer.Typer(
    no_args_is_help=True, help="Images per hardware target (Docker/podman/Apptainer)."
)
app.add_typer(containers_app, name="containers")
methods_app = typer.Typer(no_args_is_help=True, help="Training methods and their config fields.")
app.add_typer(methods_app, name="methods")
EngineOpt = Annotated[str, typer.Option("--engine", help="apptainer, docker or podman.")]


@app.command("plan")
def plan_cmd(
    model: Annotated[
        str, typer.Option("--model", help="Zoo name, hub id or model directory.")
    ] = "",
    method: Annotated[
        str, typer.Option("--method", help="A training method (bench methods list).")
    ] = "sft",
    target: Annotated[
        str, typer.Option("--target", help="Hardware target (containers/targets.yaml).")
    ] = "h100",
    seq: Annotated[int, typer.Option("--seq", help="Sequence length.")] = 1024,
    lora: Annotated[bool, typer.Option("--lora", help="LoRA adapters (default).")] = False,
    qlora: Annotated[bool, typer.Option("--qlora", help="4-bit base + LoRA.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Full fine-tuning.")] = False,
    effective_batch: Annotated[int, typer.Option("--effective-batch")] = 8,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs available.")] = 1,
    grid: Annotated[
        str | None, typer.Option("--grid", help="Plan every train cell of this grid instead.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Memory plan: weights, gradients, optimizer states, activations; batch and accumulation."""
    from harness.zoo import planner_facts
    from trainers.planner import plan

    if grid:
        return _plan_grid(grid, as_json)
    if not model:
        raise BenchError("bench plan: name a --model (zoo name, hub id or directory) or a --grid")

    if sum((lora, qlora, full)) > 1:
        raise BenchError("bench plan: choose one of --lora, --qlora, --full")
    mode = "qlora" if qlora else "full" if full else "lora"
    facts = planner_facts(model)
    context = _context_length(model, facts)
    if context and seq > context:  # a plan for a length the model cannot take is no plan
        raise BenchError(
            f"--seq {seq}: beyond {model}'s context of {context} tokens; use --seq {context} or less"
        )
    p = plan(
        facts,
        method,
        target,
        seq_len=seq,
        mode=mode,
        effective_batch=effective_batch,
        gpus=gpus,
    )
    if as_json:
        _print_json(p.to_dict())
    else:
        console.print(p)


def _plan_grid(grid: str, as_json: bool) -> None:
    """Every train cell of ``grid`` planned as it will run: its resolved config (mode, max_length,
    effective batch, nproc, per_device_batch, use_vllm) on the grid's target."""
    from rich.table import Table

    from harness.api import grid_rows

    rows = [r for r in grid_rows(grid) if r["kind"] == "train"]
    if as_json:
        _print_json([{k: r[k] for k in ("key", "model", "stage", "method", "plan")} for r in rows])
        return
    target = rows[0]["inputs"]["target"] if rows else ""
    table = Table(title=f"grid {grid}: train cells planned on {target}")
    for col in ("model", "stage", "mode", "seq", "GPUs", "batch × accum", "GB per GPU", "fits"):
        table.add_column(col, overflow="fold")
    for r in rows:
        p = r["plan"]
        if p is None:
            table.add_row(
                r["model"], r["stage"], "-", "-", "-", "-", "no facts: bench plan --model", "?"
            )
            continue
        table.add_row(
            r["model"],
            r["stage"],
            p["mode"],
            str(p["seq_len"]),
            f"{p['gpus']} {p['topology']}",
            f"{p['per_device_batch']} × {p['grad_accum']}",
            f"{p['total_gb']:.2f} of {p['device_memory_gb']:g}",
            "yes" if p["fits"] else "NO",
        )
    console.print(table)
    for r in rows:
        for note in (r["plan"] or {}).get("notes", []):
            console.print(escape(f"  {r['model']} {r['stage']}: {note}"))


def _context_length(model: str, facts) -> int | None:
    """The model's context in tokens: the zoo's number, else its config.json's, else unknown."""
    import json
    from pathlib import Path

    from harness.zoo import get_model

    context = get_model(model).context_length
    if context is None and isinstance(facts, Path):
        try:
            context = json.loads((facts / "config.json").read_text()).get("max_position_embeddings")
        except (OSError, ValueError, AttributeError):
            context = None
    return int(context) if isinstance(context, int) else None


@containers_app.command("list")
def containers_list(as_json: JsonOpt = False) -> None:
    """Hardware targets and their images."""
    from rich.table import Table

    from containers.build import list_targets

    targets = list_targets()
    if as_json:
        _print_json([t.model_dump() for t in targets])
        return
    table = Table(title="hardware targets (containers/targets.yaml)")
    for col in ("target", "base image", "torch", "cc", "dtype", "attention", "quant", "GPU GB"):
        table.add_column(col, overflow="fold")
    for t in targets:
        table.add_row(
            t.name,
            t.base_image,
            str(t.torch),
            str(t.compute_capability or "-"),
            t.dtype,
            t.attn_implementation,
            ",".join(t.quantization) or "-",
            str(t.gpu_memory_gb or "-"),
        )
    console.print(table)


@containers_app.command("build")
def containers_build(
    target: str,
    engine: EngineOpt = "apptainer",
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    base_image: Annotated[str | None, typer.Option("--base-image")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the command only.")] = False,
) -> None:
    """Build TARGET's image (Apptainer .sif, or a Docker/podman image)."""
    import subprocess

    from containers.build import build

    try:
        cmd = build(target, engine, tag, base_image, execute=not print_only)
    except subprocess.CalledProcessError as e:  # the engine already printed why
        raise typer.Exit(e.returncode) from None
    console.print(" ".join(cmd), highlight=False, soft_wrap=True)


@containers_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def containers_run(
    ctx: typer.Context,
    target: str,
    engine: EngineOpt = "apptainer",
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    results: ResultsOpt = DEFAULT_RESULTS,
    print_only: Annotated[bool, typer.Option("--print", help="Print the command only.")] = False,
) -> None:
    """Run `bench ARGS` inside TARGET's image: bench containers run cpu -- eval --model ..."""
    import subprocess

    from containers.build import run

    try:
        cmd = run(target, list(ctx.args), engine, tag, results, execute=not print_only)
    except subprocess.CalledProcessError as e:
        raise typer.Exit(e.returncode) from None
    if print_only:
        console.print(" ".join(cmd), highlight=False, soft_wrap=True)


@methods_app.command("list")
def methods_list(as_json: JsonOpt = False) -> None:
    """The training methods, with each one's version and facts."""
    from trainers import METHODS, method_config

    rows = []
    for name in METHODS:
        cls = method_config(name)
        rows.append(
            {
                "method": name,
                "version": cls.VERSION,
                "verifier_driven": cls.VERIFIER_DRIVEN,
                "memory": dict(vars(cls.MEMORY)),
                "config": METHODS[name],
            }
        )
    if as_json:
        return _print_json(rows)
    for r in rows:
        console.print(
            f"{r['method']:<8} v{r['version']}  verifier-driven: {r['verifier_driven']}  "
            f"{r['config']}"
        )


@methods_app.command("show")
def methods_show(name: str, as_json: JsonOpt = False) -> None:
    """Each config field of a method: default, allowed values and doc."""
    from rich.table import Table

    from harness.errors import closest
    from trainers import METHODS, field_docs, method_config

    if name not in METHODS:
        raise BenchError(
            f"unknown method '{name}'{closest(name, METHODS)}; methods: {', '.join(METHODS)}"
        )
    rows = field_docs(method_config(name))
    if as_json:
        return _print_json(rows)
    table = Table(title=f"{name} ({METHODS[name]})")
    for col in ("field", "default", "allowed", "doc"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["field"], repr(r["default"]), r["allowed"], r["doc"])
    console.print(table)
