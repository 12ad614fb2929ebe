"""The command that runs a stage under the planner's topology.

- ``single``: ``python -m trainers.<method> --config FILE``.
- ``ddp`` on CPU: ``torchrun --standalone --nproc_per_node N`` (gloo). ``accelerate launch
  --cpu`` was seen failing here with "Default process group has not been initialized".
- ``ddp`` on GPUs: ``accelerate launch --multi_gpu --num_processes N``.
- ``fsdp`` / ``deepspeed-zero3``: ``accelerate launch`` with trl's shipped accelerate
  configs (fsdp2.yaml, zero3.yaml; ZeRO-3 needs deepspeed installed).

Multi-node runs add ``--nnodes``/``--machine_rank``/``--main_process_ip`` from the
SLURM environment; that is the executor's job, this module builds one node's command.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["launch_command", "accelerate_config"]

ACCELERATE_CONFIGS = {
    "ddp": "multi_gpu.yaml",
    "fsdp": "fsdp2.yaml",
    "deepspeed-zero3": "zero3.yaml",
}


def accelerate_config(topology: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        raise ValueError("trl is not installed; it ships the accelerate configs")
    return Path(spec.origin).parent / "accelerate_configs" / ACCELERATE_CONFIGS[topology]


def launch_command(
    method: str,
    config_path: str | Path,
    *,
    topology: str = "single",
    nproc: int = 1,
    cpu: bool = False,
    overrides: list[str] | None = None,
) -> list[str]:
    """argv that trains ``method`` with ``config_path`` under ``topology`` on ``nproc`` processes."""
    from trainers.methods import METHODS
    from trainers.planner import TOPOLOGIES

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; use one of {', '.join(TOPOLOGIES)}")
    if nproc < 1:
        raise ValueError(f"nproc {nproc}: must be at least 1")
    tail = ["-m", f"trainers.{method}", "--config", str(config_path), *(overrides or [])]
    if topology == "single" or nproc == 1:
        return [sys.executable, *tail]
    if cpu:
        if topology != "ddp":
            raise ValueError(f"topology {topology} needs GPUs; on CPU use ddp (torchrun, gloo)")
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            *tail,
        ]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config(topology)),
        "--num_processes",
        str(nproc),
        *tail,
    ]
