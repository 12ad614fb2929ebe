"""The command that runs a stage under its plan's topology (trainers.planner.plan_for).

- ``single``: ``python -m trainers.<method> --config FILE``.
- ``ddp`` on CPU: ``torchrun --standalone --nproc_per_node N`` (gloo; standalone picks a free
  port). ``accelerate launch --cpu`` was seen failing here with "Default process group has not
  been initialized".
- ``ddp`` on GPUs: ``accelerate launch`` with trl's multi_gpu.yaml; ``fsdp``: with trl's
  fsdp2.yaml (FSDP2; its activation checkpointing replaces the Trainer's, which would add an
  all-gather in the backward). Each takes a free port (two stages may share a node), and the
  stage's resolved mixed precision (trl's yamls say bf16, which the Trainer would otherwise
  keep when the stage asked for none).

Multi-node runs would add ``--nnodes``/``--machine_rank``/``--main_process_ip``; this module
builds one node's command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bench_core.errors import BenchError

__all__ = ["launch_command", "stage_command", "accelerate_config", "precision", "visible_devices"]

ACCELERATE_CONFIGS = {
    "ddp": "multi_gpu.yaml",
    "fsdp": "fsdp2.yaml",
}


def accelerate_config(topology: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        raise BenchError("trl is not installed; it ships the accelerate configs")
    return Path(spec.origin).parent / "accelerate_configs" / ACCELERATE_CONFIGS[topology]


def precision(cfg: Any, cuda: bool) -> str:
    """The stage's mixed precision: its ``mixed_precision``, or with ``auto`` the target's dtype
    as autocast on CUDA and none on a CPU."""
    from containers.targets import get_target

    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    dtype = get_target(cfg.target).dtype
    return dtype if cuda and dtype in ("bf16", "fp16") else "no"


def launch_command(
    method: str,
    config_path: str | Path,
    *,
    topology: str = "single",
    nproc: int = 1,
    cpu: bool = False,
    overrides: list[str] | None = None,
    mixed_precision: str = "no",
    activation_checkpointing: bool = False,
) -> list[str]:
    """argv that trains ``method`` with ``config_path`` under ``topology`` on ``nproc`` processes."""
    from trainers.methods import METHODS
    from trainers.planner import TOPOLOGIES

    if method not in METHODS:
        raise BenchError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if topology not in TOPOLOGIES:
        raise BenchError(f"unknown topology {topology!r}; use one of {', '.join(TOPOLOGIES)}")
    if nproc < 1:
        raise BenchError(f"nproc {nproc}: must be at least 1")
    tail = ["-m", f"trainers.{method}", "--config", str(config_path), *(overrides or [])]
    if topology == "single" or nproc == 1:
        return [sys.executable, *tail]
    if cpu:
        if topology != "ddp":
            raise BenchError(f"topology {topology} needs GPUs; on CPU use ddp (torchrun, gloo)")
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            *tail,
        ]
    fsdp = (
        ["--fsdp_activation_checkpointing", str(activation_checkpointing).lower()]
        if topology == "fsdp"
        else []
    )
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config(topology)),
        "--num_processes",
        str(nproc),
        "--main_process_port",
        "0",  # accelerate picks a free port
        "--mixed_precision",
        mixed_precision,
        *fsdp,
        *tail,
    ]


def stage_command(method: str, cfg: Any, plan: Any, config_path: str | Path, *, cuda: bool):
    """The launch argv of a stage from its plan: the one the launcher runs and `bench grid show`
    prints (the plan's GPUs are the stage's ``nproc``)."""
    return launch_command(
        method,
        config_path,
        topology=plan.topology,
        nproc=cfg.nproc,
        cpu=not cuda,
        mixed_precision=precision(cfg, cuda),
        activation_checkpointing=plan.gradient_checkpointing,
    )


def visible_devices(nproc: int, env: dict[str, str] | None = None, count: int | None = None):
    """``CUDA_VISIBLE_DEVICES`` narrowed to the first ``nproc`` GPUs when more are visible ({}
    otherwise): a single process that sees several GPUs gets wrapped in DataParallel by the
    Trainer, which multiplies its batch by the GPU count."""
    env = os.environ if env is None else env
    if count is None:
        import torch

        count = torch.cuda.device_count()
    if count <= nproc:
        return {}
    visible = env.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(count)]
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids[:nproc])}
