"""Hardware targets: the one spec (``containers/targets.yaml``) behind every image.

The memory planner and the model loader read dtype, attention implementation,
quantization support and GPU memory from here; ``containers.generate`` renders the
Dockerfile and the Apptainer ``.def`` of each target from the same entries, so the
two formats cannot drift apart. torch is imported lazily (only by ``detect_target``).
"""

from __future__ import annotations

import difflib
import functools
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bench_core.errors import BenchError
from bench_core.extends import resolve_extends

__all__ = [
    "TARGETS_FILE",
    "Target",
    "load_targets",
    "get_target",
    "detect_target",
    "target_for_device",
]

TARGETS_FILE = Path(__file__).with_name("targets.yaml")
REPO_ROOT = Path(__file__).resolve().parent.parent


class Target(BaseModel):
    """One hardware target. Field names are what targets.yaml spells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    base_image: str
    python: str
    cuda: str | None
    torch: str
    torch_index_url: str
    compute_capability: str | None
    dtype: Literal["bf16", "fp16", "fp32"]
    attn_implementation: Literal["flash_attention_2", "sdpa", "eager"]
    flash_attention: bool
    quantization: list[str]
    gpu_memory_gb: int | None
    gpus_per_node: int
    node_memory_gb: int | None = None  # host memory of one node: what a SLURM request is capped at
    extras: list[str]
    pip_packages: list[str] = []
    bundle_models: list[str] = []  # zoo models built into the image (`bench models fetch`)
    constraints: str

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - {"bnb-4bit", "bnb-8bit"})
        if unknown:
            raise ValueError(f"unknown quantization {unknown}; use bnb-4bit or bnb-8bit")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        # These pairs are what the planner and loader rely on; a typo in the YAML
        # (bf16 on Turing, flash-attn without the package) would fail only on the GPU.
        cc = float(self.compute_capability) if self.compute_capability else None
        if self.cuda is None and (cc is not None or self.gpu_memory_gb is not None):
            raise ValueError(
                "a CPU target (cuda: null) has compute_capability and gpu_memory_gb null"
            )
        if self.cuda is not None and (cc is None or self.gpu_memory_gb is None):
            raise ValueError("a GPU target needs compute_capability and gpu_memory_gb")
        if self.dtype == "bf16" and (cc is None or cc < 8.0):
            raise ValueError(
                "dtype bf16 needs compute_capability >= 8.0; use fp16 (GPU) or fp32 (CPU)"
            )
        if (self.attn_implementation == "flash_attention_2") != self.flash_attention:
            raise ValueError(
                "attn_implementation flash_attention_2 and flash_attention: true go together"
            )
        if self.flash_attention and (cc is None or cc < 8.0):
            raise ValueError("flash_attention needs compute_capability >= 8.0; use sdpa")
        return self

    @property
    def is_gpu(self) -> bool:
        return self.cuda is not None

    @property
    def has_vllm(self) -> bool:
        return self.installs("vllm")

    def installs(self, package: str) -> bool:
        """Whether the target's image installs ``package``: through an extra it installs
        (pyproject.toml's optional dependencies) or its own pip_packages."""
        packages = [*self.pip_packages, *(p for e in self.extras for p in _extra_packages(e))]
        return any(re.match(rf"{re.escape(package)}\b", p) for p in packages)

    @property
    def image(self) -> str:
        """The image name builds tag and images carry in BENCH_IMAGE."""
        return f"bench:{self.name}"

    @property
    def torch_dtype(self) -> str:
        """The ``torch_dtype`` string transformers accepts."""
        return {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[self.dtype]

    @property
    def constraints_path(self) -> Path:
        return REPO_ROOT / self.constraints


@functools.cache
def _extra_packages(extra: str) -> tuple[str, ...]:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return tuple(project.get("optional-dependencies", {}).get(extra, ()))


def load_targets(path: str | Path | None = None) -> dict[str, Target]:
    """Every target in ``path`` (default containers/targets.yaml), keyed by name."""
    if path is None:
        return dict(_load_default())
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> tuple[tuple[str, Target], ...]:
    return tuple(_load(TARGETS_FILE).items())


def _load(path: Path) -> dict[str, Target]:
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("targets"), dict):
        raise BenchError(
            f"{path}: top-level 'targets:' mapping missing; see containers/targets.yaml"
        )
    targets: dict[str, Target] = {}
    for name in raw["targets"]:
        fields = resolve_extends(name, raw["targets"], str(path), "targets")
        try:
            targets[name] = Target(name=name, **fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join([f"targets.{name}", *(str(p) for p in err["loc"])])
            msg = err["msg"].removeprefix("Value error, ")
            raise BenchError(f"{path}: {field}: {msg}") from None
    return targets


def get_target(name: str, path: str | Path | None = None) -> Target:
    """The target called ``name``; an unknown name raises a one-line BenchError."""
    targets = load_targets(path)
    if name in targets:
        return targets[name]
    close = difflib.get_close_matches(name, targets, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(targets)}"
    where = path or "containers/targets.yaml"
    raise BenchError(f"{where}: unknown target {name!r}; {hint}")


def target_for_device(major: int, minor: int, memory_gb: float | None) -> str:
    """Map a CUDA compute capability and device memory to a target name."""
    if major >= 9:
        return "h100"
    if major == 8:
        # An A100 40GB reports ~39.4 GiB; anything under 60 plans as the 40 GB card.
        return "a100-40g" if memory_gb is not None and memory_gb < 60 else "a100"
    if (major, minor) == (7, 5):
        return "rtx2080ti"
    raise BenchError(
        f"containers/targets.yaml: no target for compute capability {major}.{minor}; "
        "add one or pass the target name explicitly"
    )


def detect_target() -> str:
    """The target of this machine: "cpu" without CUDA, else by GPU 0's capability."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    major, minor = torch.cuda.get_device_capability(0)
    memory_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    return target_for_device(major, minor, memory_gb)
