"""Post-training methods over trl + peft: ``sft``, ``distill``, ``dpo``, ``grpo``, ``orpo`` (``METHODS``).

Each method is a torch-free config, ``trainers/<method>_config.py`` (defaults and the
method's facts: ``VERSION``, ``VERIFIER_DRIVEN``, ``MEMORY``), and a trainer module,
``trainers/<method>.py`` with ``main(cfg) -> Manifest``; ``METHODS`` points at the configs. Config flows dataclass defaults → YAML → CLI overrides
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
from bench_core.errors import BenchError
from trainers._config import FieldError, field_docs
from trainers.manifest import Manifest
from trainers.methods import METHODS, method_config

__all__ = [
    "METHODS",
    "FieldError",
    "Manifest",
    "field_docs",
    "method_config",
    "machine_settings",
    "method_version",
    "build_config",
    "resolved_config",
    "train_stage",
]


def _unknown(method: str) -> BenchError:
    return BenchError(f"unknown training method {method!r}; use one of {', '.join(METHODS)}")


def method_version(method: str) -> str:
    """The method config's ``VERSION``: bumped when it trains differently for the same config."""
    return str(method_config(method).VERSION)


def build_config(method: str, config: dict[str, Any]) -> Any:
    """``method``'s config object for ``config`` (its fields; defaults for the rest)."""
    from trainers._config import resolve

    return resolve(method_config(method), config)


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
) -> Manifest:
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
        raise BenchError(
            f"{method} config: {', '.join(clash)} set in the config would be overridden; "
            f"pass {', '.join(f'{k}=' for k in clash)} to train_stage instead"
        )
    cfg = resolve(cls, {**config, **fixed})
    if cfg.nproc <= 1:
        from trainers._stage import STEP_PROGRESS

        _one_gpu()

        main = importlib.import_module(f"trainers.{method}").main
        token = STEP_PROGRESS.set(progress)
        try:
            return main(cfg)
        finally:
            STEP_PROGRESS.reset(token)
    return _launch(method, cfg, save_config)


def _one_gpu() -> None:
    """An in-process stage sees one GPU: narrow CUDA_VISIBLE_DEVICES before CUDA starts (the
    Trainer would wrap the model in DataParallel over every visible GPU and scale the batch)."""
    import logging
    import os

    import torch

    from trainers.launch import visible_devices

    env = visible_devices(1)
    if not env:
        return
    if torch.cuda.is_initialized():
        logging.getLogger(__name__).warning(
            "CUDA started before this stage with %d GPUs visible: run it with "
            "CUDA_VISIBLE_DEVICES=%s",
            torch.cuda.device_count(),
            env["CUDA_VISIBLE_DEVICES"],
        )
        return
    os.environ.update(env)


def _launch(method: str, cfg: Any, save_config) -> Manifest:
    import os

    import torch

    from trainers._model import ensure_merged
    from trainers._stage import stage_plan
    from trainers.launch import stage_command, visible_devices
    from trainers.manifest import read_manifest

    weights = Path(ensure_merged(cfg.parent)) if cfg.parent else Path(cfg.model)
    plan = stage_plan(cfg, weights, cfg.max_length, cfg.nproc)  # refused here if it cannot fit
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "launch.yaml"
    save_config(cfg, config_path)
    cuda = torch.cuda.is_available()
    cmd = stage_command(method, cfg, plan, config_path, cuda=cuda)
    env = {**os.environ, **(visible_devices(cfg.nproc) if cuda else {})}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(
            f"{method} stage under {plan.topology} x{cfg.nproc} failed (exit {done.returncode}): {tail[0]}"
        )
    return read_manifest(out)
