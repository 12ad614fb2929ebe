"""mode=qlora run for real: bitsandbytes' CPU backend quantizes a tiny model to 4-bit NF4, and
sft, dpo and grpo train LoRA adapters over it, as they would on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_trainer import FAST, assert_trained, chat_rows, write_jsonl

from trainers import train_stage
from trainers._config import resolve


def test_qlora_sft_stage_trains_adapters_over_a_4bit_model(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(8))
    m = train_stage(
        "sft",
        {**FAST, "dataset": str(data), "mode": "qlora", "max_steps": 2},
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "sft",
    )
    assert_trained(m, 2)
    assert m.mode == "qlora" and m.plan["mode"] == "qlora"


def test_qlora_dpo_stage_trains(tmp_path, tiny_llama):
    m = train_stage(
        "dpo",
        {
            **FAST,
            "mode": "qlora",
            "max_steps": 2,
            "n_prompts": 2,
            "samples_per_prompt": 2,
            "sample_max_new_tokens": 4,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "dpo",
    )
    assert_trained(m, 2)


def test_qlora_grpo_stage_trains_with_a_rollout_copy_of_the_4bit_policy(
    tmp_path, tiny_llama, monkeypatch
):
    import torch

    import trainers.grpo as grpo
    from trainers._rollout_trainer import CopyRolloutTrainer

    def length(completions, **_):
        return [min(1.0, len(c[-1]["content"]) / 64) for c in completions]

    monkeypatch.setattr(grpo, "reward_functions", lambda cfg: ([length], [1.0]))
    cls, seen = CopyRolloutTrainer, []
    generate = cls._generate_single_turn

    def recording(self, *args, **kwargs):
        out = generate(self, *args, **kwargs)
        seen.append(self.rollout_model)
        return out

    monkeypatch.setattr(cls, "_generate_single_turn", recording)
    m = train_stage(
        "grpo",
        {
            **FAST,
            "mode": "qlora",
            "max_steps": 2,
            "n_prompts": 2,
            "num_generations": 4,
            "max_completion_length": 6,
            "temperature": 1.5,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "grpo",
    )
    assert_trained(m, 2)
    # the copy holds dequantized weights (plain Linear layers in a float dtype), not packed bytes
    copy = seen[-1]
    q = copy.get_submodule("model.layers.0.self_attn.q_proj")
    assert type(q) is torch.nn.Linear and q.weight.dtype.is_floating_point
    assert q.weight.shape == (q.out_features, q.in_features)


def test_rollout_copy_of_a_4bit_policy_is_its_dequantized_base_plus_lora_delta(tiny_llama):
    import torch
    from bitsandbytes.functional import dequantize_4bit
    from peft import get_peft_model

    from trainers._model import load_model, lora_config
    from trainers._rollout import merged_copy

    model, _ = load_model(tiny_llama, quantization="bnb-4bit", for_training=True)
    model = get_peft_model(model, lora_config(8, 16, 0.0))
    name = "model.layers.0.self_attn.q_proj"
    layer = model.get_base_model().get_submodule(name)
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_(0, 0.02)
    copy = merged_copy(model, torch.float32)
    w = layer.base_layer.weight
    expected = dequantize_4bit(w.data, w.quant_state).float() + layer.get_delta_weight("default")
    torch.testing.assert_close(copy.get_submodule(name).weight, expected)


def _qlora_trainer(tmp_path: Path, model: Path):
    """A qlora sft stage's trl trainer, before training."""
    from trainers._stage import Stage
    from trainers.sft import SFTConfig, build_trainer

    cfg = resolve(
        SFTConfig,
        {
            **FAST,
            "model": str(model),
            "output_dir": str(tmp_path / "sft"),
            "dataset": "-",
            "mode": "qlora",
            "max_steps": 1,
        },
    )
    stage = Stage("sft", cfg)
    return stage, build_trainer(stage, cfg, chat_rows(8))


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_qlora_trainable_parameters_are_fp32_on_an_fp16_target(
    tmp_path, tiny_llama, target_dtype, dtype
):
    """trl casts a quantized model's adapters to bf16; the CUDA GradScaler of an fp16 target
    cannot unscale bf16 gradients, so the stage puts them back to fp32 before training."""
    import torch

    target_dtype(dtype)
    stage, trainer = _qlora_trainer(tmp_path, tiny_llama)
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.bfloat16}  # trl's cast
    stage.ready(trainer)
    expected = torch.float32 if dtype == "fp16" else torch.bfloat16  # bf16 keeps trl's choice
    assert {p.dtype for p in trainable} == {expected}


def _quant_state_bytes(p) -> int:
    """A 4-bit weight's block constants: absmax (double-quantized to uint8) and its own
    fp32 absmax and code book."""
    s = getattr(p, "quant_state", None)
    if s is None:
        return 0
    n = s.absmax.numel() * s.absmax.element_size()
    if s.state2 is not None:
        n += (s.state2.absmax.numel() + s.state2.code.numel()) * 4
    return n


def test_planned_qlora_weights_are_those_of_the_4bit_model_peft_prepares(tiny_llama, target_dtype):
    """What bitsandbytes leaves unquantized (embeddings, lm_head, norms), peft's
    prepare_model_for_kbit_training casts to fp32 whatever the target's dtype: on an fp16
    target the plan's weights are the loaded model's bytes, not half its embeddings."""
    import torch

    from trainers._model import load_model
    from trainers.planner import plan

    target_dtype("fp16")
    planned = plan(tiny_llama, "sft", "cpu", 64, "qlora")
    model, _ = load_model(tiny_llama, quantization="bnb-4bit", for_training=True)
    kept = [p for p in model.parameters() if getattr(p, "quant_state", None) is None]
    assert kept and {p.dtype for p in kept} == {torch.float32}
    loaded = sum(p.numel() * p.element_size() + _quant_state_bytes(p) for p in model.parameters())
    assert planned.weights_gb == pytest.approx(loaded / 1e9, rel=0.05)
