"""The data mirror: hub datasets as files, for machines without internet.

The layout is the contract between a connected machine (``bench data pull``) and an offline
one (every reader of hub data)::

    DATA_DIR/<dataset_path>[/<dataset_name>]/<split>.jsonl   (or .parquet)

``dataset_path`` and ``dataset_name`` are as a task's YAML (or a trainer's ``hub:`` spec)
writes them, and the columns are the hub's: ``allenai/ai2_arc/ARC-Easy/test.jsonl``,
``baber/piqa/validation.jsonl``, ``openai/gsm8k/main/test.jsonl``. ``DATA_DIR`` is
``$BENCH_DATA_DIR``, else ``../shared/data`` beside the checkout when that folder exists.
GSM8K's earlier file names (``gsm8k_{train,test}.jsonl`` at the top of the folder) are still
read when the layout's files are absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_core.errors import BenchError
from bench_core.hashing import file_digest

__all__ = [
    "DATA_ENV",
    "LEGACY_FILES",
    "SUFFIXES",
    "data_dir",
    "dataset_folder",
    "split_file",
    "held_splits",
    "files_identity",
    "mirror_rows",
    "use_data_dir",
]

DATA_ENV = "BENCH_DATA_DIR"
SUFFIXES = (".jsonl", ".parquet")
_CHECKOUT = Path(__file__).resolve().parent.parent
# (dataset_path, dataset_name) -> {split: file name at the top of the folder}: names used before
# the layout existed, read when the layout's own file is absent.
LEGACY_FILES = {
    ("openai/gsm8k", "main"): {"train": "gsm8k_train.jsonl", "test": "gsm8k_test.jsonl"},
}


def data_dir() -> Path | None:
    """``$BENCH_DATA_DIR``, else ``../shared/data`` beside the checkout when it exists."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    shared = _CHECKOUT.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def dataset_folder(path: str, name: str | None = None, root: Path | None = None) -> Path | None:
    """``DATA_DIR/<path>[/<name>]`` (whether or not it exists); None without a data folder."""
    root = root if root is not None else data_dir()
    if root is None:
        return None
    parts = [p for p in str(path).split("/") if p]
    if any(p in (".", "..") for p in parts) or (name and ("/" in name or name in (".", ".."))):
        raise BenchError(f"dataset {path!r} {name!r}: not a hub dataset id")
    return Path(root, *parts, *([name] if name else []))


def split_file(path: str, name: str | None, split: str, root: Path | None = None) -> Path | None:
    """The mirror's file for one split, or None when the mirror lacks it."""
    folder = dataset_folder(path, name, root)
    if folder is None:
        return None
    for suffix in SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    legacy = LEGACY_FILES.get((str(path), name), {}).get(split)
    top = root if root is not None else data_dir()
    if legacy and top is not None and (top / legacy).is_file():
        return top / legacy
    return None


def held_splits(
    path: str, name: str | None, splits: list[str] | tuple[str, ...], root: Path | None = None
) -> dict[str, Path]:
    """``{split: file}`` for those of ``splits`` the mirror holds."""
    found = {s: split_file(path, name, s, root) for s in dict.fromkeys(splits) if s}
    return {s: f for s, f in found.items() if f is not None}


def mirror_rows(path: str, name: str | None, split: str) -> list[dict] | None:
    """A split's rows from the mirror (the hub's columns), or None when the mirror lacks it."""
    from bench_core.rows import read_rows

    found = split_file(path, name, split)
    return None if found is None else read_rows(found)


def files_identity(files: dict[str, Path]) -> dict[str, str]:
    """``{split: sha256 prefix}`` of the files a task reads: what goes into an eval key."""
    return {split: file_digest(f) for split, f in sorted(files.items())}


@contextmanager
def use_data_dir(folder: str | Path | None) -> Iterator[None]:
    """Every reader in this process sees ``folder`` as the mirror (a grid's ``data_dir``);
    None leaves the environment's choice."""
    if folder is None:
        yield
        return
    before = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(Path(folder).expanduser())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = before
