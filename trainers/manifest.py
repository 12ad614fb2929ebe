"""The stage manifest: what a checkpoint is, where it came from and what training it cost.

One ``manifest.json`` per stage directory, written last (atomically) so its presence
means the stage finished. The harness reads it back as a :class:`Manifest` (never as a dict)
and keeps its training figures in the train run record (``leaderboards.record.TrainSummary``).
A manifest written by an older bench loads through :func:`Manifest.from_dict`: fields added
since take their defaults, and a change of meaning bumps ``MANIFEST_VERSION`` with one step in
``_UPGRADES``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_core.errors import BenchError
from bench_core.gitinfo import git_state
from bench_core.packages import PROVENANCE_PACKAGES, installed_versions

__all__ = [
    "Manifest",
    "write_manifest",
    "read_manifest",
    "package_versions",
    "git_state",
    "stage_relative",
    "stage_path",
]

MANIFEST_VERSION = 1


@dataclasses.dataclass
class Manifest:
    method: str
    base_model: str  # the original model directory at the root of the stage chain
    base_weights: str  # the weights this stage trained on: base_model, or the parent's merged/
    parent: str | None
    output_dir: str
    mode: str  # lora | qlora | full
    adapter: str | None  # relative to output_dir
    merged: str | None  # relative to output_dir, when written
    data: dict[str, Any]  # source, rows, sha256 of the canonical training rows
    steps: int
    final_loss: float | None
    losses: list[float]
    tokens: int
    tokens_per_s: float | None
    peak_memory_gb: dict[str, float]  # after_load, after_train: Peak.gb of the stage so far
    planned_memory_gb: float | None
    plan: dict[str, Any]
    wall_s: float
    seed: int
    target: str
    world_size: int
    resumed_from: str | None
    stopped_early: bool
    packages: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    trust_remote_code: bool = False
    # settings this machine resolved (grpo: rollout_dtype auto -> bf16 | fp32 | train), as the
    # train key holds them
    machine_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # the stage's own peaks (bench_core.memory): host RSS; CUDA max-allocated (None: no GPU)
    peak_rss_bytes: int | None = None
    peak_cuda_bytes: int | None = None
    # a resumed stage: what the parts before the resume cost (tokens, train_s, wall_s), already
    # included in tokens and wall_s above
    resumed_cost: dict[str, float] | None = None
    config_file: str = "config.yaml"
    manifest_version: int = MANIFEST_VERSION
    created_at: str = dataclasses.field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """A manifest as written by any bench, upgraded to this version. A BenchError names the
        field when it is not one: a missing field, an unknown one, a wrong kind of value."""
        if not isinstance(data, dict):
            raise BenchError(f"a manifest is a JSON object, not {type(data).__name__}")
        version = data.get("manifest_version", 1)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise BenchError(
                f"field 'manifest_version': {version!r}; this bench reads up to "
                f"{MANIFEST_VERSION} (written by a newer bench? update bench)"
            )
        while data.get("manifest_version", 1) in _UPGRADES:
            data = _UPGRADES[data.get("manifest_version", 1)](data)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in data:
            if name not in fields:
                raise BenchError(f"field '{name}': not a manifest field")
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise BenchError(f"field '{name}': missing")
            elif not _fits(data[name], _KINDS[name]):
                raise BenchError(f"field '{name}': {type(data[name]).__name__}, not {f.type}")
        return cls(**data)


# The JSON values a field's annotation admits (an int for a float: JSON writes 2.0 as 2).
_JSON_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (type(None),),
    "dict": (dict,),
    "list": (list,),
}
_KINDS = {
    f.name: tuple(k for part in f.type.split("|") for k in _JSON_KINDS[part.strip().split("[")[0]])
    for f in dataclasses.fields(Manifest)
}

# manifest_version -> the step that rewrites a manifest of that version as the next one (each
# version adds one step here; never edit old steps). Version 1 is the first.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def stage_relative(path: str | Path, stage_dir: str | Path) -> str:
    """A path as the manifest keeps it: relative to the stage folder when it lies beside it
    (a parent stage under the same results/checkpoints/), so a moved or copied results folder
    still finds it; else absolute, never relative to the working directory."""
    path, stage = Path(path).resolve(), Path(stage_dir).resolve()
    if path.is_relative_to(stage.parent):
        return os.path.relpath(path, stage)
    return str(path)


def stage_path(value: str, stage_dir: str | Path) -> Path:
    """A manifest's path back: relative to the stage folder; a manifest written before paths
    were kept so names one relative to the working directory, tried second."""
    p = Path(value)
    if p.is_absolute():
        return p
    beside = Path(stage_dir) / p
    return beside if beside.exists() or not p.exists() else p


def package_versions() -> dict[str, str]:
    """The installed provenance packages, as a run record stamps them."""
    return installed_versions(PROVENANCE_PACKAGES)


def write_manifest(manifest: Manifest, stage_dir: Path) -> Path:
    path = Path(stage_dir) / "manifest.json"
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=stage_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest.to_dict(), f, indent=2, default=str)
    os.replace(tmp, path)
    return path


def read_manifest(stage_dir: str | Path) -> Manifest:
    """The stage's manifest; a BenchError names the file when it is missing or not a manifest."""
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        raise BenchError(f"{path}: no manifest; the stage did not finish (rerun it to resume)")
    try:
        return Manifest.from_dict(json.loads(path.read_bytes()))
    except (ValueError, RecursionError) as e:  # JSON and UTF-8 errors are ValueErrors
        raise BenchError(f"{path}: not a bench stage manifest ({str(e).splitlines()[0]})") from None
