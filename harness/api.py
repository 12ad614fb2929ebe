"""The Python API behind the CLI: each command calls one function here, and tests call them too."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from harness.errors import BenchError
from harness.keys import content_key
from leaderboards.record import RunRecord

__all__ = [
    "eval_model",
    "default_target",
    "RunSpec",
    "load_plan",
    "run_plan",
    "run_grid",
    "render_leaderboard",
    "grid_rows",
]


def default_target() -> str:
    from containers.targets import detect_target

    return detect_target()


def _checkpoint_row(checkpoint: Path) -> tuple[str, str, list[str], str | None, str, Path]:
    """(model, stage, recipe, parent key, weights identity, weights dir) of a stage or model directory.

    A stage directory is read as what the trainers wrote (the typed manifest) and what the
    harness wrote beside it (``cell.json``: the grid cell that trained it); its identity is the
    content hash of the weights it loads (the adapter with its base weights, or merged/).
    """
    from harness.keys import file_digest
    from harness.runner import STAGE_CELL_FILE
    from leaderboards.record import one_line
    from leaderboards.sidecar import read_stage_cell
    from trainers.manifest import read_manifest, stage_path

    if not (checkpoint / "manifest.json").exists():
        if not (checkpoint / "config.json").exists():
            raise BenchError(
                f"--checkpoint {checkpoint}: no manifest.json or config.json there; "
                "pass a trained stage directory (results/checkpoints/KEY) or a model directory"
            )
        from harness.zoo import _local_dir

        _local_dir(checkpoint)  # its config.json checked: one line, not transformers' traceback
        return (
            checkpoint.name,
            "base",
            [],
            None,
            f"local:{_weights_digest(checkpoint, file_digest)}",
            checkpoint,
        )
    try:
        manifest = read_manifest(checkpoint)
    except ValueError as e:
        raise BenchError(
            f"{str(e).splitlines()[0]}; point --checkpoint at a finished stage directory"
        ) from None
    cell = None
    if (checkpoint / STAGE_CELL_FILE).exists():
        try:
            cell = read_stage_cell(checkpoint / STAGE_CELL_FILE)
        except ValueError as e:
            raise BenchError(
                f"{checkpoint / STAGE_CELL_FILE}: not a stage's cell file ({one_line(e)}); "
                "retrain the stage or delete the file"
            ) from None
    merged = checkpoint / manifest.merged if manifest.merged else None
    parts = (
        [_weights_digest(merged, file_digest)]
        if merged and merged.is_dir()
        else [
            _weights_digest(checkpoint / (manifest.adapter or "adapter"), file_digest),
            _weights_digest(stage_path(manifest.base_weights, checkpoint), file_digest),
        ]
    )
    if cell is None:  # a stage trained outside a grid (trainers' own CLI)
        model, stage, key = Path(manifest.base_model).name, manifest.method, None
        recipe = stage.split("+")
    else:
        model, stage, recipe, key = cell.model, cell.stage, cell.recipe, cell.cell_key
    return model, stage, list(recipe), key, "stage:" + "+".join(parts), checkpoint


def _weights_digest(directory: Path, digest) -> str:
    """Content hash of a directory's weight and config files (what loading it reads)."""
    files = sorted(
        p
        for pattern in ("*.safetensors", "*.bin", "config.json", "adapter_config.json")
        for p in directory.glob(pattern)
    )
    if not files:
        raise BenchError(
            f"--checkpoint: {directory} holds no weights (*.safetensors, *.bin); "
            "the stage is incomplete: retrain it"
        )
    return content_key({p.name: digest(p) for p in files})


def eval_model(
    *,
    model: str | None = None,
    checkpoint: Path | None = None,
    tasks: list[str],
    backend: str = "hf",
    limit: int | None = None,
    num_fewshot: int | None = None,
    max_gen_toks: int | None = None,
    batch_size: int = 8,
    target: str | None = None,
    chat_template: bool | None = None,
    seed: int = 0,
    repeats: int | None = None,
    temperature: float | None = None,
    results: Path = Path("results"),
) -> RunRecord:
    """``bench eval``: one model or stage checkpoint, all tasks in one lm-eval call."""
    from pydantic import ValidationError

    from bench_core.errors import pydantic_reason
    from harness.grid import Expansion, GridSpec, eval_cell
    from harness.runner import run_cell
    from harness.settings import EvalSettings
    from harness.status import record_file
    from harness.taskinfo import resolve_tasks
    from harness.zoo import ModelSpec, get_model, model_identity
    from leaderboards.record import load_record

    if (model is None) == (checkpoint is None):
        raise BenchError("bench eval: give exactly one of --model NAME or --checkpoint PATH")
    leaves = {t.name: t.version for t in resolve_tasks(tasks, where="--tasks")}
    asked = {
        "backend": backend,
        "limit": limit,
        "num_fewshot": num_fewshot,
        "apply_chat_template": chat_template,
        "max_gen_toks": max_gen_toks,
        "repeats": repeats,
        "temperature": temperature,
        "batch_size": batch_size,
    }
    try:
        settings = EvalSettings(**{k: v for k, v in asked.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0])
        raise BenchError(
            f"--{name.replace('_', '-')} {asked.get(name)}: {pydantic_reason(err)}"
        ) from None
    target = target or default_target()
    parent_key = None
    if checkpoint is not None:
        model_id, stage, recipe, parent_key, identity, weights = _checkpoint_row(Path(checkpoint))
        spec = _stage_spec(model_id) or ModelSpec(name=model_id, source="local", path=str(weights))
        load = str(weights)
    else:
        spec = get_model(model)
        model_id, stage, recipe, identity, load = spec.name, "base", [], model_identity(spec), model
    grid = GridSpec(
        name="eval", models=[load], tasks=list(leaves), eval=settings, target=target, seed=seed
    )
    parent = None if stage == "base" else (stage.rsplit("+", 1)[0] if "+" in stage else "base")
    cell = eval_cell(
        grid,
        tasks=tuple(leaves.items()),
        spec=spec,
        row_model=model_id,
        stage=stage,
        recipe=tuple(recipe),
        load=load,
        train_key=parent_key,
        identity=identity,
        parent_weights=None,
        base_weights=None,
        parent_stage=parent,
    )
    outcome = run_cell(cell, Expansion(grid, [], [cell]), results, force=True, reraise=True)
    return (
        load_record(record_file(Path(results), "eval", cell.key))
        if outcome.ok
        else _failed(outcome)
    )


def _failed(outcome):
    raise BenchError(f"bench eval: {outcome}")


def _stage_spec(model_id: str):
    """The zoo entry a trained stage's model row names (its prompting facts), if any."""
    from harness.zoo import get_model

    try:
        return get_model(model_id)
    except BenchError:
        return None


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run of a grid: which cells (``kind``, ``only``, ``force``), with which eval overrides
    (``backend``, ``limit``: None keeps the grid's), where records go, and on which executor
    with which options (its ``Options``, harness.executors; None: its defaults)."""

    grid: str
    results: Path = Path("results")
    kind: Literal["train", "eval"] | None = None
    only: str | None = None
    force: bool = False
    backend: str | None = None
    limit: int | None = None
    executor: str = "local"
    options: Any = None

    def __post_init__(self) -> None:
        from harness.executors import executor, executor_options

        if self.options is None:
            object.__setattr__(self, "options", executor_options(self.executor))
        elif not isinstance(self.options, executor(self.executor).Options):
            raise TypeError(f"options {self.options!r}: not the {self.executor} executor's Options")

    @classmethod
    def of(cls, *, executor: str = "local", **given: Any) -> RunSpec:
        """A RunSpec from flat options as the CLI spells them: the executor's own (``workers``,
        ``container``, ...) go into its ``options``, another executor's are refused in one line."""
        from harness.executors import executor_options

        own = {f.name for f in fields(cls)}
        extra = {k: given.pop(k) for k in list(given) if k not in own}
        return cls(executor=executor, options=executor_options(executor, **extra), **given)


def load_plan(spec: RunSpec):
    """The grid loaded, validated and expanded once, with each cell's status: what a run would do."""
    from harness.grid import load_grid
    from harness.runner import plan_grid

    grid = load_grid(spec.grid, backend=spec.backend, limit=spec.limit)
    return plan_grid(grid, spec.results, only=spec.only, force=spec.force, kind=spec.kind)


def run_plan(plan, spec: RunSpec, *, progress=None):
    """Run a plan's cells on the spec's executor; returns cell key -> Outcome."""
    from harness.executors import executor

    if not plan.todo:
        return {}
    run = executor(spec.executor).run
    return run(plan, spec.results, spec.options, force=spec.force, progress=progress)


def run_grid(grid: str | RunSpec, *, dry_run: bool = False, progress=None, **options: Any):
    """``bench train+eval`` (kind=None), ``bench train`` (kind='train'), ``bench eval --grid`` (kind='eval').

    ``grid`` is a RunSpec, or a grid name with the spec's fields and executor options as
    keywords (:meth:`RunSpec.of`). Returns (plan, outcome): outcome maps cell key -> Outcome;
    empty on a dry run.
    """
    spec = grid if isinstance(grid, RunSpec) else RunSpec.of(grid=grid, **options)
    plan = load_plan(spec)
    if dry_run:
        return plan, {}
    return plan, run_plan(plan, spec, progress=progress)


def grid_rows(grid: str, results: Path = Path("results")) -> list[dict]:
    """``bench grid show --json``: per cell its kind, key, row, status, why and key payload (inputs);
    train cells their nproc and, from one plan (harness.plans.cell_plan, what the stage, its
    launcher and SLURM use), the planner's figures (topology, GPUs, batch, accumulation, GB per device, fits),
    the ``launch`` argv and the ``slurm`` request (gpus, cpus, mem_gb), or why it is refused;
    eval cells also carry their resolved settings (zoo -> grid -> CLI) and their request."""
    from harness.executors.slurm import resources
    from harness.plans import cell_config
    from harness.runner import stage_dir
    from trainers.launch import stage_command

    plan = load_plan(RunSpec(grid=grid, results=results))
    spec = plan.expansion.grid
    gpu = _target(spec).is_gpu
    rows = []
    for cell in plan.expansion.cells:
        st = plan.status[cell.key]
        row = {
            "kind": cell.kind,
            "key": cell.key,
            "model": cell.model,
            "stage": cell.stage,
            "status": st.status,
            "why": st.why,
        }
        try:
            res = resources(cell, spec)
            slurm, refused = {k: res[k] for k in ("gpus", "cpus", "mem_gb")}, None
        except BenchError as e:
            slurm, refused = None, str(e)
        if cell.kind == "train":
            p = _cell_plan(cell, spec.target)
            launch = None
            if p is not None:
                config = stage_dir(results, cell.key) / "launch.yaml"
                cfg = cell_config(cell, spec.target)
                launch = stage_command(cell.method, cfg, p, config, cuda=gpu)
            row |= {
                "method": cell.method,
                "parent_stage": cell.parent_stage,
                "parent_key": cell.parent_key,
                "nproc": cell.resolved["nproc"],
                "topology": p.topology if p else None,
                "gpus": p.gpus if p else None,
                "plan": p.to_dict() if p else None,
                "launch": launch,
            }
        else:
            s = cell.settings
            row |= {
                "load": cell.load,
                "parent_stage": cell.parent_stage,
                "chat_template": s.apply_chat_template,
                "num_fewshot": s.num_fewshot,
                "max_gen_toks": s.max_gen_toks,
                "max_model_len": s.max_model_len,
                "temperature": s.temperature,
                "top_p": s.top_p,
                "repeats": s.repeats,
            }
        row |= {"slurm": slurm} | ({"refused": refused} if refused else {})
        rows.append(row | {"inputs": cell.inputs})
    return rows


def _target(grid):
    from containers.targets import get_target

    return get_target(grid.target)


def _cell_plan(cell, target: str):
    """The cell's plan (harness.plans.cell_plan), or None when the model lacks the facts to plan
    it (bench plan says which)."""
    from harness.plans import cell_plan

    try:
        return cell_plan(cell, target)
    except BenchError:
        return None


def render_leaderboard(
    results: Path,
    *,
    fmt: str = "terminal",
    out: Path | None = None,
    models=None,
    methods=None,
    tasks=None,
) -> str:
    """``bench leaderboard``: ingest (idempotent) then render; ingest warnings go to stderr, one line each."""
    import sys
    import warnings

    from leaderboards import leaderboard

    formats = ("terminal", "md", "markdown", "latex", "csv", "json", "html")
    if fmt not in formats:
        raise BenchError(f"--format: unknown format '{fmt}'; use one of {', '.join(formats)}")
    if out is not None and Path(out).is_dir():
        raise BenchError(
            f"--out {out}: is a directory; name a file, e.g. {Path(out) / 'leaderboard'}.{fmt}"
        )
    if not (Path(results) / "records").exists() and not (Path(results) / "failures").exists():
        raise BenchError(
            f"--results {results}: no records/ there; run `bench train+eval --grid smoke` first"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = leaderboard(results, fmt, out, models=models, methods=methods, tasks=tasks)
    for w in caught:
        sys.stderr.write(f"warning: {w.message}\n")
    return text
