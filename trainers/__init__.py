"""Post-training methods: ``sft``, ``distill``, ``dpo``, ``grpo`` over trl + peft.

Each method is one module, ``trainers/<method>.py``: a config dataclass (defaults) and
``main(cfg) -> Manifest``. Config flows dataclass defaults → YAML → CLI overrides
(``python -m trainers.grpo --config g.yaml learning_rate=1e-5``); the resolved config is
saved beside the checkpoint. The harness calls :func:`train_stage`.

Stages chain by **merging, then a fresh adapter**. A stage trains from its parent's
*merged* weights (base + parent adapter, ``merge_and_unload``) and learns a new LoRA
adapter; adapters are never stacked. So every stage directory holds exactly one
adapter, relative to one set of full weights named in its manifest (``base_weights``),
and a child's training never depends on peft's multi-adapter machinery. The parent's
``merged/`` is written when the child first needs it (or at once with ``merge=true``);
a stage without children keeps only its adapter. Eval loads a stage by path
(``trainers.model.load_model(stage_dir)``): its ``merged/`` when present, else
``base_weights`` + ``adapter/``. ``full`` mode stages hold ``merged/`` only.

Importing this package imports no torch: ``METHODS`` names modules, loaded on use.
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_core  # noqa: F401 - its logging setup, before anything imports peft
from trainers._config import FieldError
from trainers.methods import METHODS

__all__ = [
    "METHODS",
    "FieldError",
    "method_config",
    "machine_settings",
    "method_version",
    "resolved_config",
    "train_stage",
]


def _unknown(method: str) -> ValueError:
    return ValueError(f"unknown training method {method!r}; use one of {', '.join(METHODS)}")


def method_config(method: str) -> type:
    """The config dataclass of ``method``."""
    if method not in METHODS:
        raise _unknown(method)
    module, _, name = METHODS[method].partition(":")
    return getattr(importlib.import_module(module), name)


def method_version(method: str) -> str:
    """The method module's ``VERSION``: bumped when it trains differently for the same config."""
    if method not in METHODS:
        raise _unknown(method)
    return str(importlib.import_module(METHODS[method].partition(":")[0]).VERSION)


def machine_settings(method: str, config: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``config`` whose value this machine decides (grpo's ``rollout_dtype=auto``),
    as ``method``'s module resolves them when it trains here: the train key holds these in place
    of the setting, so runs that train differently never share a cell."""
    if method not in METHODS:
        raise _unknown(method)
    module = importlib.import_module(METHODS[method].partition(":")[0])
    resolve = getattr(module, "machine_settings", None)
    return resolve(config) if resolve else {}


def resolved_config(method: str, config: dict[str, Any]) -> dict[str, Any]:
    """Every field of ``method``'s config dataclass with its effective value for ``config``."""
    from trainers._config import config_dict, resolve

    return config_dict(resolve(method_config(method), config))


def train_stage(
    method: str,
    config: dict[str, Any],
    *,
    base_model: Path,
    parent: Path | None,
    output_dir: Path,
    target: str = "cpu",
    seed: int = 0,
    progress: Callable[[int, int, float | None], None] | None = None,
) -> dict[str, Any]:
    """Train one stage and return its manifest (also written to ``output_dir/manifest.json``).

    ``config`` holds the method's fields (a grid's method config); ``base_model`` is the
    root model directory, ``parent`` the previous stage directory (its merged weights are
    the starting point). With ``nproc > 1`` in ``config`` the stage runs in subprocesses
    under the planner's topology (see :mod:`trainers.launch`); otherwise in-process, and
    ``progress(step, max_steps, loss)`` is called as training goes (loss: the last logged).
    """
    from trainers._config import resolve, save_config

    if method not in METHODS:
        raise _unknown(method)
    cls = method_config(method)
    fixed = {
        "model": str(base_model),
        "parent": str(parent) if parent else None,
        "output_dir": str(output_dir),
        "target": target,
        "seed": seed,
    }
    clash = sorted(k for k in fixed if k in config and config[k] != fixed[k])
    if clash:
        raise ValueError(
            f"{method} config: {', '.join(clash)} set in the config would be overridden; "
            f"pass {', '.join(f'{k}=' for k in clash)} to train_stage instead"
        )
    cfg = resolve(cls, {**config, **fixed})
    if cfg.nproc <= 1:
        from trainers._stage import STEP_PROGRESS

        main = importlib.import_module(f"trainers.{method}").main
        token = STEP_PROGRESS.set(progress)
        try:
            return main(cfg).to_dict()
        finally:
            STEP_PROGRESS.reset(token)
    return _launch(method, cfg, save_config)


def _launch(method: str, cfg: Any, save_config) -> dict[str, Any]:
    import torch

    from trainers._model import ensure_merged
    from trainers.launch import launch_command
    from trainers.manifest import read_manifest
    from trainers.planner import plan

    if cfg.parent:
        ensure_merged(cfg.parent)  # once, before the ranks start, not once per rank
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "launch.yaml"
    save_config(cfg, config_path)
    cpu = not torch.cuda.is_available()
    weights = Path(cfg.parent) / "merged" if cfg.parent else Path(cfg.model)
    topology = plan(
        weights, method, cfg.target, cfg.max_length, cfg.mode, cfg.effective_batch, gpus=cfg.nproc
    ).topology
    cmd = launch_command(method, config_path, topology=topology, nproc=cfg.nproc, cpu=cpu)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(
            f"{method} stage under {topology} x{cfg.nproc} failed (exit {done.returncode}): {tail[0]}"
        )
    return read_manifest(out)
