"""lm-eval's own task library (gsm8k, arc_challenge, ifeval, mmlu, ...) in grids and ``bench eval``.

Indexing lm-eval's ~14k built-in YAMLs costs 50-100 s per process, so it happens only when a
name is not one of bench's tasks (:func:`builtin_index`, once per process). Versions come from
the task YAML's ``metadata.version``, as for bench's own tasks; groups and tags resolve to their
leaf tasks. A built-in task reads the data mirror (bench_core.mirror) whenever the mirror holds its
evaluation split, or the hub is off: :func:`task_data` says which splits a task needs, and
:func:`local_overrides` points lm-eval at the mirror's files and drops the splits it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bench_core.mirror import data_dir, held_splits
from bench_core.offline import hub_offline
from harness.errors import BenchError

__all__ = [
    "TaskData",
    "task_data",
    "builtin_index",
    "builtin_leaves",
    "builtin_output_type",
    "local_overrides",
    "builtin_manager_class",
    "with_builtin_index",
]


@cache
def builtin_index() -> dict[str, Any]:
    """lm-eval's task index (name -> Entry with kind, yaml_path, tags); the costly step."""
    from lm_eval.tasks import TaskManager

    return dict(TaskManager(include_defaults=True).task_index)


class _Loader(yaml.SafeLoader):
    """lm-eval's YAML tags read as plain strings: only names, versions and dataset paths are needed."""


_Loader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        f"!{suffix} {node.value}" if isinstance(node, yaml.ScalarNode) else f"!{suffix}"
    ),
)


def _config(path: Path | None, depth: int = 0) -> dict[str, Any]:
    """A built-in task's YAML with its ``include:`` files under it (later ones win)."""
    if path is None or not Path(path).is_file():
        return {}
    data = yaml.load(Path(path).read_text(), Loader=_Loader) or {}  # noqa: S506 - a SafeLoader subclass
    include = data.pop("include", None) if isinstance(data, dict) else None
    if not include or depth > 5:
        return data if isinstance(data, dict) else {}
    merged: dict[str, Any] = {}
    for inc in [include] if isinstance(include, str) else include:
        merged.update(_config(Path(path).parent / inc, depth + 1))
    return merged | data


def builtin_leaves(name: str, depth: int = 0) -> list[tuple[str, str, Path | None]]:
    """(task, version, yaml file) of each leaf task of a built-in task, group or tag; [] if unknown."""
    index = builtin_index()
    entry = index.get(name)
    if entry is None or depth > 8:
        return []
    kind = str(getattr(entry.kind, "name", entry.kind)).lower()
    if kind == "tag":
        members = sorted(n for n, e in index.items() if name in (e.tags or ()) and n != name)
    elif kind == "group":
        members = [
            t if isinstance(t, str) else t.get("task")
            for t in _config(entry.yaml_path).get("task") or []
        ]
    else:
        version = (_config(entry.yaml_path).get("metadata") or {}).get("version", "0")
        return [(name, str(version), entry.yaml_path)]
    return [leaf for m in members if isinstance(m, str) for leaf in builtin_leaves(m, depth + 1)]


def builtin_output_type(task: str) -> str | None:
    """The ``output_type`` of lm-eval's own task ``task`` (generate_until, lm-eval's default,
    when its YAML names none); None when lm-eval has no task of that name."""
    entry = builtin_index().get(task)
    if entry is None:
        return None
    return _config(entry.yaml_path).get("output_type", "generate_until")


# bench's own tasks that read a hub dataset through the mirror (their loaders: tasks/*/utils.py):
# task -> (dataset_path, dataset_name, the splits the loader reads).
OWN_DATASETS = {"math_gsm8k": ("openai/gsm8k", "main", ("test", "train"))}
_ROLES = ("test_split", "validation_split", "training_split", "fewshot_split")


@dataclass(frozen=True)
class TaskData:
    """A task's hub dataset and the splits it names (``test_split: test``, ...), as its YAML says."""

    task: str
    path: str | None
    name: str | None
    roles: dict[str, str] = field(default_factory=dict)  # test_split -> "test", ...

    @property
    def eval_split(self) -> str | None:
        """The split lm-eval scores: the test split, else the validation split."""
        return self.roles.get("test_split") or self.roles.get("validation_split")

    @property
    def fewshot_source(self) -> str | None:
        """Where lm-eval draws few-shot examples: fewshot, else training, else validation split."""
        for role in ("fewshot_split", "training_split", "validation_split"):
            if self.roles.get(role):
                return self.roles[role]
        return None

    def needed(self, num_fewshot: int = 0) -> list[str]:
        """The splits a run reads: the scored one, and the few-shot source when shots are asked."""
        if self.task in OWN_DATASETS:
            return list(OWN_DATASETS[self.task][2])
        wanted = [self.eval_split, self.fewshot_source if num_fewshot > 0 else None]
        return [s for s in dict.fromkeys(wanted) if s]

    def held(self, root: Path | None = None) -> dict[str, Path]:
        """``{split: file}`` of this task's splits that the mirror holds."""
        if not self.path:
            return {}
        return held_splits(self.path, self.name, list(self.roles.values()), root)


def task_data(task: str, yaml_path: Path | None = None) -> TaskData:
    """What a task reads from the hub (``path`` None: nothing, e.g. generated items)."""
    if task in OWN_DATASETS:
        path, name, splits = OWN_DATASETS[task]
        role = {"train": "training_split", "validation": "validation_split"}
        return TaskData(task, path, name, {role.get(s, f"{s}_split"): s for s in splits})
    cfg = _config(yaml_path)
    path = cfg.get("dataset_path")
    if not isinstance(path, str) or cfg.get("custom_dataset") or path in ("json", "parquet"):
        return TaskData(task, None, None)
    name = cfg.get("dataset_name")
    roles = {r: str(cfg[r]) for r in _ROLES if cfg.get(r)}
    return TaskData(task, path, str(name) if name else None, roles)


def local_overrides(
    yaml_path: Path | None, num_fewshot: int = 0, task: str | None = None
) -> dict[str, Any] | None:
    """lm-eval config overrides that point a built-in task at the data mirror's files; None to
    read the hub. The mirror is read when it holds the task's evaluation split or the hub is off;
    the splits it lacks are dropped (PIQA's train split is not read 0-shot), but a few-shot run
    whose few-shot split is missing is an error: lm-eval would quietly draw shots elsewhere."""
    data = task_data(task or (Path(yaml_path).stem if yaml_path else "?"), yaml_path)
    if not data.path or not data.eval_split or data.task in OWN_DATASETS:
        return None
    held, root = data.held(), data_dir()
    label = f"{data.path} {data.name}" if data.name else data.path
    where = f"{root}/{data.path}{'/' + data.name if data.name else ''}" if root else None
    if data.eval_split not in held:
        if not hub_offline(datasets=True):
            return None
        raise BenchError(
            f"{data.task}: split {data.eval_split!r} of {label} is not in the "
            f"data mirror ({where or 'no mirror: set BENCH_DATA_DIR'}) and the hub is off; run "
            f"`bench data pull {data.task}` on a connected machine and copy the mirror here"
        )
    shots = data.fewshot_source
    if num_fewshot > 0 and shots not in held:
        raise BenchError(
            f"{data.task}: {num_fewshot}-shot needs split {shots!r} of {label}, which the "
            f"data mirror ({where}) lacks; run `bench data pull "
            f"{data.task}` on a connected machine, or evaluate 0-shot"
        )
    suffixes = {f.suffix for f in held.values()}
    if len(suffixes) > 1:
        raise BenchError(
            f"{where}: splits in both .jsonl and .parquet; keep one format per dataset folder"
        )
    return {
        "dataset_path": "json" if suffixes == {".jsonl"} else "parquet",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {s: str(f) for s, f in held.items()}},
        **{role: None for role, split in data.roles.items() if split not in held},
    }


def builtin_manager_class(base, num_fewshot: int = 0):
    """A TaskManager subclass (of ``base``) whose built-in tasks read the data mirror."""

    class LocalData(base):
        def _load_spec(self, spec):
            entry = self._entry(spec) if isinstance(spec, str) else None
            if entry is not None and entry.yaml_path is not None:
                overrides = local_overrides(entry.yaml_path, num_fewshot, task=spec)
                if overrides:
                    return self._factory.build(entry, overrides=overrides, registry=self._index)
            return super()._load_spec(spec)

    return LocalData


def with_builtin_index(tm) -> None:
    """Give a TaskManager built with ``include_defaults=False`` lm-eval's built-in tasks from the
    process's cached index (:func:`builtin_index`), its own include_path entries winning as they
    would in ``TaskManager(include_defaults=True)``: one ~50 s index per process, not two."""
    from lm_eval.tasks._index import Kind

    tm._index = {**builtin_index(), **tm._index}
    kinds = {k: e.kind for k, e in tm._index.items()}
    tm._all_tasks = sorted(tm._index)
    tm._all_subtasks = sorted(k for k, v in kinds.items() if v in (Kind.TASK, Kind.PY_TASK))
    tm._all_groups = sorted(k for k, v in kinds.items() if v == Kind.GROUP)
    tm._all_tags = sorted(k for k, v in kinds.items() if v == Kind.TAG)


def quiet_git_hash() -> None:
    """lm-eval stamps its results with ``git describe`` of the working directory, letting git
    print "fatal: not a git repository" outside a checkout; bench stamps its own commit in the
    record, so lm-eval's is asked of git quietly."""
    import lm_eval.evaluator

    from bench_core.gitinfo import git_state

    lm_eval.evaluator.get_git_commit_hash = lambda: git_state()[0]
