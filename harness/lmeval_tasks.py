"""lm-eval's own task library (gsm8k, arc_challenge, ifeval, mmlu, ...) in grids and ``bench eval``.

Indexing lm-eval's ~14k built-in YAMLs costs 50-100 s per process, so it happens only when a
name is not one of bench's tasks (:func:`builtin_index`, once per process). Versions come from
the task YAML's ``metadata.version``, as for bench's own tasks; groups and tags resolve to their
leaf tasks. A built-in task whose hub dataset has a local copy (``LOCAL_DATASETS``: GSM8K under
the data folder) reads that file instead, so it runs offline.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LOCAL_DATASETS",
    "builtin_index",
    "builtin_leaves",
    "local_overrides",
    "builtin_manager_class",
]

# hub dataset_path -> {split: file name under the data folder (tasks.math.gsm8k.data_dir)}
LOCAL_DATASETS = {
    "gsm8k": {"test": "gsm8k_test.jsonl", "train": "gsm8k_train.jsonl"},
    "openai/gsm8k": {"test": "gsm8k_test.jsonl", "train": "gsm8k_train.jsonl"},
}


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


def local_overrides(yaml_path: Path | None) -> dict[str, Any] | None:
    """lm-eval config overrides that point a built-in task's dataset at a local file, if one exists."""
    from tasks.math.gsm8k import data_dir

    files = LOCAL_DATASETS.get(str(_config(yaml_path).get("dataset_path")))
    folder = data_dir()
    if not files or folder is None or not all((folder / f).is_file() for f in files.values()):
        return None
    return {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(folder / f) for split, f in files.items()}},
    }


def builtin_manager_class(base):
    """A TaskManager subclass (of ``base``) whose built-in tasks read their local data files."""

    class LocalData(base):
        def _load_spec(self, spec):
            if isinstance(spec, str) and self._entry(spec) is not None:
                overrides = local_overrides(self._entry(spec).yaml_path)
                if overrides:
                    return self._factory.build(
                        self._entry(spec), overrides=overrides, registry=self._index
                    )
            return super()._load_spec(spec)

    return LocalData
