"""Task names and versions read from the YAMLs under ``tasks/`` without importing lm-eval.

Cell keys need each task's ``metadata.version``; reading YAML is instant, while building
lm-eval's TaskManager takes seconds. lm-eval itself still loads the tasks for a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from harness.errors import BenchError, closest

__all__ = [
    "TaskInfo",
    "builtin_generates",
    "task_index",
    "resolve_tasks",
    "task_family",
    "task_verifiers",
]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor(
    "!function", lambda loader, node: f"!function {loader.construct_scalar(node)}"
)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    version: str
    file: Path
    members: tuple[str, ...] = field(default_factory=tuple)  # for groups


def _load(path: Path, depth: int = 0) -> dict:
    data = yaml.load(path.read_text(), Loader=_Loader) or {}
    include = data.pop("include", None)
    if include and depth < 5:
        merged: dict = {}
        for inc in [include] if isinstance(include, str) else include:  # later includes win
            if (path.parent / inc).exists():
                merged.update(_load(path.parent / inc, depth + 1))
        merged.update(data)
        data = merged
    return data


@cache
def task_index(tasks_dir: Path | None = None) -> dict[str, TaskInfo]:
    from tasks import TASKS_DIR

    root = tasks_dir or TASKS_DIR
    index: dict[str, TaskInfo] = {}
    groups: dict[str, tuple[Path, list[str], str | None]] = {}
    tags: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.yaml")):
        data = _load(path)
        version = str((data.get("metadata") or {}).get("version", "0"))
        if "group" in data and isinstance(data.get("task"), list):
            members = [t if isinstance(t, str) else t.get("task") for t in data["task"]]
            groups[str(data["group"])] = (
                path,
                members,
                (data.get("metadata") or {}).get("version"),
            )
        elif isinstance(data.get("task"), str):
            index[data["task"]] = TaskInfo(data["task"], version, path)
            tag = data.get("tag")
            for t in [tag] if isinstance(tag, str) else (tag or []):
                tags.setdefault(t, []).append(data["task"])
    for name, members in tags.items():
        if name not in index:
            index[name] = TaskInfo(name, "tag", root, tuple(members))
    for name, (path, members, version) in groups.items():
        index[name] = TaskInfo(name, str(version or "group"), path, tuple(members))
    return index


def builtin_generates(task: str) -> bool:
    """Whether ``task`` is one of lm-eval's own tasks that generates its answer; False for
    bench's tasks, without indexing lm-eval's."""
    if task in task_index():
        return False
    from harness.lmeval_tasks import builtin_output_type

    return builtin_output_type(task) == "generate_until"


def resolve_tasks(names: list[str], where: str = "tasks") -> list[TaskInfo]:
    """Expand groups and tags into leaf tasks (name, version); unknown names fail with a hint."""
    index = task_index()
    out: list[TaskInfo] = []
    for name in names:
        if name not in index:  # lm-eval's own library, indexed only now (it costs a minute)
            from harness.lmeval_tasks import builtin_index, builtin_leaves

            builtin = [TaskInfo(n, v, Path(f) if f else Path()) for n, v, f in builtin_leaves(name)]
            if not builtin:
                known = [*index, *builtin_index()]
                raise BenchError(
                    f"{where}: unknown task '{name}'{closest(name, known)}; see `bench tasks list` "
                    "(bench's tasks) or `lm-eval ls tasks`"
                )
            out.extend(t for t in builtin if t not in out)
            continue
        info = index[name]
        leaves = resolve_tasks(list(info.members), where) if info.members else [info]
        out.extend(t for t in leaves if t not in out)
    return out


def task_family(name: str) -> str | None:
    """The task family (``tasks.FAMILIES``: the folder under tasks/) of bench task ``name``;
    None for lm-eval's own tasks."""
    from tasks import FAMILIES, TASKS_DIR

    info = task_index().get(name)
    if info is None or not info.file.is_relative_to(TASKS_DIR) or info.file.parent == TASKS_DIR:
        return None
    folder = info.file.relative_to(TASKS_DIR).parts[0]
    return folder if folder in FAMILIES else None


def task_verifiers(name: str) -> dict[str, str]:
    """Versions of the verifiers that score ``name`` (its family's and those the family uses)."""
    from tasks import verifier_versions

    family = task_family(name)
    return verifier_versions(family) if family else {}
