"""The training methods: name -> ``module:ConfigClass``, loaded on use (no torch here).

A module of its own, re-exported as ``trainers.METHODS``: the planner and the launcher
check a method name without importing the package ``__init__`` that imports them.
"""

from __future__ import annotations

__all__ = ["METHODS"]

METHODS: dict[str, str] = {
    "sft": "trainers.sft:SFTConfig",
    "distill": "trainers.distill:DistillConfig",
    "dpo": "trainers.dpo:DPOConfig",
    "grpo": "trainers.grpo:GRPOConfig",
}
