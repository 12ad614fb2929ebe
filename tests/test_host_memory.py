"""A stage on a CPU keeps its resident memory to the tensors it holds (trainers/_host.py)."""

import subprocess
import sys
import textwrap
from pathlib import Path

from bench_core.memory import MemorySpan

GB = 1e9
ROOT = Path(__file__).resolve().parents[1]


def _fused_step(model, ids):
    """Log-probs and entropies of ``ids`` through trl's fused head, and the LoRA gradients of
    a GRPO-like loss over them; with the RSS peak of the step above what it started from."""
    import torch

    labels = ids.clone()
    labels[:, :10] = -100  # a prompt, not scored
    weights = torch.linspace(-1, 1, ids.shape[1] - 1)  # advantages: a gradient to compare
    model.zero_grad(set_to_none=True)
    with MemorySpan() as span:
        start = span.peak().rss_bytes
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        (out.log_probs * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.log_probs.detach(), out.entropy.detach(), grads, span.peak().rss_bytes - start


def test_cpu_fused_head_tiles_give_trls_result_without_its_full_vocabulary_temporaries(
    tiny_llama, monkeypatch
):
    import torch
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as utils
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from trainers._host import CPU_TILE, cpu_stage_memory, fused_head_tile
    from trainers._model import load_model, lora_config

    monkeypatch.setattr(kernel, "TOKEN_CHUNK_SIZE", 4096)  # trl's own tiles, restored after
    monkeypatch.setattr(utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", 32768)
    torch.manual_seed(0)
    model, _ = load_model(tiny_llama, target="cpu", for_training=True)
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    model = get_peft_model(model, lora_config(8, 16, 0.0, "all-linear"))
    for name, p in model.named_parameters():  # B = 0 at init would give A no gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    # 1 row of 1200 positions: trl's tile is 1199 × 32768 fp32 (157 MB) and its torch fallback
    # keeps ~9 of them in the backward; ours is 512 × 8192 (17 MB), three by six of them here
    ids = torch.randint(0, 49152, (1, 1200), generator=torch.Generator().manual_seed(0))
    logps, entropy, grads, trl_peak = _fused_step(model, ids)
    cpu_stage_memory()
    assert fused_head_tile() == CPU_TILE == (512, 8192)
    tiled_logps, tiled_entropy, tiled_grads, tiled_peak = _fused_step(model, ids)

    torch.testing.assert_close(tiled_logps, logps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiled_entropy, entropy, rtol=1e-5, atol=1e-5)
    assert grads.keys() == tiled_grads.keys() and len(grads) == 2 * 2 * 7  # A, B × 2 layers × 7
    for name, g in grads.items():  # the same up to float rounding (summed in another order)
        assert g.norm() > 0 and (tiled_grads[name] - g).norm() < 1e-5 * g.norm(), name
    assert trl_peak > 0.8 * GB and tiled_peak < 0.35 * GB, (trl_peak, tiled_peak)


# Each step frees a temporary and keeps a block allocated after it (as a checkpointed forward
# keeps each layer's input): glibc's heap cannot hand the hole back, nor fit the next, slightly
# larger temporary into it, once a freed block of 16 MB has raised its mmap threshold.
_STEPS = """
import torch
{setup}
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
big = torch.ones(16 << 20, dtype=torch.uint8)
del big
kept, start = [], rss()
for i in range(30):
    t = torch.ones((4 << 20) + i * (64 << 10), dtype=torch.uint8)
    kept.append(torch.ones(1 << 20, dtype=torch.uint8))
    del t
print((rss() - start) / (30 << 20))
"""


def test_freed_blocks_go_back_to_the_system_under_a_fixed_mmap_threshold():
    def growth(setup: str) -> float:
        code = textwrap.dedent(_STEPS).format(setup=setup)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        return float(out.stdout.split()[-1])

    # RSS grown over 30 steps, in units of what they keep (30 MB): ~5 as glibc leaves it
    assert growth("") > 3
    assert growth("from trainers._host import cpu_stage_memory\ncpu_stage_memory()") < 1.2
