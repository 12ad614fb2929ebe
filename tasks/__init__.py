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

__all__ = ["TASKS_DIR", "CHECKS"]
