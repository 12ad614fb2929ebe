"""Trainers on tiny random models: each method trains 2–5 steps, logs a loss and moves its
LoRA B matrices off zero; stages chain; divergence and early stopping stop a run; bad
input is a one-line ValueError. Subprocess tests (resume, DDP) are in test_trainer_dist.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from trainers import METHODS, method_config, train_stage
from trainers._config import resolve
from trainers.manifest import Manifest, read_manifest

FAST = {"effective_batch": 4, "max_length": 96, "learning_rate": 1e-2, "save_steps": 100}


def lora_b_norms(adapter_dir: Path) -> dict[str, float]:
    from safetensors.torch import load_file

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return {k: float(v.norm()) for k, v in tensors.items() if "lora_B" in k}


def assert_trained(manifest: Manifest, steps: int) -> None:
    assert manifest.steps == steps
    assert len(manifest.losses) == steps and all(math.isfinite(x) for x in manifest.losses)
    norms = lora_b_norms(Path(manifest.output_dir) / "adapter")
    assert norms and all(n > 0 for n in norms.values())  # peft initialises every B at zero


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat_rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} + {i}?"},
                {
                    "role": "assistant",
                    "content": f"<think>\nStep 1: {i} + {i} = {2 * i}\n</think>\nThe answer is {2 * i}.",
                },
            ]
        }
        for i in range(n)
    ]


# --- bad input: one line, before any model is loaded --------------------------------------


def test_unknown_method_lists_the_methods(tmp_path, tiny_llama):
    with pytest.raises(ValueError) as e:
        train_stage("ppo", {}, base_model=tiny_llama, parent=None, output_dir=tmp_path)
    message = str(e.value)
    assert "\n" not in message and "'ppo'" in message
    assert METHODS and all(m in message for m in METHODS)


def test_a_seed_in_the_config_is_refused_not_silently_replaced(tmp_path, tiny_llama):
    with pytest.raises(
        ValueError, match="sft config: seed set in the config would be overridden; pass seed="
    ):
        train_stage("sft", {"seed": 1}, base_model=tiny_llama, parent=None, output_dir=tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def test_checkpoints_of_another_config_are_not_resumed(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(12))
    config = {**FAST, "dataset": str(data), "max_steps": 2, "save_steps": 1}
    out = tmp_path / "stage"
    first = train_stage("sft", config, base_model=tiny_llama, parent=None, output_dir=out)
    assert_trained(first, 2)
    for changed, kwargs in (({**config, "learning_rate": 1e-3}, {}), (config, {"seed": 7})):
        with pytest.raises(ValueError) as e:
            train_stage(
                "sft", changed, base_model=tiny_llama, parent=None, output_dir=out, **kwargs
            )
        assert "holds checkpoints of another config" in str(e.value) and "\n" not in str(e.value)
        assert (
            "learning_rate: 0.01 there, 0.001 now" if not kwargs else "seed: 0 there, 7 now"
        ) in str(e.value)
    assert (out / "manifest.json").exists()  # nothing computed is lost
    # running longer is a resume: the same config with a larger max_steps continues at step 2
    longer = train_stage(
        "sft", {**config, "max_steps": 3}, base_model=tiny_llama, parent=None, output_dir=out
    )
    assert longer.steps == 3 and longer.resumed_from.endswith("checkpoint-2")


def test_missing_column_names_file_column_and_fix(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ValueError) as e:
        train_stage(
            "sft",
            {"dataset": str(data)},
            base_model=tiny_llama,
            parent=None,
            output_dir=tmp_path / "o",
        )
    message = str(e.value)
    assert "\n" not in message
    assert "bad.jsonl" in message and "'messages'" in message and "prompt+completion" in message
    assert "rename" in message


def test_quantization_the_target_lacks_is_a_one_line_error(tmp_path, tiny_llama):
    from trainers._model import load_model

    with pytest.raises(ValueError, match="target cpu does not support bnb-8bit") as e:
        load_model(tiny_llama, quantization="bnb-8bit")
    assert "\n" not in str(e.value)


def test_config_flows_defaults_then_yaml_then_cli(tmp_path):
    from trainers.distill import DistillConfig

    yaml_file = tmp_path / "d.yaml"
    yaml_file.write_text("learning_rate: 3.0e-4\nkl_coef: 0.5\nmax_steps: 7\n")
    cfg = resolve(DistillConfig, yaml_file, ["kl_coef=0.25", "merge=true", "levels=1,2"])
    assert (cfg.learning_rate, cfg.kl_coef, cfg.max_steps, cfg.merge, cfg.levels) == (
        3e-4,
        0.25,
        7,
        True,
        "1,2",
    )
    assert cfg.packing is True and cfg.max_grad_norm == 1.0  # untouched defaults
    assert resolve(DistillConfig, None, ["max_grad_norm=0.3"]).max_grad_norm == 0.3
    with pytest.raises(
        ValueError, match="unknown DistillConfig field 'kl_coeff'; did you mean kl_coef"
    ):
        resolve(DistillConfig, yaml_file, ["kl_coeff=1"])
    with pytest.raises(ValueError, match="'max_steps' must be an integer"):
        resolve(DistillConfig, {"max_steps": 2.5})


# --- LoRA targets come from the architecture ------------------------------------------------


def _lora_targets(model) -> set[str]:
    from peft import get_peft_model

    from trainers._model import lora_config

    peft_model = get_peft_model(model, lora_config(4, 8, 0.0))
    return {
        name.split(".")[-1] for name, mod in peft_model.named_modules() if hasattr(mod, "lora_A")
    }


def test_all_linear_covers_llama_qwen2_and_fused_phi3(tiny_llama, tiny_qwen2):
    from transformers import AutoModelForCausalLM, Phi3Config, Phi3ForCausalLM

    separate = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert _lora_targets(AutoModelForCausalLM.from_pretrained(tiny_llama)) == separate
    assert _lora_targets(AutoModelForCausalLM.from_pretrained(tiny_qwen2)) == separate
    phi3 = Phi3ForCausalLM(
        Phi3Config(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=256,
            pad_token_id=0,
        )
    )
    assert _lora_targets(phi3) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}


# --- each method trains ---------------------------------------------------------------------


def read_train_rows(stage_dir):
    import gzip

    with gzip.open(stage_dir / "train_rows.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_sft_packs_trains_and_writes_a_manifest(tmp_path, tiny_llama):
    rows = chat_rows(12)
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    out = tmp_path / "sft"
    m = train_stage(
        "sft",
        {**FAST, "dataset": str(data), "max_steps": 3, "max_grad_norm": 0.5},
        base_model=tiny_llama,
        parent=None,
        output_dir=out,
        seed=3,
    )
    assert_trained(m, 3)
    expected = hashlib.sha256(
        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    ).hexdigest()
    assert m.data == {"source": str(data), "rows": 12, "sha256": expected}
    assert m.method == "sft" and m.seed == 3 and m.parent is None and m.mode == "lora"
    assert m.base_weights == str(tiny_llama) and m.tokens > 0 and m.tokens_per_s > 0
    assert m.peak_memory_gb["after_train"] >= m.peak_memory_gb["after_load"] > 0
    # the stage's own peaks, split: host RSS (the CPU figure above), no CUDA figure on CPU
    assert m.peak_rss_bytes / 1e9 == pytest.approx(m.peak_memory_gb["after_train"], abs=1e-3)
    assert m.peak_cuda_bytes is None
    assert m.planned_memory_gb > 0 and m.plan["per_device_batch"] * m.plan["grad_accum"] == 4
    assert {"torch", "transformers", "trl", "peft"} <= set(m.packages)
    assert read_manifest(out).to_dict() == json.loads(json.dumps(m.to_dict(), default=str))
    saved = resolve(method_config("sft"), out / "config.yaml")
    assert saved.max_grad_norm == 0.5 and saved.packing and saved.output_dir == str(out)
    assert (out / "adapter" / "tokenizer_config.json").exists() and not (out / "merged").exists()

    # the stage loads by path: base + adapter, and differs from the base
    import torch

    from trainers._model import load_model

    trained, tok = load_model(out)
    base, _ = load_model(tiny_llama)
    ids = tok("What is 2 + 2?", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(trained(ids).logits, base(ids).logits)


def test_distill_with_kl_then_grpo_chains_on_merged_weights(tmp_path, tiny_qwen2, monkeypatch):
    distill = train_stage(
        "distill",
        {**FAST, "max_steps": 3, "n_per_level": 8, "levels": "1,2", "kl_coef": 0.5},
        base_model=tiny_qwen2,
        parent=None,
        output_dir=tmp_path / "distill",
    )
    assert_trained(distill, 3)
    from tasks.math import generate, test_questions

    # 8 items per level, less those that repeat a leaderboard test question (level 1's space is small)
    kept = [i for i in generate(8, seed=0, levels=(1, 2)) if i["question"] not in test_questions()]
    assert len(kept) == 12
    assert distill.data["rows"] == len(kept) and distill.data["source"].startswith(
        "arithmetic(levels=1,2"
    )
    # the stage writes the text of every row it trained on (trl tokenized them: decoded back)
    trained_on = read_train_rows(tmp_path / "distill")
    assert len(trained_on) == len(kept)
    assert sorted(
        next(q for q in (i["question"] for i in kept) if q in t) for t in trained_on
    ) == sorted(i["question"] for i in kept)

    # tiny random models never answer arithmetic, so verifier rewards would all be 0 (no
    # advantage, no gradient): reward the text length instead; the verifier wrapping is
    # tested in test_grpo_rewards_are_the_task_verifier
    import trainers.grpo as grpo

    def length(completions, **_):
        return [min(1.0, len(c[-1]["content"]) / 64) for c in completions]

    monkeypatch.setattr(grpo, "reward_functions", lambda cfg: ([length], [1.0]))
    g = train_stage(
        "grpo",
        {
            **FAST,
            "max_steps": 2,
            "n_prompts": 2,
            "num_generations": 4,
            "max_completion_length": 8,
            "temperature": 1.5,
        },
        base_model=tiny_qwen2,
        parent=tmp_path / "distill",
        output_dir=tmp_path / "grpo",
    )
    assert_trained(g, 2)
    prompts = read_train_rows(tmp_path / "grpo")
    assert len(prompts) == 2 and all("<think>" not in p and p for p in prompts)
    merged = tmp_path / "distill" / "merged"
    # kept relative to the stage folder: a moved results folder still finds its parent
    assert g.base_weights == "../distill/merged" and g.parent == "../distill"
    assert g.output_dir == str((tmp_path / "grpo").resolve())
    assert g.base_model == str(tiny_qwen2)

    # the parent's merged weights are base + its adapter, not the base
    from safetensors.torch import load_file

    base = load_file(str(tiny_qwen2 / "model.safetensors"))
    merged_w = load_file(str(merged / "model.safetensors"))
    key = next(k for k in base if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert not (base[key] == merged_w[key]).all()


@pytest.mark.parametrize("per_device_batch", [None, 4])  # packed: 1 row x 4 accumulated; 4 x 1
def test_distill_kl_term_is_logged_and_grows_from_zero(tmp_path, tiny_llama, per_device_batch):
    out = tmp_path / "d"
    train_stage(
        "distill",
        {
            **FAST,
            "max_steps": 2,
            "n_per_level": 8,
            "kl_coef": 1.0,
            "per_device_batch": per_device_batch,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=out,
    )
    logs = [e for e in json.loads((out / "log_history.json").read_text()) if "kl" in e]
    assert logs[0]["kl"] == pytest.approx(
        0.0, abs=1e-6
    )  # the adapter starts as the identity: π_θ = π_ref
    assert logs[1]["kl"] > 0
    # the logged loss is NLL + kl_coef · KL
    assert logs[1]["loss"] == pytest.approx(logs[1]["nll"] + 1.0 * logs[1]["kl"], rel=1e-4)


def test_dpo_builds_pairs_with_the_verifier_and_trains(tmp_path, tiny_llama):
    m = train_stage(
        "dpo",
        {
            **FAST,
            "max_steps": 2,
            "n_prompts": 4,
            "samples_per_prompt": 2,
            "sample_max_new_tokens": 6,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "dpo",
    )
    assert_trained(m, 2)
    assert len(read_train_rows(tmp_path / "dpo")) == 4
    # a random model is never right: every prompt pairs the teacher's trace against a sample
    assert m.data["rows"] == 4 and m.data["source"].startswith("pairs(math verifier")


def test_grpo_rewards_are_the_task_verifier():
    from trainers.grpo import GRPOConfig, reward_functions

    funcs, weights = reward_functions(GRPOConfig(format_weight=0.5))
    completions = [
        [
            {
                "role": "assistant",
                "content": "<think>\nStep 1: 2 + 2 = 4\n</think>\nThe answer is 4.",
            }
        ],
        [{"role": "assistant", "content": "The answer is 5."}],
    ]
    assert funcs[0](completions, reference=["4", "4"]) == [1.0, 0.0]
    assert funcs[1](completions, reference=["4", "4"]) == [1.0, 0.0]
    assert weights == [1.0, 0.5]
    with pytest.raises(ValueError, match="reward 'bleu' unknown"):
        reward_functions(GRPOConfig(reward="bleu"))


def test_grpo_warns_once_when_no_group_has_reward_variance(caplog):
    from types import SimpleNamespace

    from trainers.grpo import NoRewardSignal

    cb = NoRewardSignal(3)
    state = SimpleNamespace(global_step=0)
    with caplog.at_level("WARNING", logger="trainers.grpo"):
        for step, frac in enumerate([1.0, 1.0, 0.75, 1.0, 1.0, None, 1.0, 1.0, 1.0], 1):
            state.global_step = step
            cb.on_log(
                None, state, None, logs={} if frac is None else {"frac_reward_zero_std": frac}
            )
            assert len(caplog.records) == (step >= 7)  # the run restarts after 0.75
    assert "no reward variance in any group for 3 steps (to step 7)" in caplog.text
    off = NoRewardSignal(0)
    with caplog.at_level("WARNING", logger="trainers.grpo"):
        for _ in range(5):
            off.on_log(None, state, None, logs={"frac_reward_zero_std": 1.0})
    assert len(caplog.records) == 1


# --- grpo rollouts from a merged copy (trainers/_rollout.py) ---------------------------------


def test_rollout_draw_samples_the_softmax_and_never_a_masked_token():
    import torch

    from trainers._rollout import draw

    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    freq = torch.bincount(draw(probs.log().expand(20_000, 4)), minlength=4) / 20_000
    assert freq[3] == 0  # log(0) = -inf: never drawn
    assert torch.allclose(freq[:3], probs[:3], atol=0.015)  # ~4 sd of a binomial(20000, 0.5)


def test_rollout_sampler_at_top_k_1_is_greedy_generate(tiny_llama):
    """Left padding, a prompt repeated (its prefill shared) and the first EOS ending a row:
    with top_k=1 every draw is the argmax, so the loop must reproduce HF greedy generate."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers._rollout import sample

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    prompts = [[1, 5, 9, 13, 17], [1, 6, 2000], [1, 5, 9, 13, 17], [1, 700, 8, 9]]
    width = max(map(len, prompts))

    def greedy(eos: int) -> list[list[int]]:
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=12,
                eos_token_id=eos,
                pad_token_id=0,
                top_k=None,
                top_p=None,
                temperature=None,
            )
        rows = out[:, width:].tolist()
        return [r[: r.index(eos) + 1] if eos in r else r for r in rows]

    eos = greedy(eos=2)[0][3]  # a token the first row emits: that row ends there
    expected = greedy(eos)
    got = sample(model, prompts, max_new_tokens=12, eos_token_ids=[eos], pad_token_id=0, top_k=1)
    assert got == expected
    assert got[0] == got[2] and got[0][-1] == eos and len(got[0]) <= 4
    assert any(len(r) == 12 for r in got)  # and a row without EOS keeps all its tokens


def test_rollout_copy_is_the_policy_with_its_lora_delta_folded_in(tiny_llama):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainers._rollout import merged_copy, sync

    torch.manual_seed(0)
    lora = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear", init_lora_weights=False
    )  # random B: a nonzero delta from the start
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), lora)
    name = "model.layers.1.mlp.down_proj"
    layer = policy.get_base_model().get_submodule(name)

    def merged() -> torch.Tensor:  # by hand: W + B A alpha / r
        return (
            layer.base_layer.weight
            + layer.lora_B["default"].weight @ layer.lora_A["default"].weight * 2.0
        ).detach()

    gen = merged_copy(policy, torch.float32)
    assert not any("lora" in n for n, _ in gen.named_parameters()) and not gen.training
    torch.testing.assert_close(gen.get_submodule(name).weight, merged())
    assert not layer.merged  # the training model keeps its adapter apart
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    policy.eval()  # the copy has no dropout; compare with the policy's dropout off too
    with torch.no_grad():
        torch.testing.assert_close(gen(ids).logits, policy(ids).logits, atol=1e-5, rtol=1e-4)
    # an update to the adapter reaches the copy at the next sync
    with torch.no_grad():
        layer.lora_B["default"].weight.add_(0.5)
    sync(gen, policy)
    torch.testing.assert_close(gen.get_submodule(name).weight, merged())
    bf16 = merged_copy(policy, torch.bfloat16)
    assert torch.equal(bf16.get_submodule(name).weight, merged().to(torch.bfloat16))


def test_grpo_rollouts_come_from_a_copy_synced_after_every_step(tmp_path, tiny_llama, monkeypatch):
    import torch
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    import trainers.grpo as grpo
    from trainers._host import CPU_TILE, fused_head_tile
    from trainers._rollout import cpu_has_bf16
    from trainers._rollout_trainer import CopyRolloutTrainer
    from trainers.planner import model_facts

    def length(completions, **_):
        return [min(1.0, len(c[-1]["content"]) / 64) for c in completions]

    monkeypatch.setattr(grpo, "reward_functions", lambda cfg: ([length], [1.0]))
    cls, name, seen = CopyRolloutTrainer, "model.layers.0.self_attn.q_proj", []
    generate = cls._generate_single_turn

    def recording(self, *args, **kwargs):
        out = generate(self, *args, **kwargs)
        layer = self.model.get_base_model().get_submodule(name)
        delta = (
            layer.lora_B["default"].weight
            @ layer.lora_A["default"].weight
            * layer.scaling["default"]
        )
        copy_weight = self.rollout_model.get_submodule(name).weight
        seen.append(
            (
                self.state.global_step,
                copy_weight.clone(),
                (layer.base_layer.weight + delta).detach(),
                out,
            )
        )
        return out

    monkeypatch.setattr(cls, "_generate_single_turn", recording)
    monkeypatch.setattr(kernel, "TOKEN_CHUNK_SIZE", 4096)  # trl's tiles until the stage starts
    monkeypatch.setattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", 32768)
    config = {
        **FAST,
        "max_steps": 3,
        "n_prompts": 2,
        "num_generations": 4,
        "max_completion_length": 8,
        "temperature": 1.5,
    }
    m = train_stage("grpo", config, base_model=tiny_llama, parent=None, output_dir=tmp_path)
    assert_trained(m, 3)
    assert [step for step, *_ in seen] == [0, 1, 2]  # one generation per step, before its update
    dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
    # a CPU stage scores in small fused-head tiles, and its plan counts the copy it sampled from
    assert fused_head_tile() == CPU_TILE
    copy_bytes = model_facts(tiny_llama).params * (2 if dtype == torch.bfloat16 else 4)
    assert m.plan["extra_gb"] == pytest.approx(copy_bytes / 1e9)
    # the manifest says which copy sampled (auto resolved on this machine), as the key does
    assert m.machine_settings == {"rollout_dtype": "bf16" if cpu_has_bf16() else "fp32"}
    assert read_manifest(tmp_path).machine_settings == m.machine_settings
    for _, copy_weight, policy_weight, (completions, logprobs) in seen:
        # synced: the copy is the policy's merged weights as they are after the last update
        assert copy_weight.dtype == dtype
        torch.testing.assert_close(copy_weight, policy_weight.to(dtype))
        assert (
            logprobs is None
            and len(completions) == 4
            and all(1 <= len(c) <= 8 for c in completions)
        )
    # not stale: the updates moved the policy well past bf16 rounding, and the copy with it
    assert (seen[2][1].float() - seen[0][1].float()).abs().max() > 1e-3
    logs = json.loads((tmp_path / "log_history.json").read_text())
    rewards = [r["reward"] for r in logs if "reward" in r]
    assert len(rewards) == 3 and all(0 <= r <= 1 for r in rewards) and max(rewards) > 0


def test_rollout_dtype_is_checked_and_resolved():
    import torch

    from trainers._config import FieldError
    from trainers._rollout import copy_dtype, cpu_has_bf16
    from trainers.grpo import GRPOConfig

    with pytest.raises(FieldError, match="rollout_dtype.*auto, bf16, fp32, train"):
        GRPOConfig(rollout_dtype="fp16")
    assert copy_dtype("auto", vllm=False, cuda=False) == (
        torch.bfloat16 if cpu_has_bf16() else torch.float32
    )
    assert copy_dtype("auto", vllm=False, cuda=True) is None  # CUDA without vLLM: trl's own path
    assert copy_dtype("train", vllm=False, cuda=False) is None
    assert copy_dtype("auto", vllm=True, cuda=True) is None
    assert copy_dtype("fp32", vllm=False, cuda=True) is torch.float32
    with pytest.raises(ValueError, match="set use_vllm=false or rollout_dtype=auto"):
        copy_dtype("bf16", vllm=True, cuda=True)


def test_rollout_dtype_auto_resolves_per_machine_and_the_manifest_records_it(monkeypatch):
    import trainers._rollout as rollout
    from trainers.grpo import machine_settings

    for bf16, cpu_copy in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(rollout, "cpu_has_bf16", lambda bf16=bf16: bf16)
        assert rollout.resolve("auto", cuda=False) == cpu_copy
        assert machine_settings({"rollout_dtype": "auto"}) == {"rollout_dtype": cpu_copy}
        assert rollout.resolve("auto", cuda=True) == "train"  # trl's own path (or vLLM)
        for explicit in ("bf16", "fp32", "train"):
            assert rollout.resolve(explicit, cuda=False) == explicit


# --- stopping -------------------------------------------------------------------------------


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_llama, monkeypatch):
    import trl

    from trainers._stage import TrainingDiverged

    orig = trl.SFTTrainer.compute_loss

    def poisoned(self, model, inputs, *a, **k):
        loss = orig(self, model, inputs, *a, **k)
        return loss * float("nan") if self.state.global_step >= 2 else loss

    monkeypatch.setattr(trl.SFTTrainer, "compute_loss", poisoned)
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged) as e:
        train_stage(
            "sft",
            {**FAST, "dataset": str(data), "max_steps": 5, "save_steps": 1},
            base_model=tiny_llama,
            parent=None,
            output_dir=out,
        )
    message = str(e.value)
    assert "\n" not in message and "step 3" in message and "checkpoint-2" in message
    assert not (out / "checkpoints" / "checkpoint-3").exists()  # the diverged step was not saved
    assert not (out / "manifest.json").exists()
    norms = lora_b_norms(out / "checkpoints" / "checkpoint-2")
    assert all(math.isfinite(n) for n in norms.values())


def test_early_stopping_on_eval_loss(tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(12))
    # a learning rate of ~0 leaves the eval loss flat: no improvement after the first eval
    m = train_stage(
        "sft",
        {
            **FAST,
            "dataset": str(data),
            "max_steps": 6,
            "learning_rate": 1e-12,
            "eval_fraction": 0.25,
            "eval_steps": 1,
            "early_stopping_patience": 1,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "es",
    )
    assert m.steps == 2 and m.stopped_early is True
    with pytest.raises(ValueError, match="early_stopping_patience' needs eval_fraction"):
        train_stage(
            "sft",
            {"dataset": str(data), "early_stopping_patience": 2},
            base_model=tiny_llama,
            parent=None,
            output_dir=tmp_path / "es2",
        )


def sft_trainer(tmp_path: Path, model: Path, **fields):
    """The trl SFTTrainer a sft stage builds over ``chat_rows(12)``, before training."""
    from trainers._stage import Stage
    from trainers.sft import SFTConfig, build_trainer

    cfg = resolve(
        SFTConfig,
        {
            **FAST,
            "model": str(model),
            "output_dir": str(tmp_path / "sft"),
            "dataset": "-",
            **fields,
        },
    )
    return build_trainer(Stage("sft", cfg), cfg, chat_rows(12))


def test_packed_conversations_do_not_attend_to_each_other(tmp_path, tiny_llama):
    """A packed SFT batch holds several conversations in one row with no attention mask;
    the per-sequence position ids must keep them apart under sdpa, so each conversation's
    logits equal those of the conversation run alone."""
    import torch

    trainer = sft_trainer(tmp_path, tiny_llama, max_length=256, per_device_batch=4)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, pos = batch["input_ids"], batch["position_ids"]
    assert ids.shape[0] == 1 and "attention_mask" not in batch  # one flat row, padding-free
    starts = (pos[0] == 0).nonzero().flatten().tolist()
    assert len(starts) >= 2
    # the first token of every packed conversation is never a target of the one before it
    assert all(batch["labels"][0, s] == -100 for s in starts)
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos).logits[0]
        one_sequence = model(input_ids=ids).logits[0]  # what a wrong collator would give
        for a, b in zip(starts, [*starts[1:], ids.shape[1]], strict=True):
            alone = model(input_ids=ids[:, a:b]).logits[0]
            torch.testing.assert_close(packed[a:b], alone, atol=1e-4, rtol=1e-4)
        b0, b1 = starts[1], starts[2] if len(starts) > 2 else ids.shape[1]
        assert not torch.allclose(one_sequence[b0:b1], model(input_ids=ids[:, b0:b1]).logits[0])


@pytest.mark.parametrize(
    ("packing", "per_device", "expected"),
    [(True, None, (1, 8)), (True, 4, (4, 2)), (False, None, (8, 1))],
)
def test_packing_without_flash_attention_runs_one_packed_row_per_forward(
    tmp_path, tiny_llama, packing, per_device, expected
):
    """Under sdpa a flattened batch of packed rows attends densely over all of them, so a
    packed stage takes one row per forward and accumulates to the same effective batch;
    an explicit per_device_batch, or no packing, keeps the planner's batch."""
    trainer = sft_trainer(
        tmp_path, tiny_llama, effective_batch=8, packing=packing, per_device_batch=per_device
    )
    args = trainer.args
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == expected


# --- loader and data helpers -----------------------------------------------------------------


def test_loader_takes_dtype_and_attention_from_the_target(tiny_llama):
    import torch

    from trainers._model import attn_implementation, load_model, torch_dtype

    assert torch_dtype("cpu") == torch.float32
    assert torch_dtype("h100") == torch.bfloat16 and torch_dtype("rtx2080ti") == torch.float16
    # flash-attn is not installed here: even a flash-attention target falls back to sdpa
    assert attn_implementation("rtx2080ti") == "sdpa" and attn_implementation("h100") == "sdpa"
    model, tok = load_model(tiny_llama)
    assert model.dtype == torch.float32 and model.config._attn_implementation == "sdpa"
    assert not model.training and tok.pad_token is not None
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="target h100 needs a CUDA GPU"):
            load_model(tiny_llama, target="h100")


def test_openthoughts_rows_become_think_conversations():
    from trainers._data import openthoughts_row

    row = {
        "system": "ignored",
        "conversations": [
            {"from": "user", "value": "What is 2+3?"},
            {
                "from": "assistant",
                "value": "<|begin_of_thought|>\n\n2 plus 3 is 5.\n\n<|end_of_thought|>\n\n"
                "<|begin_of_solution|>\n\nThe answer is 5.\n\n<|end_of_solution|>",
            },
        ],
    }
    assert openthoughts_row(row) == {
        "messages": [
            {"role": "user", "content": "What is 2+3?"},
            {"role": "assistant", "content": "<think>\n2 plus 3 is 5.\n</think>\nThe answer is 5."},
        ]
    }


def test_arithmetic_levels_take_per_level_counts():
    from tasks.math import generate
    from tasks.math.train import level_counts, train_items

    assert train_items("2,4", 3, seed=0) == generate(3, seed=0, levels=(2, 4))
    mix = train_items("2:4,4:1", 99, seed=0)
    assert [it["level"] for it in mix] == [2, 4, 2, 2, 2]
    assert mix[1] == generate(1, seed=0, levels=(4,))[0]  # item i of a level is fixed
    assert level_counts("3,5:2", 7) == {3: 7, 5: 2}
    with pytest.raises(ValueError, match="'2:x' is not LEVEL or LEVEL:COUNT"):
        level_counts("2:x", 3)


def arithmetic_sft_rows(levels, n_per_level, seed, direct_fraction=0.0):
    from trainers.data import trace_rows

    return trace_rows("arithmetic", seed, direct_fraction, levels=levels, n_per_level=n_per_level)


def test_distill_rows_never_use_the_leaderboard_test_items():
    rows = arithmetic_sft_rows("2", 3, seed=0)
    assert rows[0]["completion"][0]["content"].startswith("<think>\nStep 1: ")
    assert "Solve the problem step by step" in rows[0]["prompt"][0]["content"]  # the eval prompt
    with pytest.raises(ValueError, match="item_seed 1234 generates the math_arith test items"):
        arithmetic_sft_rows("2", 3, seed=1234)


def test_direct_fraction_drops_the_steps_of_a_seeded_share_of_traces():
    from tasks.math import generate, test_questions, think_trace

    # training items leave out the leaderboard's test questions
    items = [
        i for i in generate(200, seed=0, levels=(2, 4)) if i["question"] not in test_questions()
    ]
    full = arithmetic_sft_rows("2,4", 200, seed=0)
    assert [r["completion"][0]["content"] for r in full] == [think_trace(it) for it in items]
    mixed = arithmetic_sft_rows("2,4", 200, seed=0, direct_fraction=0.5)
    direct = [
        i for i, r in enumerate(mixed) if r["completion"][0]["content"] != think_trace(items[i])
    ]
    for i in direct:
        assert mixed[i]["completion"][0]["content"] == think_trace(items[i], direct=True)
        assert mixed[i]["prompt"] == full[i]["prompt"]
    assert 160 <= len(direct) <= 240  # ~binomial(~400, 0.5): 4.5 standard deviations either side
    assert {items[i]["level"] for i in direct} == {2, 4}  # every level gets direct traces
    # per item, not per position: the same item is direct in a larger draw too
    larger = arithmetic_sft_rows("2,4", 300, seed=0, direct_fraction=0.5)
    assert all(larger[i] == mixed[i] for i in range(len(mixed)))
    assert arithmetic_sft_rows("2,4", 200, seed=0, direct_fraction=1.0)[0]["completion"][0][
        "content"
    ] == think_trace(items[0], direct=True)
    with pytest.raises(ValueError, match="direct_fraction 1.5 must be between 0 and 1"):
        arithmetic_sft_rows("2", 3, seed=0, direct_fraction=1.5)


def test_bf16_mixed_precision_autocasts_cpu_training_and_fp16_needs_cuda(tmp_path, tiny_llama):
    import torch

    assert not sft_trainer(tmp_path / "auto", tiny_llama).args.bf16  # auto on CPU: fp32
    trainer = sft_trainer(tmp_path / "bf16", tiny_llama, mixed_precision="bf16", max_steps=2)
    assert trainer.args.bf16 and trainer.accelerator.mixed_precision == "bf16"
    seen: list[torch.dtype] = []
    linear = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    b_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    # the matmuls ran in bf16 while the weights, and so the update, stay fp32
    assert seen and set(seen) == {torch.bfloat16}
    moved = [
        n
        for n, p in trainer.model.named_parameters()
        if "lora_B" in n and not torch.equal(p, b_before[n])
    ]
    assert moved and all(p.dtype == torch.float32 for p in trainer.model.parameters())
    with pytest.raises(ValueError, match="mixed_precision fp16 needs CUDA"):
        sft_trainer(tmp_path / "fp16", tiny_llama, mixed_precision="fp16")
