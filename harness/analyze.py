"""``bench analyze``: which weights and outputs a stage changed, the library behind the CLI.

Names of checkpoints resolve, in order: a local directory (a model, or a stage directory
with ``manifest.json``), a zoo name, a grid cell ``model/stage`` (a train record of the
results dir with that model and stage, ``base`` the model itself, or a published stage
of the zoo's lineage), then a hub id. A stage directory holds ``adapter/`` (over the
weights its manifest names ``base_weights``) and optionally ``merged/``. The analyses
themselves live in ``leaderboards`` (weights, behavior); this module finds the inputs
and stores the results under ``results/analysis/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BenchError

__all__ = ["Checkpoint", "resolve_checkpoint", "analyze_weights", "analyze_behavior"]


@dataclass(frozen=True)
class Checkpoint:
    label: str  # the name as given
    weights: Path | None  # full weights (a model dir or a stage's merged/); None: adapter only
    adapter: Path | None = None  # a stage's LoRA adapter ...
    adapter_base: Path | None = None  # ... over these weights (manifest base_weights)
    model_id: str | None = None
    stage: str | None = None


def _same(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


def _stage_dir(path: Path, label: str, model_id=None, stage=None) -> Checkpoint:
    from trainers.manifest import read_manifest, stage_path

    try:
        manifest = read_manifest(path)
    except (OSError, ValueError) as e:
        raise BenchError(f"{str(e).splitlines()[0]}; retrain the stage") from None
    merged = path / "merged"
    adapter = path / "adapter"
    return Checkpoint(
        label,
        merged if (merged / "config.json").exists() else None,
        adapter if (adapter / "adapter_config.json").exists() else None,
        stage_path(manifest.base_weights, path),
        model_id,
        stage,
    )


def _zoo_checkpoint(name: str, label: str, model_id=None, stage=None) -> Checkpoint:
    from harness.zoo import materialize

    return Checkpoint(label, Path(materialize(name)), model_id=model_id, stage=stage)


def _lineage(name: str) -> tuple[str, str]:
    """(root model, stage) of a zoo entry: ``tulu-3-8b`` -> (``llama-3.1-8b``, ``sft+dpo+rlvr``)."""
    from harness.zoo import load_zoo

    zoo, methods, seen = load_zoo(), [], {name}
    while zoo[name].lineage is not None and zoo[name].lineage.parent in zoo:
        methods.insert(0, zoo[name].lineage.method)
        name = zoo[name].lineage.parent
        if name in seen:  # load_zoo refuses a cycle; a walk never trusts that alone
            break
        seen.add(name)
    return name, "+".join(methods) or "base"


def _train_records(results: Path) -> list:
    from leaderboards.record import read_records

    return [rec for _, rec in read_records(sorted((results / "records").glob("train-*.json")))]


def _checkpoint_dir(results: Path, checkpoint: str) -> Path:
    """A train record's checkpoint as written (relative to the run's working directory, e.g.
    ``results/checkpoints/KEY``), or the same key under ``results`` when the results directory
    was moved or is read from elsewhere (``--results /other/results``)."""
    written = Path(checkpoint)
    moved = results / "checkpoints" / written.name
    return (
        written
        if (written / "manifest.json").exists() or not (moved / "manifest.json").exists()
        else moved
    )


def resolve_checkpoint(name: str, results: str | Path = "results") -> Checkpoint:
    from harness.zoo import load_zoo

    path = Path(name).expanduser()
    if path.is_dir():
        return (
            _stage_dir(path, name) if (path / "manifest.json").exists() else Checkpoint(name, path)
        )
    zoo = load_zoo()
    if name in zoo:
        return _zoo_checkpoint(name, name, *_lineage(name))
    model, _, stage = name.partition("/")
    trained = (
        [r for r in _train_records(Path(results)) if r.model_id == model and r.checkpoint]
        if stage
        else []
    )
    recs = [r for r in trained if r.stage == stage]
    if recs:
        return _stage_dir(
            _checkpoint_dir(Path(results), max(recs, key=lambda r: r.finished_at).checkpoint),
            name,
            model,
            stage,
        )
    if model in zoo or trained:
        if stage == "base":
            return _zoo_checkpoint(model, name, model, "base")
        published = [
            n for n in zoo if n == stage or _lineage(n) == (model, stage)
        ]  # by name or method path
        if published:
            return _zoo_checkpoint(published[0], name, *_lineage(published[0]))
        raise BenchError(
            f"{name}: no train record with model_id '{model}' and stage '{stage}' in "
            f"{Path(results) / 'records'}; train it (bench train+eval) or pass --results DIR"
        )
    return _zoo_checkpoint(name, name)  # a hub id (or the zoo's 'unknown model' error)


def analyze_weights(
    a: str,
    b: str,
    *,
    dtype: str = "bf16",
    tols=("0", "1e-5", "1e-4"),
    rank: bool = False,
    top_k: int = 16,
    merged: bool | None = None,
    results: str | Path = "results",
    store: bool = False,
    heatmap: str | Path | None = None,
):
    """Compare A (before) with B (after); ``merged`` None: B's LoRA adapter when its base is A, else
    B's full weights. Returns the ``leaderboards.weights.WeightDiff``."""
    from leaderboards.weights import compare_weights

    ca, cb = resolve_checkpoint(a, results), resolve_checkpoint(b, results)
    if ca.weights is None:
        raise BenchError(
            f"A={a}: a stage without merged/ weights; name its parent as A and analyse the pair "
            "low-rank, or merge it first"
        )
    lowrank = (
        cb.adapter is not None and _same(cb.adapter_base, ca.weights)
        if merged is None
        else not merged
    )
    if lowrank and cb.adapter is None:
        raise BenchError(
            f"B={b}: --lowrank needs a stage with an adapter/; this one has full weights only"
        )
    if lowrank and not _same(cb.adapter_base, ca.weights):
        raise BenchError(
            f"B={b}: its adapter was trained on {cb.adapter_base}, not on A ({ca.weights}); "
            "name that checkpoint as A, or use --merged"
        )
    if not lowrank and cb.weights is None:
        raise BenchError(
            f"B={b}: no merged/ weights in the stage; use --lowrank (A must be its parent) or merge it"
        )
    diff = compare_weights(
        ca.weights,
        None if lowrank else cb.weights,
        adapter=cb.adapter if lowrank else None,
        dtype=dtype,
        tols=list(tols),
        rank=rank,
        top_k=top_k,
    )
    diff.meta = {
        "label": f"{a} → {b}",
        "a": a,
        "b": b,
        "model_id": cb.model_id or ca.model_id,
        "stage_a": ca.stage,
        "stage_b": cb.stage,
    }
    doc = diff.document()
    if heatmap is not None:
        from leaderboards.analysis_render import heatmap_png

        heatmap_png(doc, heatmap)
    if store:
        ident = json.dumps([a, b, dtype, diff.mode, diff.tols, rank, top_k])
        _store(Path(results), f"weights-{hashlib.sha256(ident.encode()).hexdigest()[:16]}", doc)
    return diff


def _store(results: Path, name: str, doc) -> None:
    from leaderboards.analysis_store import write_analysis
    from leaderboards.store import ingest

    write_analysis(results, name, doc)
    (results / "records").mkdir(
        parents=True, exist_ok=True
    )  # ingest's root, even before any cell ran
    ingest(results)


def _eval_cells(results: Path) -> dict[tuple[str, str], tuple]:
    """(record, its file) of the latest eval cell per (model, stage), as the board shows them."""
    from leaderboards.record import read_records

    latest: dict[tuple[str, str], tuple] = {}
    for path, rec in read_records(sorted((results / "records").glob("eval-*.json"))):
        key = (rec.model_id, rec.stage)
        if key not in latest or rec.finished_at > latest[key][0].finished_at:
            latest[key] = (rec, path)
    return latest


def analyze_behavior(
    results: str | Path = "results",
    cells: list[str] | None = None,
    *,
    ks: list[int] | None = None,
    store: bool = False,
    seed: int = 0,
):
    """Behaviour documents (``leaderboards.analysis_doc.BehaviorDoc``) per selected cell × task,
    each with its comparison to the parent stage."""
    from leaderboards.analysis_doc import BehaviorDoc
    from leaderboards.analysis_store import json_safe
    from leaderboards.behavior import behavior, compare_behavior, load_samples
    from leaderboards.board import parent_stage
    from leaderboards.samples import resolve_samples_file

    results = Path(results)
    if not (results / "records").is_dir():
        raise BenchError(f"{results / 'records'}: no records; pass --results DIR of a grid run")
    latest = _eval_cells(results)
    chosen = [
        k
        for k, (r, _) in latest.items()
        if not cells or f"{k[0]}/{k[1]}" in cells or any(r.cell_key.startswith(c) for c in cells)
    ]
    if cells and not chosen:
        raise BenchError(
            f"--cell {', '.join(cells)}: no eval cell in {results / 'records'} matches; give a cell "
            "key (prefix) or model/stage"
        )
    cache: dict = {}

    def measured(key, task):
        if (key, task.name) not in cache:
            rel = (
                task.repeats_file or task.samples_file
            )  # every sample of every prompt, when repeated
            path = resolve_samples_file(results, latest[key][1], rel) if rel else None
            cache[(key, task.name)] = behavior(load_samples(path), ks=ks) if path else None
        return cache[(key, task.name)]

    docs = []
    for key in sorted(chosen):
        rec = latest[key][0]
        parent = (
            rec.parent_stage if rec.weights_key else parent_stage(key[1])
        )  # published rows name theirs
        for task in rec.tasks:
            b = measured(key, task)
            if b is None:
                continue
            vs_parent = None
            prec = latest[(key[0], parent)][0] if parent and (key[0], parent) in latest else None
            ptask = (
                next(
                    (t for t in prec.tasks if t.name == task.name and t.version == task.version),
                    None,
                )
                if prec
                else None
            )
            pb = measured((key[0], parent), ptask) if ptask else None
            if pb is not None:
                try:
                    vs_parent = compare_behavior(pb, b, seed=seed) | {"parent_stage": parent}
                except ValueError:
                    vs_parent = None  # no shared prompts: nothing to pair
            doc = BehaviorDoc.model_validate(
                json_safe(
                    {
                        "model_id": key[0],
                        "stage": key[1],
                        "task_version": task.version,
                        **b.to_dict(),
                        "vs_parent": vs_parent,
                    }
                )
            )
            docs.append(doc)
            if store:
                from leaderboards.analysis_store import write_analysis

                write_analysis(results, f"behavior-{rec.cell_key}-{task.name}", doc)
    if store:
        from leaderboards.store import ingest

        ingest(results)
    return docs
