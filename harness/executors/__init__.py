"""Executors: where a planned grid's cells run, one ``EXECUTORS`` line each.

The table holds import strings (as lm-eval's ``MODEL_MAPPING`` does), so an executor's module,
and what it imports (submitit for SLURM), loads only when a run names it. Each module exports

- ``Options``: a frozen dataclass of its settings, named as the CLI spells them (``workers``
  is ``--workers``); ``__post_init__`` refuses a bad value in one line;
- ``run(plan, results_dir, options, *, force, progress)``: calls
  :func:`harness.runner.run_cell` once per cell of ``plan.todo``, parents before children,
  and returns cell key -> :class:`harness.runner.Outcome`.

A new executor (Ray) is one module here and one line below. ``harness.api.RunSpec.of`` and
``run_grid`` take its options as keywords at once; the CLI passes on the flags
``harness/_cli_run.py`` declares.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from types import ModuleType
from typing import Any

from harness.errors import BenchError, closest

__all__ = ["EXECUTORS", "executor", "executor_options"]

EXECUTORS: dict[str, str] = {
    "local": "harness.executors.local",
    "slurm": "harness.executors.slurm",
}


def executor(name: str) -> ModuleType:
    """The module of executor ``name``, imported now."""
    if name not in EXECUTORS:
        known = " or ".join(EXECUTORS)
        raise BenchError(
            f"--executor: unknown executor '{name}'{closest(name, EXECUTORS)}; use {known}"
        )
    return importlib.import_module(EXECUTORS[name])


def executor_options(name: str, **given: Any):
    """``name``'s ``Options`` from the options a caller gave (None: not given). An option of
    another executor is refused, naming the executor that takes it."""
    options = executor(name).Options
    own = {f.name for f in fields(options)}
    for key, value in given.items():
        if value is not None and key not in own:
            flag = f"--{key.replace('_', '-')}"
            takers = [n for n in EXECUTORS if n != name and _takes(n, key)]
            where = f"only with --executor {' or '.join(takers)}" if takers else "unknown option"
            raise BenchError(f"{flag}: {where}, not with --executor {name}")
    return options(**{k: v for k, v in given.items() if v is not None and k in own})


def _takes(name: str, key: str) -> bool:
    return key in {f.name for f in fields(executor(name).Options)}
