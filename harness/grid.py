"""Grid specs (YAML, pydantic-validated) and their expansion into keyed train and eval cells.

A recipe ``[distill, grpo]`` on model M yields stages ``base``, ``distill`` and
``distill+grpo``; each stage trains from its parent's checkpoint, and every stage is
evaluated on all of the grid's tasks in one eval cell. Shared prefixes of several
recipes are one cell (same key), so they train once. A published checkpoint (a zoo
entry with a ``lineage``) is a row of its own, labelled by its zoo name, with its
lineage parent as the row it is compared with.

A grid is loaded, validated and expanded once (:func:`load_grid`, :func:`expand`); the
cells carry their resolved config, resolved eval settings and key payload (``inputs``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench_core.errors import pydantic_reason
from bench_core.yamlio import DuplicateKeyError, load_strict
from harness.backends import BACKENDS
from harness.errors import BenchError, closest
from harness.keys import content_key, eval_inputs, train_inputs
from harness.settings import EvalSettings, ResolvedEval, resolve_eval

__all__ = [
    "GRIDS_DIR",
    "EvalSettings",
    "GridSpec",
    "TrainCell",
    "EvalCell",
    "Expansion",
    "list_grids",
    "load_grid",
    "expand",
    "eval_cell",
    "weights_key",
]

GRIDS_DIR = Path(__file__).with_name("grids")

# Set by the harness for every stage; a grid that sets them would fight the runner.
_HARNESS_FIELDS = {"model", "parent", "output_dir", "target", "seed"}
# Decided by the zoo alone: code from a model repo runs only where the zoo declares it.
_ZOO_FIELDS = {"trust_remote_code"}


class GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    models: list[str]
    published: list[str] = Field(default_factory=list)  # eval-only published stages (zoo lineage)
    recipes: list[list[str]] = Field(default_factory=list)
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    per_model: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict
    )  # model -> step -> delta
    tasks: list[str]
    eval: EvalSettings = EvalSettings()
    target: str = "cpu"  # checked against containers/targets.yaml at load (_check_references)
    seed: int = Field(default=0, ge=0, lt=2**32)
    # the data mirror its cells read; default $BENCH_DATA_DIR, else ../shared/data
    data_dir: str | None = None

    @field_validator("models", "tasks")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one entry")
        return v

    @field_validator("name")
    @classmethod
    def _file_name(cls, v: str) -> str:
        # the name is a folder (the SLURM job folder under --results) and a row label
        if not _GRID_NAME.fullmatch(v) or ".." in v:
            raise ValueError(
                "must be letters, digits, '_', '-' or '.' (at most 100; no '/', '..' or spaces)"
            )
        return v


_GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True, kw_only=True)
class TrainCell:
    key: str
    model: str
    stage: str
    step: str
    method: str
    config: dict[str, Any] = field(hash=False)  # the grid's delta for this model and step
    resolved: dict[str, Any] = field(hash=False)  # every field of the method's config
    parent_key: str | None
    parent_stage: str
    inputs: dict[str, Any] = field(hash=False, repr=False)

    kind = "train"

    @property
    def cell_id(self) -> str:
        return f"{self.model}/{self.stage}"

    @property
    def needs(self) -> str | None:
        return self.parent_key


@dataclass(frozen=True, kw_only=True)
class EvalCell:
    key: str
    model: str  # the row's model: the zoo name, or the lineage root of a published stage
    stage: str  # base, a method path (distill+grpo) or a published stage's zoo name
    load: str  # zoo name to load for base/published stages
    train_key: str | None  # the stage checkpoint to load for trained stages
    tasks: tuple[tuple[str, str], ...]
    settings: ResolvedEval = field(hash=False)
    recipe: tuple[str, ...]  # methods from the root model to this row
    weights: str  # weights key of what is evaluated (train key, or a hash of the model identity)
    parent_weights: str | None  # the row this one is compared with as its parent
    base_weights: str  # the lineage root's weights key
    parent_stage: str | None
    trust_remote_code: bool = False
    inputs: dict[str, Any] = field(default_factory=dict, hash=False, repr=False)

    kind = "eval"

    @property
    def cell_id(self) -> str:
        return f"{self.model}/{self.stage}"

    @property
    def needs(self) -> str | None:
        return self.train_key


@dataclass
class Expansion:
    grid: GridSpec
    train: list[TrainCell]
    eval: list[EvalCell]

    @property
    def cells(self) -> list[TrainCell | EvalCell]:
        return [*self.train, *self.eval]

    def cell(self, key: str) -> TrainCell | EvalCell | None:
        return next((c for c in self.cells if c.key == key), None)


def list_grids() -> list[str]:
    return sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))


def _grid_file(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = GRIDS_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    what = (
        f"grid path '{name_or_path}' is not a file"
        if path.exists()
        else f"unknown grid '{name_or_path}'"
    )
    raise BenchError(
        f"{what}{closest(name_or_path, list_grids())}: "
        f"known grids: {', '.join(list_grids())}; or pass a path to a grid YAML file"
    )


def load_grid(name_or_path: str, **eval_overrides: Any) -> GridSpec:
    """Load and validate a grid; every mistake becomes one line naming file, field and fix.

    ``eval_overrides`` (``backend``, ``limit``, ...: the CLI's) replace the grid's eval
    settings; ``None`` leaves a setting as the grid has it.
    """
    path = _grid_file(name_or_path)
    try:
        raw = load_strict(path.read_text()) or {}
    except DuplicateKeyError as e:  # safe_load would keep the last one silently
        raise BenchError(f"{path}: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise BenchError(f"{path}: cannot read the grid ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise BenchError(
            f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax"
        ) from e
    except UnicodeDecodeError:
        raise BenchError(f"{path}: not a text file; a grid is a YAML mapping") from None
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: a grid is a mapping with fields name, models, recipes, tasks")
    raw.setdefault("name", path.stem)
    overrides = {k: v for k, v in eval_overrides.items() if v is not None}
    if overrides:
        raw["eval"] = {**(raw.get("eval") or {}), **overrides}
    try:
        grid = GridSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if loc.startswith("eval.") and loc.split(".", 1)[1] in overrides:
            where = f"--{loc.split('.', 1)[1].replace('_', '-')}"
            raise BenchError(
                f"{where} {overrides[loc.split('.', 1)[1]]}: {pydantic_reason(err)}"
            ) from None
        fix = {
            "extra_forbidden": "remove it or check its spelling",
            "missing": "add it",
        }.get(err["type"], "see harness/grids/smoke.yaml for a valid grid")
        raise BenchError(f"{path}: field '{loc}': {pydantic_reason(err)}; {fix}") from None
    _check_references(grid, path)
    return grid


def _check_references(grid: GridSpec, path: Path) -> None:
    from harness.taskinfo import resolve_tasks
    from harness.zoo import get_model, load_zoo
    from trainers import METHODS

    for i, name in enumerate(grid.models):
        try:
            get_model(name)
        except BenchError as e:
            raise BenchError(f"{path}: field 'models.{i}': {e}") from None
    from containers.targets import load_targets

    targets = load_targets()
    if grid.target not in targets:  # else every cell would fail on it after its model loaded
        raise BenchError(
            f"{path}: field 'target': unknown hardware target '{grid.target}'"
            f"{closest(grid.target, targets)}; targets (containers/targets.yaml): {', '.join(targets)}"
        )
    _check_image(grid, targets[grid.target], path)
    zoo = load_zoo()
    for i, name in enumerate(grid.published):
        if name not in zoo or zoo[name].lineage is None:
            raise BenchError(
                f"{path}: field 'published.{i}': '{name}' has no lineage in the model zoo{closest(name, zoo)}; "
                "list plain models under `models:`"
            )
    for step, cfg in grid.steps.items():
        method = cfg.get("method", step)
        if method not in METHODS:
            raise BenchError(
                f"{path}: field 'steps.{step}.method': unknown method '{method}'{closest(method, METHODS)}; methods: {', '.join(METHODS)}"
            )
    steps = {*grid.steps, *METHODS}
    for r, recipe in enumerate(grid.recipes):
        for j, step in enumerate(recipe):
            if step not in steps:
                raise BenchError(
                    f"{path}: field 'recipes.{r}.{j}': unknown step '{step}'{closest(step, steps)}; "
                    "define it under `steps:` or use a method name"
                )
    for model, deltas in grid.per_model.items():
        if model not in grid.models:
            raise BenchError(
                f"{path}: field 'per_model.{model}': not one of the grid's models{closest(model, grid.models)}"
            )
        for step in deltas:
            if step not in steps:
                raise BenchError(
                    f"{path}: field 'per_model.{model}.{step}': unknown step{closest(step, steps)}"
                )
    for model in grid.models:
        for step in {s for recipe in grid.recipes for s in recipe}:
            _step_config(
                grid, model, step, path
            )  # every field checked by type, before anything runs
    resolve_tasks(grid.tasks, where=f"{path}: field 'tasks'")


def _check_image(grid: GridSpec, target, path: Path) -> None:
    """A backend or vLLM rollouts wanted where the target's image lacks them. A GPU target runs
    in its image (the CPU lane's vLLM is a venv of its own, so a cpu target is not checked)."""
    if not target.is_gpu:
        return
    package = BACKENDS[grid.eval.backend].image_package
    if package and not target.installs(package):
        raise BenchError(
            f"{path}: field 'eval.backend': {package} is not in target {grid.target}'s image "
            "(containers/targets.yaml extras); use backend: hf"
        )
    if target.has_vllm:
        return
    deltas = [(f"steps.{s}", c) for s, c in grid.steps.items()]
    deltas += [(f"per_model.{m}.{s}", c) for m, d in grid.per_model.items() for s, c in d.items()]
    for where, cfg in deltas:
        if str(cfg.get("use_vllm", "auto")).lower() == "true":
            raise BenchError(
                f"{path}: field '{where}.use_vllm': true, but vllm is not in target "
                f"{grid.target}'s image; use use_vllm: auto (HF rollouts)"
            )


def _step_config(
    grid: GridSpec, model: str, step: str, path: Path | None = None
) -> tuple[str, dict, dict]:
    """(method, the grid's delta, the resolved config) for ``step`` on ``model``."""
    from trainers import resolved_config

    base = dict(grid.steps.get(step, {}))
    own = dict(grid.per_model.get(model, {}).get(step, {}))
    method = own.pop("method", None) or base.pop("method", step)
    base.pop("method", None)
    delta = {**base, **own}
    where = f"{path}: field 'steps.{step}" if path else f"grid {grid.name}: step '{step}"
    for key in delta:
        if key in _HARNESS_FIELDS:
            raise BenchError(
                f"{where}.{key}': set by the harness for every stage; remove it from the grid "
                f"(see trainers/{method}_config.py for the fields a grid may set)"
            )
        if key in _ZOO_FIELDS:
            raise BenchError(
                f"{where}.{key}': only the model zoo may declare trust_remote_code "
                "(harness/models.yaml or $BENCH_MODELS); remove it from the grid"
            )
    import dataclasses

    from trainers import FieldError, method_config

    fields = (
        {f.name for f in dataclasses.fields(method_config(method))} - _HARNESS_FIELDS - _ZOO_FIELDS
    )
    for key in delta:
        if key not in fields:
            raise BenchError(
                f"{where}.{key}': not a {method} setting{closest(key, fields)}; "
                f"see trainers/{method}_config.py for its config fields"
            )
    try:
        resolved = resolved_config(method, delta)
    except FieldError as e:  # type or range of one field: name it as the grid spells it
        raise BenchError(
            f"{where}.{e.field}': {e.reason}; see trainers/{method}_config.py for its config fields"
        ) from None
    except (BenchError, TypeError) as e:  # across fields, or a value of the wrong type
        raise BenchError(
            f"{where}': {str(e).splitlines()[0]}; see trainers/{method}_config.py for its config fields"
        ) from None
    if "nproc" not in delta:
        try:
            nproc = _planned_nproc(grid, model, method, resolved)
        except BenchError as e:  # the planner's or the zoo's one line, said of this step
            raise BenchError(f"{where}': {str(e).splitlines()[0]}") from None
        if nproc != resolved["nproc"]:
            delta["nproc"] = resolved["nproc"] = nproc
    return method, delta, resolved


def _planned_nproc(grid: GridSpec, model: str, method: str, resolved: dict) -> int:
    """An unset nproc on a GPU target: the GPUs the planner shards the stage over (1 if it fits
    one), so the stage, its launch and its SLURM request run on what the plan needs."""
    from containers.targets import get_target
    from harness.zoo import planner_facts
    from trainers.planner import plan_config

    if not get_target(grid.target).is_gpu:
        return resolved["nproc"]
    p = plan_config(planner_facts(model), method, grid.target, resolved, search_gpus=True)
    return p.gpus


def weights_key(identity: str) -> str:
    """A short key for the weights of a zoo model (its identity string hashed)."""
    return content_key({"weights": identity})


def eval_cell(
    grid: GridSpec,
    *,
    tasks: tuple[tuple[str, str], ...],
    spec,
    row_model: str,
    stage: str,
    recipe: tuple[str, ...],
    load: str,
    train_key: str | None,
    identity: str | None,
    parent_weights: str | None,
    base_weights: str | None,
    parent_stage: str | None,
) -> EvalCell:
    """The one place an eval cell is made: settings resolved for ``spec`` (zoo -> grid), key payload, key."""
    from harness.datamirror import mirror_identity

    settings = resolve_eval(spec, grid.eval, [t for t, _ in tasks])
    root = Path(grid.data_dir).expanduser() if grid.data_dir else None
    inputs = eval_inputs(
        weights=identity,
        train=train_key,
        tasks=dict(tasks),
        settings=settings.model_dump(),
        trust_remote_code=spec.trust_remote_code,
        seed=grid.seed,
        target=grid.target,
        data=mirror_identity([t for t, _ in tasks], settings.num_fewshot, root),
    )
    key = content_key(inputs)
    weights = train_key or weights_key(identity or "")
    return EvalCell(
        key=key,
        model=row_model,
        stage=stage,
        load=load,
        train_key=train_key,
        tasks=tasks,
        settings=settings,
        recipe=recipe,
        weights=weights,
        parent_weights=parent_weights,
        base_weights=base_weights or weights,
        parent_stage=parent_stage,
        trust_remote_code=spec.trust_remote_code,
        inputs=inputs,
    )


def expand(grid: GridSpec) -> Expansion:
    from harness.taskinfo import resolve_tasks
    from harness.zoo import get_model, model_identity

    tasks = tuple((t.name, t.version) for t in resolve_tasks(grid.tasks))
    train: dict[str, TrainCell] = {}
    evals: dict[str, EvalCell] = {}

    def add_eval(**fields: Any) -> str:
        cell = eval_cell(grid, tasks=tasks, **fields)
        evals.setdefault(cell.key, cell)
        return cell.weights

    for model in grid.models:
        spec = get_model(model)
        identity = model_identity(spec)
        base = add_eval(
            spec=spec,
            row_model=spec.name,
            stage="base",
            recipe=(),
            load=model,
            train_key=None,
            identity=identity,
            parent_weights=None,
            base_weights=weights_key(identity),
            parent_stage=None,
        )
        for recipe in grid.recipes:
            parent_key, parent_stage = None, "base"
            for i, step in enumerate(recipe):
                method, delta, resolved = _step_config(grid, model, step)
                stage = "+".join(recipe[: i + 1])
                inputs = train_inputs(
                    weights=identity,
                    parent=parent_key,
                    step=step,
                    method=method,
                    config=resolved,
                    trust_remote_code=spec.trust_remote_code,
                    seed=grid.seed,
                    target=grid.target,
                )
                key = content_key(inputs)
                train.setdefault(
                    key,
                    TrainCell(
                        key=key,
                        model=spec.name,
                        stage=stage,
                        step=step,
                        method=method,
                        config=delta,
                        resolved=resolved,
                        parent_key=parent_key,
                        parent_stage=parent_stage,
                        inputs=inputs,
                    ),
                )
                add_eval(
                    spec=spec,
                    row_model=spec.name,
                    stage=stage,
                    recipe=tuple(recipe[: i + 1]),
                    load=model,
                    train_key=key,
                    identity=None,
                    parent_weights=parent_key or base,
                    base_weights=base,
                    parent_stage=parent_stage,
                )
                parent_key, parent_stage = key, stage
    for name in grid.published:
        chain = _lineage(name)  # root first
        root = get_model(chain[0])
        root_weights = weights_key(model_identity(root))
        spec = get_model(name)
        parent = chain[-2]
        parent_weights = (
            root_weights if parent == root.name else weights_key(model_identity(get_model(parent)))
        )
        recipe = tuple(get_model(n).lineage.method for n in chain[1:])
        add_eval(
            spec=spec,
            row_model=root.name,
            stage=name,
            recipe=recipe,
            load=name,
            train_key=None,
            identity=model_identity(spec),
            parent_weights=parent_weights,
            base_weights=root_weights,
            parent_stage="base" if parent == root.name else parent,
        )
    return Expansion(grid, list(train.values()), list(evals.values()))


def _lineage(name: str) -> list[str]:
    """Zoo names from the lineage root to ``name`` (a cycle is an error, never a hang)."""
    from harness.zoo import lineage_chain

    return lineage_chain(name)
