"""``bench analyze weights`` and ``bench analyze behavior`` (registered on the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness._cli_common import DEFAULT_RESULTS, JsonOpt, ResultsOpt, _print_json, app
from harness.errors import BenchError

analyze_app = typer.Typer(
    no_args_is_help=True, help="How stages change weights and behaviour, stage against stage."
)
app.add_typer(analyze_app, name="analyze")


def _ints(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"{what} '{text}': give comma-separated integers, e.g. 1,2,4,8") from None
    if not values or min(values) < 1:
        raise BenchError(f"{what} '{text}': each value must be at least 1, e.g. 1,2,4,8")
    return values


def _file_opt(path: Path | None, what: str, example: str) -> None:
    """An output file option, checked before minutes of analysis are spent."""
    if path is not None and path.is_dir():
        raise BenchError(f"{what} {path}: is a directory; name a file, e.g. {path / example}")


@analyze_app.command("weights")
def weights_cmd(
    a: Annotated[
        str,
        typer.Argument(help="Before: zoo name, hub id, model/stage dir, or grid cell model/stage."),
    ],
    b: Annotated[str, typer.Argument(help="After: the same kinds of name.")],
    dtype: Annotated[
        str, typer.Option("--dtype", help="bf16, fp16 or fp32: both cast to it, Δ taken in it.")
    ] = "bf16",
    tol: Annotated[
        str, typer.Option("--tol", help="Sparsity tolerances, comma-separated, keyed as written.")
    ] = "0,1e-5,1e-4",
    rank: Annotated[
        bool, typer.Option("--rank", help="Also rank(ΔW), spectral drift, subspace overlap (slow).")
    ] = False,
    top_k: Annotated[
        int, typer.Option("--top-k", help="Singular subspace size for the overlap.")
    ] = 16,
    merged: Annotated[
        bool | None,
        typer.Option(
            "--merged/--lowrank",
            help="B's merged weights, or its LoRA ΔW "
            "(default: low-rank when B's adapter was trained on A).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON document to FILE.")
    ] = None,
    heatmap: Annotated[
        Path | None, typer.Option("--heatmap", help="Write the layer x module heatmap PNG.")
    ] = None,
    results: ResultsOpt = DEFAULT_RESULTS,
    store: Annotated[
        bool, typer.Option("--store", help="Keep the result under results/analysis/ for the board.")
    ] = False,
) -> None:
    """Per tensor, layer and module: relative ‖ΔW‖, update sparsity, optional rank and spectra."""
    from harness.analyze import analyze_weights

    _file_opt(out, "--out", "weights.json")
    _file_opt(heatmap, "--heatmap", "heatmap.png")
    if top_k < 1:
        raise BenchError(f"--top-k {top_k}: must be at least 1")
    tols = [t.strip() for t in tol.split(",") if t.strip()]
    diff = analyze_weights(
        a,
        b,
        dtype=dtype,
        tols=tols,
        rank=rank,
        top_k=top_k,
        merged=merged,
        results=results,
        store=store,
        heatmap=heatmap,
    )
    text = diff.to_json()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    if as_json:
        typer.echo(text, nl=False)
        return
    from leaderboards.analysis_render import weights_markdown

    typer.echo(weights_markdown(diff.document()) + f"\n{diff.seconds:.1f}s")


@analyze_app.command("behavior")
def behavior_cmd(
    results: ResultsOpt = DEFAULT_RESULTS,
    cell: Annotated[
        list[str] | None,
        typer.Option("--cell", help="Cell key (prefix) or model/stage; repeatable."),
    ] = None,
    k: Annotated[
        str | None,
        typer.Option("--k", help="pass@k values, e.g. 1,2,4,8 (default powers of 2 to n)."),
    ] = None,
    store: Annotated[
        bool,
        typer.Option("--store", help="Keep the results under results/analysis/ for the board."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """From stored samples: lengths, truncation, pass@k, answer diversity, calibration, repetition; vs parent."""
    from harness.analyze import analyze_behavior

    docs = analyze_behavior(results, cell or None, ks=_ints(k, "--k"), store=store)
    if as_json:
        _print_json([d.model_dump(mode="json") for d in docs])
        return
    from leaderboards.analysis_render import behavior_markdown

    typer.echo(behavior_markdown(docs) if docs else "no eval cells with samples files")
