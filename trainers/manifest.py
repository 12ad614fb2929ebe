"""The stage manifest: what a checkpoint is, where it came from and what training it cost.

One ``manifest.json`` per stage directory, written last (atomically) so its presence
means the stage finished. The harness copies it into the train run record.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def read_manifest(stage_dir: str | Path) -> dict[str, Any]:
    path = Path(stage_dir) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{path}: no manifest; the stage did not finish (rerun it to resume)")
    return json.loads(path.read_text())
