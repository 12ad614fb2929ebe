"""Grid specs (YAML, pydantic-validated) and their expansion into keyed train and eval cells.

A recipe ``[distill, grpo]`` on model M yields stages ``base``, ``distill`` and
``distill+grpo``; each stage trains from its parent's checkpoint, and every stage is
evaluated on all of the grid's tasks in one eval cell. Shared prefixes of several
recipes are one cell (same key), so they train once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import BenchError, closest
from harness.keys import KEY_PACKAGES, content_key, data_identity, package_versions

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
    "eval_key",
]

GRIDS_DIR = Path(__file__).with_name("grids")
METHODS = ("sft", "distill", "dpo", "grpo")


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: Literal["hf", "vllm"] = "hf"
    limit: int | None = Field(default=None, ge=1)
    num_fewshot: int = Field(default=0, ge=0)
    apply_chat_template: bool = True
    gen_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | Literal["auto"] = 8  # a speed knob: not part of the cell key


class GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    models: list[str]
    published: list[str] = Field(default_factory=list)  # eval-only published stages (zoo lineage)
    recipes: list[list[str]] = Field(default_factory=list)
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tasks: list[str]
    eval: EvalSettings = EvalSettings()
    target: str = "cpu"
    seed: int = 0

    @field_validator("models", "tasks")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one entry")
        return v


@dataclass(frozen=True)
class TrainCell:
    key: str
    model: str
    stage: str
    step: str
    method: str
    config: dict[str, Any] = field(hash=False)
    parent_key: str | None
    parent_stage: str

    kind = "train"

    @property
    def cell_id(self) -> str:
        return f"{self.model}/{self.stage}"


@dataclass(frozen=True)
class EvalCell:
    key: str
    model: str  # the model the row belongs to (root of a published lineage)
    stage: str
    load: str  # zoo name to load for base/published stages
    train_key: str | None  # the stage checkpoint to load for trained stages
    tasks: tuple[tuple[str, str], ...]
    settings: EvalSettings = field(hash=False)

    kind = "eval"

    @property
    def cell_id(self) -> str:
        return f"{self.model}/{self.stage}"


@dataclass
class Expansion:
    grid: GridSpec
    train: list[TrainCell]
    eval: list[EvalCell]

    @property
    def cells(self) -> list[TrainCell | EvalCell]:
        return [*self.train, *self.eval]


def list_grids() -> list[str]:
    return sorted(p.stem for p in GRIDS_DIR.glob("*.yaml"))


def _grid_file(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = GRIDS_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    raise BenchError(
        f"unknown grid '{name_or_path}'{closest(name_or_path, list_grids())}: "
        f"known grids: {', '.join(list_grids())}; or pass a path to a grid YAML"
    )


def load_grid(name_or_path: str) -> GridSpec:
    """Load and validate a grid; every mistake becomes one line naming file, field and fix."""
    path = _grid_file(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise BenchError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from e
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: a grid is a mapping with fields name, models, recipes, tasks")
    raw.setdefault("name", path.stem)
    try:
        grid = GridSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        fix = {
            "extra_forbidden": "remove it or check its spelling",
            "missing": "add it",
        }.get(err["type"], "see harness/grids/smoke.yaml for a valid grid")
        raise BenchError(f"{path}: field '{loc}': {err['msg']}; {fix}") from e
    _check_references(grid, path)
    return grid


def _check_references(grid: GridSpec, path: Path) -> None:
    from harness.taskinfo import resolve_tasks
    from harness.zoo import get_model, load_zoo

    for i, name in enumerate(grid.models):
        try:
            get_model(name)
        except BenchError as e:
            raise BenchError(f"{path}: field 'models.{i}': {e}") from None
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
            raise BenchError(f"{path}: field 'steps.{step}.method': unknown method '{method}'{closest(method, METHODS)}; methods: {', '.join(METHODS)}")
        _check_step_fields(path, step, method, cfg)
    for r, recipe in enumerate(grid.recipes):
        for j, step in enumerate(recipe):
            if step not in grid.steps and step not in METHODS:
                raise BenchError(
                    f"{path}: field 'recipes.{r}.{j}': unknown step '{step}'{closest(step, [*grid.steps, *METHODS])}; "
                    "define it under `steps:` or use a method name"
                )
    resolve_tasks(grid.tasks, where=f"{path}: field 'tasks'")


# Set by the harness for every stage; a grid that sets them would fight the runner.
_HARNESS_FIELDS = {"model", "parent", "output_dir", "target", "seed"}


def _check_step_fields(path: Path, step: str, method: str, cfg: dict[str, Any]) -> None:
    """Every key of a step must be a field of its method's config dataclass."""
    import dataclasses

    from trainers import method_config

    fields = {f.name for f in dataclasses.fields(method_config(method))} - _HARNESS_FIELDS
    for key in cfg:
        if key != "method" and key not in fields:
            raise BenchError(
                f"{path}: field 'steps.{step}.{key}': not a {method} setting{closest(key, fields)}; "
                f"see trainers/{method}.py for its config fields"
            )


def _lineage_path(name: str) -> tuple[str, list[str]]:
    """(root model, methods from root to this published checkpoint)."""
    from harness.zoo import load_zoo

    zoo, methods = load_zoo(), []
    while zoo[name].lineage is not None:
        methods.insert(0, zoo[name].lineage.method)
        name = zoo[name].lineage.parent
    return name, methods


def eval_key(identity: str | None, train_key: str | None, tasks: tuple[tuple[str, str], ...],
             settings: EvalSettings, seed: int, target: str) -> str:
    """What determines an eval cell's scores; ``batch_size`` is a speed knob and stays out."""
    packages = package_versions(KEY_PACKAGES["eval"] + (("vllm",) if settings.backend == "vllm" else ()))
    return content_key({"kind": "eval", "model": identity, "train": train_key, "tasks": tasks,
                        "eval": settings.model_dump(exclude={"batch_size"}), "packages": packages,
                        "seed": seed, "target": target})


def expand(grid: GridSpec) -> Expansion:
    from harness.taskinfo import resolve_tasks
    from harness.zoo import get_model, model_identity

    tasks = tuple((t.name, t.version) for t in resolve_tasks(grid.tasks))
    train_packages = package_versions(KEY_PACKAGES["train"])

    train: dict[str, TrainCell] = {}
    evals: dict[str, EvalCell] = {}

    def add_eval(model: str, stage: str, load: str, train_key: str | None, identity: str | None) -> None:
        key = eval_key(identity, train_key, tasks, grid.eval, grid.seed, grid.target)
        evals.setdefault(key, EvalCell(key, model, stage, load, train_key, tasks, grid.eval))

    for model in grid.models:
        spec = get_model(model)
        identity = model_identity(spec)
        add_eval(spec.name, "base", model, None, identity)
        for recipe in grid.recipes:
            parent_key, parent_stage = None, "base"
            for i, step in enumerate(recipe):
                cfg = dict(grid.steps.get(step, {}))
                method = cfg.pop("method", step)
                stage = "+".join(recipe[: i + 1])
                payload = {"kind": "train", "model": identity, "parent": parent_key, "method": method,
                           "config": data_identity(cfg), "packages": train_packages,
                           "seed": grid.seed, "target": grid.target}
                key = content_key(payload)
                train.setdefault(key, TrainCell(key, spec.name, stage, step, method, cfg, parent_key, parent_stage))
                add_eval(spec.name, stage, model, key, None)
                parent_key, parent_stage = key, stage
    for name in grid.published:
        root, methods = _lineage_path(name)
        add_eval(root, "+".join(methods), name, None, model_identity(get_model(name)))
    return Expansion(grid, list(train.values()), list(evals.values()))
