"""The training methods: name -> ``module:ConfigClass``, loaded on use (no torch here).

A module of its own, re-exported as ``trainers.METHODS``: the planner and the launcher
check a method name without importing the package ``__init__`` that imports them. A
method's facts (``VERSION``, ``VERIFIER_DRIVEN``, ``MEMORY``) are class attributes of its
config (trainers/_config.py TrainConfig).
"""

from __future__ import annotations

import importlib

from bench_core.errors import BenchError

__all__ = ["METHODS", "method_config"]

METHODS: dict[str, str] = {
    "sft": "trainers.sft_config:SFTConfig",
    "distill": "trainers.distill_config:DistillConfig",
    "dpo": "trainers.dpo_config:DPOConfig",
    "grpo": "trainers.grpo_config:GRPOConfig",
    "orpo": "trainers.orpo_config:ORPOConfig",
}


def method_config(method: str) -> type:
    """The config dataclass of ``method``."""
    if method not in METHODS:
        raise BenchError(f"unknown training method {method!r}; use one of {', '.join(METHODS)}")
    module, _, name = METHODS[method].partition(":")
    return getattr(importlib.import_module(module), name)
