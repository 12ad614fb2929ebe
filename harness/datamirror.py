"""``bench data pull`` and ``bench data ls``: fill the data mirror on a connected machine, and say
what each task needs and what the mirror holds (the layout: bench_core.mirror).

``pull`` reads each task's dataset with ``datasets.load_dataset(dataset_path, dataset_name)``,
split by split, from the hub, or from ``source``: a folder of ``datasets`` repositories laid out
as the hub's ids (``SOURCE/allenai/ai2_arc``: a clone of the hub's repository, say), and writes
``<mirror>/<dataset_path>[/<dataset_name>]/<split>.jsonl`` with the hub's columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench_core.mirror import LEGACY_FILES, data_dir, dataset_folder, files_identity
from bench_core.offline import hub_offline
from harness.errors import BenchError
from harness.lmeval_tasks import OWN_DATASETS, TaskData, task_data

__all__ = ["TaskMirror", "data_ls", "data_pull", "mirror_contents", "mirror_identity"]


@dataclass(frozen=True)
class TaskMirror:
    """One task's row of ``bench data ls``."""

    task: str
    dataset: str  # "allenai/ai2_arc ARC-Easy"; "" when the task reads no hub dataset
    needed: tuple[str, ...]  # 0-shot: the scored split (bench's own loaders: what they read)
    fewshot: str | None  # the split k-shot draws from
    held: dict[str, int]  # split -> rows in the mirror

    @property
    def status(self) -> str:
        if not self.dataset:
            return "no hub data"
        missing = [s for s in self.needed if s not in self.held]
        if missing:
            return f"missing {', '.join(missing)}"
        if self.fewshot and self.fewshot not in self.held:
            return f"0-shot only (no {self.fewshot})"
        return "ready"


def _tasks(names: list[str]) -> list[TaskData]:
    from harness.taskinfo import resolve_tasks

    return [task_data(info.name, info.file) for info in resolve_tasks(names, where="bench data")]


def _rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def data_ls(tasks: list[str], root: Path | None = None) -> list[TaskMirror]:
    """What each task needs from the mirror and what the mirror holds for it."""
    rows = []
    for data in _tasks(tasks):
        dataset = f"{data.path} {data.name}" if data.name else (data.path or "")
        held = {s: _rows(f) for s, f in data.held(root).items()}
        rows.append(
            TaskMirror(data.task, dataset, tuple(data.needed(0)), data.fewshot_source, held)
        )
    return rows


def mirror_contents(root: Path | None = None) -> dict[str, dict[str, int]]:
    """Every dataset folder of the mirror: ``{"allenai/ai2_arc/ARC-Easy": {"test": 2376, ...}}``."""
    root = root if root is not None else data_dir()
    if root is None or not root.is_dir():
        return {}
    out: dict[str, dict[str, int]] = {}
    for suffix in ("jsonl", "parquet"):
        for f in sorted(root.rglob(f"*.{suffix}")):
            if f.parent == root:
                continue  # files at the top are not in the layout (GSM8K's earlier names)
            out.setdefault(str(f.parent.relative_to(root)), {})[f.stem] = _rows(f)
    for (
        path,
        name,
    ), files in LEGACY_FILES.items():  # earlier names, read where the layout lacks them
        folder = f"{path}/{name}"
        for split, file in files.items():
            if (root / file).is_file() and split not in out.get(folder, {}):
                out.setdefault(folder, {})[f"{split} ({file})"] = _rows(root / file)
    return dict(sorted(out.items()))


def data_pull(tasks: list[str], root: Path | None = None, source: Path | None = None) -> list[Path]:
    """Write every split each task's YAML names (so k-shot runs offline too); the files written."""
    root = root if root is not None else data_dir()
    if root is None:
        raise BenchError("bench data pull: no data mirror; set BENCH_DATA_DIR or pass --to DIR")
    if source is None and hub_offline(datasets=True):
        raise BenchError(
            "bench data pull: the hub is off (HF_HUB_OFFLINE); run it on a connected machine, "
            "or pass --from DIR (a folder of datasets repositories named as on the hub)"
        )
    import datasets

    written = []
    for data in _tasks(tasks):
        if not data.path:
            continue
        where = str(source / data.path) if source is not None else data.path
        if source is not None and not Path(where).is_dir():
            raise BenchError(
                f"--from {source}: no folder {data.path} for task {data.task}; "
                "lay the repositories out as their hub ids"
            )
        folder = dataset_folder(data.path, data.name, root)
        for split in dict.fromkeys(data.roles.values()):
            ds = datasets.load_dataset(where, data.name, split=split)
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{split}.jsonl.tmp"
            ds.to_json(str(tmp), lines=True, force_ascii=False)
            os.replace(tmp, folder / f"{split}.jsonl")
            written.append(folder / f"{split}.jsonl")
    return written


def mirror_identity(
    tasks: list[str], num_fewshot: int = 0, root: Path | None = None
) -> dict[str, dict[str, str]]:
    """``{task: {split: sha256 prefix}}`` of the mirror files each task reads (its scored split
    and, with shots, its few-shot split): part of the eval cell's key."""
    from harness.taskinfo import resolve_tasks

    out = {}
    for info in resolve_tasks(tasks):
        data = task_data(info.name, info.file)
        held = data.held(root)
        if data.task not in OWN_DATASETS and data.eval_split not in held:
            continue  # the hub (online) or an error at run time: no mirror file is read
        files = {s: held[s] for s in data.needed(num_fewshot) if s in held}
        if files:
            out[info.name] = files_identity(files)
    return out
