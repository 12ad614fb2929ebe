"""Memory planner: hand-checked figures and the batch/topology decisions."""

from __future__ import annotations

import pytest

from trainers.planner import Plan, model_facts, plan

# Architecture facts from the models' config.json files on the hub.
QWEN25_15B = dict(
    name="qwen2.5-1.5b",
    params=1.54e9,
    hidden_size=1536,
    num_layers=28,
    vocab_size=151936,
    intermediate_size=8960,
    kv_ratio=2 / 12,
    tied_embeddings=True,
)
PHI35_MINI = dict(
    name="phi-3.5-mini",
    params=3.82e9,
    hidden_size=3072,
    num_layers=32,
    vocab_size=32064,
    intermediate_size=8192,
    kv_ratio=1.0,
    tied_embeddings=False,
)
R1_QWEN_7B = dict(
    name="deepseek-r1-distill-qwen-7b",
    params=7.62e9,
    hidden_size=3584,
    num_layers=28,
    vocab_size=152064,
    intermediate_size=18944,
    kv_ratio=4 / 28,
    tied_embeddings=False,
)
LLAMA31_8B = dict(
    name="llama-3.1-8b",
    params=8.03e9,
    hidden_size=4096,
    num_layers=32,
    vocab_size=128256,
    intermediate_size=14336,
    kv_ratio=8 / 32,
    tied_embeddings=False,
)


def test_bf16_weights_of_llama_8b_are_params_times_two_bytes():
    p = plan(LLAMA31_8B, "sft", "h100", seq_len=2048, mode="full")
    assert p.weights_gb == pytest.approx(16.06, abs=1e-9)  # 8.03e9 × 2 B / 1e9
    assert p.gradients_gb == pytest.approx(16.06, abs=1e-9)  # bf16 grads
    assert p.optimizer_gb == pytest.approx(32.12, abs=1e-9)  # two bf16 AdamW states
    assert plan(LLAMA31_8B, "sft", "h100", seq_len=2048, mode="lora").weights_gb == pytest.approx(
        16.06
    )


def test_qlora_weights_keep_embeddings_in_compute_dtype():
    p = plan(QWEN25_15B, "sft", "rtx2080ti", seq_len=512, mode="qlora")
    emb = 151936 * 1536  # tied: counted once, kept in fp16
    expected = (emb * 2 + (1.54e9 - emb) * 0.516) / 1e9
    assert p.weights_gb == pytest.approx(expected)
    assert p.dtype == "nf4+fp16"


@pytest.mark.parametrize(
    ("facts", "low", "high"),
    [(QWEN25_15B, 1.5, 3.0), (PHI35_MINI, 3.0, 5.0), (R1_QWEN_7B, 6.5, 8.5)],
    ids=["qwen2.5-1.5b~2GB", "phi-3.5-mini~4GB", "r1-distill-qwen-7b~7-8GB"],
)
def test_qlora_per_gpu_figures_match_the_seeds(facts, low, high):
    # the seeds' figures: QLoRA at batch 1, modest sequence, gradient checkpointing on
    p = plan(facts, "sft", "rtx2080ti", seq_len=512, mode="qlora")
    assert low <= p.min_total_gb <= high
    assert p.fits and p.gradient_checkpointing


def test_lora_adapter_size_counts_all_linear_modules():
    # r·L·(q 2h + o 2h + k,v 2(h+kv) + gate,up 2(h+i) + down (i+h)), fp32 → 4 bytes
    p = plan(QWEN25_15B, "sft", "h100", seq_len=512, mode="lora", lora_r=16)
    h, i, kv = 1536, 8960, 1536 * 2 / 12
    n = 16 * 28 * (2 * h + 2 * h + 2 * (h + kv) + 2 * (h + i) + (i + h))
    assert p.adapter_gb == pytest.approx(n * 4 / 1e9)
    assert p.optimizer_gb == pytest.approx(n * 8 / 1e9)


def test_batch_and_accumulation_reach_the_effective_batch():
    p = plan(QWEN25_15B, "sft", "h100", seq_len=1024, mode="lora", effective_batch=64)
    assert p.per_device_batch * p.grad_accum * p.gpus == 64
    assert p.per_device_batch & (p.per_device_batch - 1) == 0  # a power of two
    assert p.total_gb <= 80 * 0.9
    # a smaller GPU gets a smaller per-device batch and more accumulation
    small = plan(QWEN25_15B, "sft", "rtx2080ti", seq_len=1024, mode="qlora", effective_batch=64)
    assert small.per_device_batch < p.per_device_batch
    assert small.per_device_batch * small.grad_accum == 64


def test_too_big_for_one_gpu_is_sharded():
    p = plan(LLAMA31_8B, "sft", "a100-40g", seq_len=2048, mode="full", effective_batch=64)
    assert p.topology == "deepspeed-zero3" and p.gpus in (2, 4, 8) and p.fits
    lora = plan(LLAMA31_8B, "sft", "rtx2080ti", seq_len=1024, mode="lora", effective_batch=16)
    assert lora.topology == "fsdp"
    assert plan(QWEN25_15B, "sft", "h100", seq_len=1024, gpus=4).topology == "ddp"
    assert plan(QWEN25_15B, "sft", "h100", seq_len=1024).topology == "single"


def test_dpo_doubles_and_grpo_adds_generation_memory():
    sft = plan(QWEN25_15B, "sft", "h100", seq_len=1024)
    dpo = plan(QWEN25_15B, "dpo", "h100", seq_len=1024)
    grpo = plan(QWEN25_15B, "grpo", "h100", seq_len=1024)
    assert dpo.activations_per_sample_gb > 1.9 * sft.activations_per_sample_gb
    assert grpo.extra_gb > 1.54e9 * 2 / 1e9  # vLLM's own weight copy plus KV cache


def test_facts_from_a_model_directory_are_exact(tiny_llama):
    f = model_facts(tiny_llama)
    # tied embeddings 49152×64 + 2 layers × (q,o 64×64; k,v 32×64; mlp 3×64×128; 2 norms) + final norm
    per_layer = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128 + 2 * 64
    assert f.params == 49152 * 64 + 2 * per_layer + 64
    assert (f.hidden_size, f.num_layers, f.kv_ratio, f.intermediate_size) == (64, 2, 0.5, 128)


def test_facts_from_a_zoo_name_without_download():
    from harness.zoo import planner_facts

    f = model_facts(planner_facts("qwen2.5-7b"))
    assert (f.params, f.hidden_size, f.num_layers) == (7.62e9, 3584, 28)


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match="(?i)qlora") as e:
        plan(QWEN25_15B, "sft", "cpu", mode="qlora")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown method"):
        plan(QWEN25_15B, "ppo", "h100")
    with pytest.raises(ValueError, match="hidden_size"):
        plan({"params": 1e9}, "sft", "h100")


def test_plan_renders_as_text_and_rich():
    p = plan(QWEN25_15B, "sft", "rtx2080ti", seq_len=512, mode="qlora", effective_batch=16)
    assert isinstance(p, Plan)
    text = str(p)
    assert "weights" in text and "topology" in text and f"{p.weights_gb:.2f} GB" in text
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(p)
    assert "optimizer states" in console.export_text()
