"""Trainers in subprocesses: a run killed (SIGKILL) after its first checkpoint resumes to
completion; DDP with two CPU processes (torchrun, gloo) trains one adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from trainers import train_stage
from trainers._config import resolve
from trainers.launch import launch_command
from trainers.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]


def _chat_data(path: Path, n: int = 24) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} + 1?"},
                {"role": "assistant", "content": f"The answer is {i + 1}."},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_llama):
    out = tmp_path / "stage"
    config = {
        "model": str(tiny_llama),
        "dataset": str(_chat_data(tmp_path / "d.jsonl")),
        "output_dir": str(out),
        "max_steps": 8,
        "save_steps": 1,
        "save_total_limit": 10,
        "effective_batch": 2,
        "max_length": 64,
        "learning_rate": 1e-2,
    }
    config_file = tmp_path / "sft.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        launch_command("sft", config_file),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    first = out / "checkpoints" / "checkpoint-1" / "trainer_state.json"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), (
        proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint in time"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    done = sorted(
        int(p.name.split("-")[1])
        for p in (out / "checkpoints").glob("checkpoint-*")
        if (p / "trainer_state.json").exists()
    )
    assert done and done[-1] < 8

    from trainers.sft import SFTConfig, main

    manifest = main(resolve(SFTConfig, config_file))
    assert manifest.steps == 8
    assert manifest.resumed_from.endswith(f"checkpoint-{done[-1]}")
    assert len(manifest.losses) == 8 - done[-1]  # only the steps this run trained
    assert read_manifest(out).steps == 8


def test_launch_commands_per_topology(tmp_path):
    cfg = tmp_path / "c.yaml"
    assert launch_command("sft", cfg) == [
        sys.executable,
        "-m",
        "trainers.sft",
        "--config",
        str(cfg),
    ]
    cpu = launch_command("grpo", cfg, topology="ddp", nproc=2, cpu=True)
    assert cpu[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cpu[-4:] == ["-m", "trainers.grpo", "--config", str(cfg)]
    fsdp = launch_command("sft", cfg, topology="fsdp", nproc=8)
    assert "accelerate.commands.launch" in fsdp
    assert fsdp[fsdp.index("--num_processes") + 1] == "8"
    assert launch_command("dpo", cfg, topology="fsdp", nproc=4)[4].endswith("fsdp2.yaml")
    with pytest.raises(ValueError, match="needs GPUs"):
        launch_command("sft", cfg, topology="fsdp", nproc=2, cpu=True)
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        launch_command("ppo", cfg)


@pytest.mark.parametrize("mode", ["lora", "qlora"])  # qlora: a 4-bit base on each rank
def test_ddp_with_two_cpu_processes(tmp_path, tiny_llama, mode):
    from safetensors.torch import load_file

    m = train_stage(
        "sft",
        {
            "mode": mode,
            "dataset": str(_chat_data(tmp_path / "d.jsonl")),
            "nproc": 2,
            "max_steps": 2,
            "effective_batch": 4,
            "max_length": 64,
            "learning_rate": 1e-2,
            "save_steps": 100,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "ddp",
    )
    assert m.world_size == 2 and m.steps == 2 and len(m.losses) == 2
    assert m.mode == mode
    assert m.plan["topology"] == "ddp" and m.plan["per_device_batch"] * m.plan["grad_accum"] == 2
    b = {
        k: v
        for k, v in load_file(
            str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors")
        ).items()
        if "lora_B" in k
    }
    assert b and all(float(v.norm()) > 0 for v in b.values())
