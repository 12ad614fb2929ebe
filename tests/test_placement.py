"""Where a model goes at load, per launch: DDP places a copy on its rank's GPU, FSDP and ZeRO-3
load it unplaced after the process group exists (so transformers reads it on rank 0 only), a
stage samples DPO pairs on its GPU, evaluation stays on one GPU when the model fits it. The
decisions read the environment ``accelerate launch``/torchrun set; here they run on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_ENV = (
    "WORLD_SIZE",
    "LOCAL_RANK",
    "RANK",
    "ACCELERATE_USE_FSDP",
    "ACCELERATE_USE_DEEPSPEED",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE",
)


@pytest.fixture
def gpu(monkeypatch, tmp_path):
    """torch sees one CUDA GPU of ``memory_gb`` (16 unless set), for the placement decisions."""
    import torch

    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    memory = {"gb": 16}
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda i: type("Props", (), {"total_memory": memory["gb"] * 1e9})(),
    )
    weights = tmp_path / "w"
    weights.mkdir()
    with open(weights / "model.safetensors", "wb") as f:
        f.truncate(int(10e9))  # sparse: a 10 GB model's weight file
    return memory, weights


def test_ddp_places_each_rank_and_fsdp_zero3_load_unplaced(gpu, monkeypatch):
    from trainers._model import _device_map

    _, weights = gpu
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert _device_map(None, True, False, weights) == {"": 3}  # DDP: its own GPU
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert _device_map(None, True, False, weights) is None  # FSDP shards it
    assert _device_map(None, True, True, weights) == {"": 3}  # a 4-bit model is placed
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert _device_map(None, True, False, weights) == {"": 3}  # ZeRO-2 keeps whole weights
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert _device_map(None, True, False, weights) is None
    assert _device_map("cpu", True, False, weights) == "cpu"  # an explicit map stands


def test_training_loads_on_the_gpu_and_evaluation_on_one_gpu_when_it_fits(gpu, monkeypatch):
    """A single-process stage is placed on its GPU at load (DPO samples its pairs before the
    Trainer would move the model); an eval model that fits one GPU is not split over all."""
    import torch

    from trainers._model import _device_map

    memory, weights = gpu
    assert _device_map(None, True, False, weights) == {"": 0}
    assert _device_map(None, False, False, weights) == {"": 0}  # 10 GB on a 16 GB card
    memory["gb"] = 11
    assert _device_map(None, False, False, weights) == "auto"  # too big: spread it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _device_map(None, True, False, weights) is None  # CPU: nothing to place


FSDP_LOAD = """
import json, os, sys
import torch.distributed as dist
from transformers import AutoModelForCausalLM
from transformers.integrations import is_fsdp_enabled
from trainers._config import resolve
from trainers._stage import Stage
from trainers.sft import SFTConfig

seen, real = {}, AutoModelForCausalLM.from_pretrained

def spy(*args, **kwargs):
    seen.update(
        group=dist.is_initialized() and dist.get_world_size(),
        device_map=repr(kwargs.get("device_map")),
        fsdp_loading=is_fsdp_enabled(),
    )
    return real(*args, **kwargs)

AutoModelForCausalLM.from_pretrained = spy
model, out = sys.argv[1], sys.argv[2]
cfg = resolve(SFTConfig, {"model": model, "output_dir": out + "/stage", "dataset": "-"})
Stage("sft", cfg).load()
with open(f"{out}/rank{os.environ['RANK']}.json", "w") as f:
    json.dump(seen, f)
"""


def test_fsdp_ranks_have_a_process_group_before_the_model_loads(tmp_path, tiny_llama):
    """Two gloo ranks under accelerate's FSDP environment: the group exists when
    ``from_pretrained`` runs, so transformers' rank-0 loading (FSDP_CPU_RAM_EFFICIENT_LOADING)
    engages instead of every rank reading the whole model."""
    script = tmp_path / "load.py"
    script.write_text(FSDP_LOAD)
    env = {
        **{k: v for k, v in os.environ.items() if k not in LAUNCH_ENV},
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "ACCELERATE_USE_FSDP": "true",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tiny_llama),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen == {"group": 2, "device_map": "None", "fsdp_loading": True}


def test_an_evaluated_lora_stage_runs_merged_weights(tmp_path, tiny_llama, stage_manifest):
    """HF evaluation of a LoRA stage merges the adapter at load (one matmul per Linear, not
    three) and computes what base + adapter computes."""
    import torch
    from peft import get_peft_model

    from trainers._model import load_model, lora_config

    model, _ = load_model(tiny_llama, for_training=True)
    peft_model = get_peft_model(model, lora_config(8, 16, 0.0))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    stage = tmp_path / "stage"
    peft_model.save_pretrained(stage / "adapter")
    stage_manifest(stage, base_weights=str(tiny_llama), adapter="adapter")
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        expected = peft_model.eval()(input_ids=ids).logits

    evaluated, _ = load_model(stage)
    q = evaluated.get_submodule("model.layers.0.self_attn.q_proj")
    assert type(q) is torch.nn.Linear and not hasattr(evaluated, "peft_config")
    with torch.no_grad():
        torch.testing.assert_close(evaluated(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
    trained, _ = load_model(stage, for_training=True)  # a stage trained further keeps it apart
    assert hasattr(trained, "peft_config")


def visible_devices(pause: float) -> str | None:
    """What a cell's process sees (run in an eval worker; module level so it pickles)."""
    import time

    time.sleep(pause)
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_parallel_eval_workers_each_take_a_gpu_of_their_own(monkeypatch):
    """``--workers N`` on a GPU target: each cell's process sees one free GPU, not all of them
    (every vLLM engine started on GPU 0 and all but one failed its free-memory check)."""
    from harness.executors.local import _eval_pool, _on_a_gpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pool, on_a_gpu = _eval_pool(2, per_cell=True)
    assert on_a_gpu is _on_a_gpu
    with pool:
        seen = [f.result() for f in [pool.submit(on_a_gpu, visible_devices, 1.0) for _ in range(4)]]
    assert sorted(seen) == ["3", "3", "5", "5"]  # one GPU each, both used, each freed again
    assert _eval_pool(2, per_cell=False)[1] is None  # CPU cells: no GPU to hand out
