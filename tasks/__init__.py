"""lm-eval tasks of bench: this folder is an lm-eval ``include_path``.

Each task folder holds its YAML, a small ``utils.py`` hooked with ``!function``, and
its verifier. This package must not import ``harness`` or ``trainers``.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent

# task -> "module:function" returning a tasks.scoring.CheckReport; imported lazily.
CHECKS = {
    "causal_nli": "tasks.causal_nli.check:check_file",
    "math": "tasks.math.check:check_file",
}

# task family (folder) -> the module whose ``VERSION`` versions its verifier.
VERIFIERS = {
    "math": "tasks.math.verifier",
    "causal_nli": "tasks.causal_nli.verifier",
    "think_quality": "tasks.think_quality.scorer",
}
# The verifiers a family's scores depend on: think_quality scores the answer with the others.
USES = {"think_quality": ("think_quality", "math", "causal_nli")}

__all__ = ["TASKS_DIR", "CHECKS", "VERIFIERS", "verifier_versions", "all_verifier_versions"]


def verifier_versions(family: str) -> dict[str, str]:
    """``{verifier: VERSION}`` for what scores a task family's completions ({} for none of ours)."""
    import importlib

    return {
        name: str(importlib.import_module(VERIFIERS[name]).VERSION)
        for name in USES.get(family, (family,))
        if name in VERIFIERS
    }


def all_verifier_versions() -> dict[str, str]:
    return {name: v for family in VERIFIERS for name, v in verifier_versions(family).items()}
