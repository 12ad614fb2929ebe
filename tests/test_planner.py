"""Memory planner: hand-checked figures and the batch/topology decisions."""

from __future__ import annotations

import math

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


def test_full_fine_tuning_holds_fp32_weights_and_lora_a_bf16_base():
    p = plan(LLAMA31_8B, "sft", "h100", seq_len=2048, mode="full")
    # full mode trains fp32 weights under bf16 autocast: 4 + 4 + 8 bytes a parameter
    assert p.weights_gb == pytest.approx(32.12, abs=1e-9)  # 8.03e9 × 4 B / 1e9
    assert p.gradients_gb == pytest.approx(32.12, abs=1e-9)  # fp32 grads
    assert p.optimizer_gb == pytest.approx(64.24, abs=1e-9)  # two fp32 AdamW states
    assert plan(LLAMA31_8B, "sft", "h100", seq_len=2048, mode="lora").weights_gb == pytest.approx(
        16.06  # the frozen base in bf16
    )


def test_qlora_counts_what_peft_upcasts_at_fp32_and_the_adapters_in_trls_dtype():
    p = plan(QWEN25_15B, "sft", "rtx2080ti", seq_len=512, mode="qlora")
    # prepare_model_for_kbit_training casts every parameter bitsandbytes left (the tied
    # embedding, counted once) to fp32: 4 bytes, not the fp16 compute dtype's 2
    emb = 151936 * 1536
    assert p.weights_gb == pytest.approx((emb * 4 + (1.54e9 - emb) * 0.516) / 1e9)
    assert p.dtype == "nf4+fp16"
    # trl makes a quantized model's adapters bf16 (2 bytes; grads and AdamW states alike); on
    # fp16 targets they are cast back to fp32, which the CUDA GradScaler needs
    h, i, kv = 1536, 8960, 1536 * 2 / 12
    n = 16 * 28 * (9 * h + 2 * kv + 3 * i)
    h100 = plan(QWEN25_15B, "sft", "h100", seq_len=512, mode="qlora")
    assert (h100.adapter_gb, h100.gradients_gb, h100.optimizer_gb) == pytest.approx(
        (n * 2 / 1e9, n * 2 / 1e9, n * 4 / 1e9)
    )
    assert p.adapter_gb == pytest.approx(n * 4 / 1e9)


@pytest.mark.parametrize(
    ("facts", "low", "high"),
    # r1-distill-qwen-7b: its untied 1.09e9 embedding parameters are upcast to fp32 by peft
    [(QWEN25_15B, 1.5, 3.0), (PHI35_MINI, 3.0, 5.0), (R1_QWEN_7B, 8.5, 10.0)],
    ids=["qwen2.5-1.5b~2GB", "phi-3.5-mini~4GB", "r1-distill-qwen-7b~9GB"],
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


def test_too_big_for_one_gpu_is_sharded_with_fsdp_never_zero3():
    # full fine-tuning shards with FSDP too: DeepSpeed is in no image, so ZeRO-3 is never planned
    p = plan(LLAMA31_8B, "sft", "a100-40g", seq_len=2048, mode="full", effective_batch=64)
    assert p.topology == "fsdp" and p.gpus in (2, 4, 8) and p.fits
    # FSDP shards weights, gradients and both AdamW states: 16.06 × 4 GB over p.gpus
    state = (p.weights_gb + p.gradients_gb + p.optimizer_gb) / p.gpus
    assert p.total_gb == pytest.approx(state + p.activations_gb + 0.5)
    lora = plan(LLAMA31_8B, "sft", "rtx2080ti", seq_len=1024, mode="lora", effective_batch=16)
    assert lora.topology == "fsdp"
    assert plan(QWEN25_15B, "sft", "h100", seq_len=1024, gpus=4).topology == "ddp"
    assert plan(QWEN25_15B, "sft", "h100", seq_len=1024).topology == "single"


def test_dpo_doubles_and_grpo_adds_generation_memory():
    sft = plan(QWEN25_15B, "sft", "h100", seq_len=1024)
    dpo = plan(QWEN25_15B, "dpo", "h100", seq_len=1024)
    grpo = plan(QWEN25_15B, "grpo", "h100", seq_len=1024)
    assert dpo.activations_per_sample_gb > 1.9 * sft.activations_per_sample_gb
    # vLLM colocate reserves its share of the card, whatever it holds: utilization × 80 GB
    u = grpo.vllm_gpu_memory_utilization
    assert grpo.extra_gb == pytest.approx(u * 80 * 2**30 / 1e9) and grpo.extra_gb > 1.54e9 * 2 / 1e9


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
    with pytest.raises(ValueError, match="unknown mode 'qlora8'") as e:
        plan(QWEN25_15B, "sft", "cpu", mode="qlora8")
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


# --- distill's KL logits and mixture of experts ------------------------------------------------

SMALL = dict(
    name="small",
    params=1e6,
    hidden_size=64,
    num_layers=2,
    vocab_size=1000,
    intermediate_size=128,
    kv_ratio=1.0,
)


KL = None  # distill's profile with kl_coef > 0, read from its config (set below)


def test_distill_kl_counts_five_full_vocabulary_fp32_tensors():
    global KL
    from trainers.distill import DistillConfig

    KL = DistillConfig(kl_coef=0.05).memory()
    assert DistillConfig().memory() == DistillConfig.MEMORY != KL
    # fp32 on cpu (4 bytes a value), no checkpointing, seq 512 (> the fused head's 256-row tile)
    layers = 2 * 512 * 4 * (8 * 64 + 2 * 64 + 4 * 128)  # 2 layers x seq x bytes x values/token
    kl = plan(SMALL, "distill", "cpu", seq_len=512, gradient_checkpointing=False, memory=KL)
    assert kl.activations_per_sample_gb * 1e9 == layers + 512 * 1000 * 4 * 5
    # the fused head on a CPU: the stage's tiles of 512 positions × min(vocab, 8192) columns, of
    # which trl's torch fallback holds 9 in fp32, once per step, whatever the batch
    tiles = 9 * 512 * 1000 * 4
    sft = plan(SMALL, "distill", "cpu", seq_len=512, gradient_checkpointing=False)
    assert sft.activations_per_sample_gb * 1e9 == layers
    assert sft.activations_gb * 1e9 == pytest.approx(sft.per_device_batch * layers + tiles)
    # on a GPU (bf16: 2 bytes a layer value) trl's kernel is estimated per row at 256 positions
    gpu = plan(SMALL, "distill", "h100", seq_len=512, gradient_checkpointing=False)
    assert gpu.activations_per_sample_gb * 1e9 == layers / 2 + 256 * 1000 * 4 * 2
    dpo = plan(SMALL, "dpo", "cpu", seq_len=512, gradient_checkpointing=False)
    assert dpo.activations_per_sample_gb * 1e9 == 2 * layers  # two sequences, through the head
    assert dpo.activations_gb * 1e9 == pytest.approx(dpo.per_device_batch * 2 * layers + tiles)
    # a GPU plan of dpo keeps full-sequence logits (trl's Triton head not yet measured there)
    dpo_gpu = plan(SMALL, "dpo", "h100", seq_len=512, gradient_checkpointing=False)
    assert dpo_gpu.activations_per_sample_gb * 1e9 == 2 * (layers / 2 + 512 * 1000 * 4 * 2)
    # full fine-tuning with KL keeps a frozen reference copy of the weights
    full = plan(SMALL, "distill", "cpu", seq_len=512, mode="full", memory=KL)
    assert full.extra_gb == full.weights_gb == 1e6 * 4 / 1e9


def test_grpo_on_a_cpu_plans_prompt_and_completion_and_the_merged_rollout_copy():
    from trainers.planner import plan_config

    cfg = {
        "max_length": 128,
        "max_completion_length": 64,
        "num_generations": 4,
        "effective_batch": 16,
        "per_device_batch": 16,
        "rollout_dtype": "bf16",
    }
    p = plan_config(SMALL, "grpo", "cpu", cfg)
    # a row is the prompt (max_length) and its completion; checkpointed: each of the 2 layers'
    # inputs (64 values a token) and one layer's 8h + 2kv + 4i values, 4 bytes each
    seq = 128 + 64
    row = 2 * seq * 64 * 4 + seq * 4 * (8 * 64 + 2 * 64 + 4 * 128)
    assert p.activations_per_sample_gb * 1e9 == pytest.approx(row)
    assert p.activations_gb * 1e9 == pytest.approx(16 * row + 9 * 512 * 1000 * 4)
    # HF rollouts sample from a merged copy of the policy: 1e6 parameters in bf16, then fp32
    assert p.extra_gb * 1e9 == pytest.approx(2e6) and p.per_device_batch == 16
    assert any("merged copy" in n for n in p.notes)
    fp32 = plan_config(SMALL, "grpo", "cpu", {**cfg, "rollout_dtype": "fp32"})
    assert fp32.extra_gb * 1e9 == pytest.approx(4e6)
    assert fp32.total_gb - p.total_gb == pytest.approx(2e6 / 1e9)
    # trl's own path generates on the training model: no copy; nor on a GPU under auto
    assert plan_config(SMALL, "grpo", "cpu", {**cfg, "rollout_dtype": "train"}).extra_gb == 0
    gpu = {**cfg, "rollout_dtype": "auto", "use_vllm": "false"}
    assert plan_config(SMALL, "grpo", "h100", gpu).extra_gb == 0


def test_plan_config_reads_a_resolved_stage_config():
    from trainers import resolved_config
    from trainers.planner import plan_config

    cfg = resolved_config("distill", {"kl_coef": 0.05, "max_length": 512, "nproc": 2})
    p = plan_config(SMALL, "distill", "cpu", cfg)
    assert p.seq_len == 512 and p.gpus == 2 and any("5 full-vocabulary" in n for n in p.notes)


MIXTRAL = dict(
    name="mixtral",
    params=46.70e9,
    hidden_size=4096,
    num_layers=32,
    vocab_size=32000,
    intermediate_size=14336,
    kv_ratio=8 / 32,
    tied_embeddings=False,
    num_experts=8,
    experts_per_token=2,
)


def test_moe_holds_all_experts_and_computes_with_the_active_ones():
    dense = {**MIXTRAL, "num_experts": 1, "experts_per_token": 1}
    moe = plan(MIXTRAL, "dpo", "a100", seq_len=2048, gpus=8, effective_batch=64)
    assert moe.weights_gb == 46.70e9 * 2 / 1e9  # every expert's weights, bf16
    experts = 8 * 32 * 3 * 4096 * 14336
    assert moe.active_params == 46.70e9 - experts * 6 / 8  # 2 of 8 experts per token
    assert 12.5e9 < moe.active_params < 13.2e9  # Mixtral's published 12.9B active
    # activations: per token and layer the 2 routed experts keep 4i values each
    h, kv, i = 4096, 1024, 14336
    layer = 2048 * 2 * (8 * h + 2 * kv + 4 * i * 2)
    per_sample = 2 * (32 * 2048 * h * 2 + layer + 2048 * 32000 * 4 * 2)  # dpo: chosen + rejected
    assert moe.activations_per_sample_gb * 1e9 == per_sample
    assert moe.topology == "fsdp" and moe.gpus == 8 and moe.fits
    # LoRA all-linear adapts attention only (the experts are fused parameters, not Linear)
    assert moe.adapter_gb * 1e9 == 16 * 32 * (6 * h + 2 * kv) * 4
    # qlora leaves the fused experts in bf16: only attention (and nothing else) is 4-bit
    q = plan(MIXTRAL, "sft", "a100", mode="qlora")
    kept = 2 * 32000 * 4096 + experts  # and peft upcasts them to fp32
    assert q.weights_gb == pytest.approx((kept * 4 + (46.70e9 - kept) * 0.516) / 1e9)
    assert (
        plan(dense, "dpo", "a100", seq_len=2048, gpus=8).activations_per_sample_gb
        < moe.activations_per_sample_gb
    )


def test_moe_facts_from_the_zoo_and_a_config(tmp_path):
    import json

    from harness.zoo import planner_facts

    f = model_facts(planner_facts("mistralai/Mixtral-8x7B-Instruct-v0.1"))
    assert (f.num_experts, f.experts_per_token, f.params) == (8, 2, 46.70e9)
    cfg = {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    f = model_facts(tmp_path)
    # no weights: counted from the shapes, all 8 experts' MLPs in every layer
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 8 * 3 * 4096 * 14336 + 2 * 4096
    assert f.params == 32 * per_layer + 2 * 32000 * 4096 + 4096
    assert 46.6e9 < f.params < 46.8e9 and (f.num_experts, f.experts_per_token) == (8, 2)
    with pytest.raises(ValueError, match="experts_per_token 3 must be between 1 and num_experts 2"):
        model_facts({**SMALL, "num_experts": 2, "experts_per_token": 3})


def test_dpo_models_grid_shows_each_train_cell_topology_and_gpus(tmp_path):
    from harness.api import grid_rows
    from harness.zoo import planner_facts
    from trainers.planner import plan_config

    train = {r["model"]: r for r in grid_rows("dpo-models", tmp_path) if r["kind"] == "train"}
    assert (train["llama-3-8b-instruct"]["topology"], train["llama-3-8b-instruct"]["gpus"]) == (
        "single",
        1,
    )
    for name in (
        "mixtral-8x7b-instruct-v0.1",
        "llama-3-70b-instruct",
        "qwen2-72b-instruct",
        "yi-34b-chat",
        "command-r-v01",
    ):
        row = train[name]
        assert (row["nproc"], row["topology"], row["gpus"]) == (8, "fsdp", 8), name
        cfg = row["inputs"]["dpo"]
        p = plan_config(planner_facts(name), "dpo", "a100", {**cfg, "nproc": row["nproc"]})
        assert p.fits and p.total_gb <= 80 * 0.9, name


def test_grpo_without_vllm_plans_no_engine_copy_and_a_set_batch_is_planned_as_set():
    from trainers.planner import plan_config

    colocate = plan(QWEN25_15B, "grpo", "h100", seq_len=1024, num_generations=8, completion_len=512)
    hf = plan(QWEN25_15B, "grpo", "h100", seq_len=1024, num_generations=8, vllm=False)
    # vLLM sized for its bf16 weight copy, the KV cache of 8 sequences of 1024 + 512 tokens and
    # 1 GB of runtime, as a share of the 80 GiB card rounded up to 0.01; it reserves that share
    kv = 2 * 28 * 1536 * (2 / 12) * 1536 * 2 * 8
    card = 80 * 2**30 / 1e9
    u = math.ceil((1.54e9 * 2 + kv + 1e9) / (card * 1e9) * 100) / 100
    assert colocate.vllm_gpu_memory_utilization == u == 0.06
    assert colocate.extra_gb == pytest.approx(u * card) and hf.extra_gb == 0
    # a set share is planned as set; qlora and an image without vLLM mean HF rollouts
    assert plan(QWEN25_15B, "grpo", "h100", vllm_utilization=0.3).extra_gb == pytest.approx(
        0.3 * card
    )
    assert plan(QWEN25_15B, "grpo", "h100", mode="qlora").extra_gb == 0
    assert plan(QWEN25_15B, "grpo", "rtx2080ti", mode="qlora").extra_gb == 0
    # the planner alone takes the largest batch that fits; a stage's per_device_batch is kept
    free = plan(QWEN25_15B, "sft", "rtx2080ti", seq_len=1536, mode="qlora", effective_batch=32)
    one = plan(
        QWEN25_15B,
        "sft",
        "rtx2080ti",
        seq_len=1536,
        mode="qlora",
        effective_batch=32,
        per_device_batch=1,
    )
    assert free.per_device_batch > 1 and (one.per_device_batch, one.grad_accum) == (1, 32)
    assert one.total_gb == pytest.approx(one.min_total_gb)
    cfg = {
        "max_length": 1536,
        "mode": "qlora",
        "effective_batch": 32,
        "lora_r": 32,
        "nproc": 2,
        "use_vllm": "false",
        "per_device_batch": 1,
    }
    p = plan_config(QWEN25_15B, "grpo", "rtx2080ti", cfg)
    assert (p.extra_gb, p.per_device_batch, p.grad_accum, p.gpus) == (0, 1, 16, 2)


def test_bench_plan_grid_sizes_every_rlcausality_train_cell_for_the_11_gb_card(
    tmp_path, monkeypatch
):
    import json

    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["plan", "--grid", "rlcausality", "--json"])
    assert out.exit_code == 0, out.output
    cells = json.loads(out.output)
    assert {(c["model"], c["stage"]) for c in cells} == {
        (m, s)
        for m in ("qwen2.5-1.5b", "phi-3.5-mini-instruct", "deepseek-r1-distill-qwen-7b")
        for s in ("sft", "sft+grpo")
    }
    card = 11 * 2**30 / 1e9  # 11 GiB
    for c in cells:
        p = c["plan"]
        # as the grid sets them: 2 GPUs under ddp (qlora is never sharded, the rollouts are HF's),
        # batch 1, the seed's accumulation
        assert (p["gpus"], p["topology"], p["per_device_batch"]) == (2, "ddp", 1), c
        assert p["device_memory_gb"] == round(card, 2) and p["extra_gb"] == 0, c
        # a shipped grid plans: every cell fits 0.9 of the card
        assert p["fits"] and p["total_gb"] <= 0.9 * card, c
    accum = {(c["model"], c["stage"]): c["plan"]["grad_accum"] for c in cells}
    assert (
        accum[("qwen2.5-1.5b", "sft")] == 16
        and accum[("deepseek-r1-distill-qwen-7b", "sft+grpo")] == 32
    )


def test_rlcausality_7b_grpo_fits_at_lora_rank_32_and_not_at_sfts_64():
    """The grid's reason for the 7B model's GRPO rank: at sft's rank 64 the fp32 adapter, its
    gradients and AdamW states (2.74 GB) leave no room for one 1,536-token sequence."""
    from harness.grid import expand, load_grid
    from harness.zoo import planner_facts
    from trainers.planner import plan_config

    exp = expand(load_grid("rlcausality"))
    (cell,) = [
        c for c in exp.train if (c.model, c.stage) == ("deepseek-r1-distill-qwen-7b", "sft+grpo")
    ]
    assert (cell.resolved["lora_r"], cell.resolved["lora_alpha"]) == (32, 32)
    facts = planner_facts(cell.model)
    shipped = plan_config(facts, "grpo", "rtx2080ti", cell.resolved)
    at_64 = plan_config(facts, "grpo", "rtx2080ti", cell.resolved | {"lora_r": 64})
    assert (shipped.fits, at_64.fits) == (True, False)
    assert (round(shipped.total_gb, 2), round(at_64.total_gb, 2)) == (10.22, 11.59)
    # the batch is already 1 a GPU: nothing but the state's size could make room
    assert at_64.per_device_batch == shipped.per_device_batch == 1
    assert at_64.adapter_gb + at_64.gradients_gb + at_64.optimizer_gb == pytest.approx(
        2 * (shipped.adapter_gb + shipped.gradients_gb + shipped.optimizer_gb)
    )


def test_grpo_hf_rollouts_on_a_gpu_plan_the_kv_cache_and_generate_in_parts_when_it_does_not_fit():
    """trl generates a whole generation batch (per_device_batch x steps_per_generation, by
    default x grad_accum) on the training model at once. rlcausality's phi GRPO (QLoRA, HF
    rollouts, 1 x 16 a GPU) would hold the KV cache of 16 sequences of 1,536 + 256 tokens:
    2 (k, v) x 32 layers x 3072 x 1792 tokens x 2 bytes = 0.705 GB each, 11.3 GB on an 11 GB
    card; it generates 8 at a time. DeepSeek-7B's 4 kv heads of 28 make its cache 1/7 of that
    width: 16 of its 32 fit."""
    from harness.grid import expand, load_grid
    from harness.zoo import planner_facts
    from trainers.planner import plan_config

    cells = {c.model: c for c in expand(load_grid("rlcausality")).train if c.method == "grpo"}
    phi = plan_config(
        planner_facts("phi-3.5-mini-instruct"),
        "grpo",
        "rtx2080ti",
        cells["phi-3.5-mini-instruct"].resolved,
    )
    per_seq = 2 * 32 * 3072 * (1536 + 256) * 2
    assert (phi.per_device_batch, phi.grad_accum, phi.steps_per_generation) == (1, 16, 8)
    assert phi.generation_gb == pytest.approx(8 * per_seq / 1e9)
    assert phi.fits and phi.total_gb <= phi.device_memory_gb * 0.9
    # the whole generation batch would not have fit: fixed state + 16 sequences
    fixed = phi.total_gb - phi.generation_gb
    assert fixed + 16 * per_seq / 1e9 > phi.device_memory_gb * 0.9
    ds = plan_config(
        planner_facts("deepseek-r1-distill-qwen-7b"),
        "grpo",
        "rtx2080ti",
        cells["deepseek-r1-distill-qwen-7b"].resolved,
    )
    assert (ds.grad_accum, ds.steps_per_generation) == (32, 16)
    assert ds.generation_gb == pytest.approx(16 * 2 * 28 * 512 * (1536 + 1024) * 2 / 1e9)
    # qwen2.5-1.5b: all 16 at once fit, so trl keeps its default (None)
    qwen = plan_config(
        planner_facts("qwen2.5-1.5b"), "grpo", "rtx2080ti", cells["qwen2.5-1.5b"].resolved
    )
    assert qwen.steps_per_generation is None
    assert qwen.generation_gb == pytest.approx(16 * 2 * 28 * 256 * (1536 + 256) * 2 / 1e9)


def test_grpo_hf_rollouts_whose_smallest_generation_batch_does_not_fit_are_refused_in_one_line():
    from trainers.planner import plan

    # 4,096-token prompts + 4,096 completions on phi's shape: one prompt group of 8 sequences
    # (1 a GPU x 2 GPUs x 4 steps) holds 2 x 32 x 3072 x 8192 x 2 bytes x 4 = 12.9 GB a GPU
    phi = dict(name="phi", params=3.82e9, hidden_size=3072, num_layers=32, vocab_size=32064)
    p = plan(
        phi, "grpo", "rtx2080ti", seq_len=4096, mode="qlora", effective_batch=32, gpus=2,
        search_gpus=False, completion_len=4096, num_generations=8, vllm=False, per_device_batch=1,
    )  # fmt: skip
    assert not p.fits and p.steps_per_generation == 4
    line = p.refusal()
    assert "KV cache of 4 sequences of 8192 tokens" in line and "\n" not in line
    assert "use vLLM" in line
    # with vLLM colocate, or on a CPU, no KV cache is planned here
    assert plan(phi, "grpo", "h100", vllm=True).generation_gb == 0
    assert plan(phi, "grpo", "cpu").steps_per_generation is None


def test_zoo_kv_heads_give_the_planner_grouped_query_attention():
    """Published configs: Qwen2.5-7B has 28 attention heads and 4 kv heads, Llama-3.1-8B 32
    and 8; an entry without them is planned with as many kv heads as heads."""
    from harness.zoo import planner_facts

    assert planner_facts("qwen2.5-7b")["kv_ratio"] == pytest.approx(4 / 28)
    assert planner_facts("deepseek-r1-distill-qwen-7b")["kv_ratio"] == pytest.approx(4 / 28)
    assert planner_facts("tulu-3-8b")["kv_ratio"] == pytest.approx(8 / 32)
    assert "kv_ratio" not in planner_facts("phi-3.5-mini-instruct")


@pytest.mark.parametrize("method", ["dpo", "orpo"])
def test_a_sharded_pair_stage_that_samples_its_pairs_is_refused_and_one_given_pairs_is_not(method):
    """A stage sharded with fsdp loads the model on the CPU until the Trainer shards it; a pair
    method's verifier pairs are sampled before that, so on a GPU machine they would be
    generated on the CPU for hours. With dataset= pairs nothing is sampled."""
    from trainers.planner import plan_config

    big = dict(name="big", params=70e9, hidden_size=8192, num_layers=80, vocab_size=128256)
    sampled = plan_config(big, method, "h100", {"sources": "arithmetic", "nproc": 8})
    assert sampled.topology == "fsdp" and not sampled.fits
    line = sampled.refusal()
    assert "sampled with the starting model before training" in line and "dataset=" in line
    assert "\n" not in line
    given = plan_config(big, method, "h100", {"dataset": "pairs.jsonl", "nproc": 8})
    assert given.topology == "fsdp" and given.fits and given.refused_because is None
    # one GPU holds a small model: its samples are drawn on that GPU, nothing to refuse
    small = dict(name="small", params=1.5e9, hidden_size=1536, num_layers=28, vocab_size=151936)
    assert plan_config(small, method, "h100", {"sources": "arithmetic"}).fits
