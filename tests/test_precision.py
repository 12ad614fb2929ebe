"""fp16 and bf16 training on torch's CPU GradScaler and autocast: what an fp16 (Turing) or bf16
(Ampere/Hopper) target does on its GPU, with the dtype decisions taken by the same code."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_trainer import FAST, chat_rows

from trainers._config import resolve


def _guard():
    from trainers._stage import DivergenceGuard

    return DivergenceGuard(factor=10.0)


def _log(guard, fp16: bool, loss: float, grad_norm: float, step: int = 1):
    from transformers import TrainerControl, TrainerState

    state, control = TrainerState(), TrainerControl()
    state.global_step = step
    guard.on_log(
        SimpleNamespace(fp16=fp16), state, control, logs={"loss": loss, "grad_norm": grad_norm}
    )
    return control.should_training_stop


def _overflowing_step_grad_norm() -> tuple[float, float]:
    """(loss, grad norm) of a step torch's CPU GradScaler skips: fp16 autocast, a scale so large
    the fp16 gradients overflow, as in the scaler's warm-up from 2^16 on a GPU."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(torch.randn(4, 16)).float().pow(2).mean() + 10
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() < 2.0**40  # the scaler saw the overflow and backed off
    assert all(
        torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)
    )  # step skipped
    return float(loss.detach()), grad_norm


def test_a_gradscaler_skipped_step_does_not_stop_fp16_training():
    import math

    loss, grad_norm = _overflowing_step_grad_norm()
    assert math.isfinite(loss) and not math.isfinite(grad_norm)
    guard = _guard()
    assert not _log(guard, True, 2.0, 1.0, step=1)
    assert not _log(guard, True, loss, grad_norm, step=2)  # skipped by the scaler: carry on
    assert guard.diverged is None
    assert not _log(guard, True, 2.0, 1.0, step=3)  # a finite step resets the count
    for step in range(4, 4 + guard.max_skipped):
        assert not _log(guard, True, loss, grad_norm, step=step)
    assert _log(guard, True, loss, grad_norm, step=99)  # one skip too many in a row: diverged
    assert guard.diverged == (99, loss, grad_norm)
    # without fp16 there is no scaler to skip the step: a non-finite norm is divergence
    assert _log(_guard(), False, loss, grad_norm)
    # and a non-finite loss always is
    assert _log(_guard(), True, float("nan"), grad_norm)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_full_mode_trains_fp32_weights_under_fp16_gradscaler_and_autocast(
    tmp_path, tiny_llama, target_dtype, dtype
):
    """mode=full loads fp32 weights whatever the target's dtype; autocast computes in that
    dtype. fp16 weights made torch's GradScaler raise 'Attempting to unscale FP16 gradients'
    (the rtx2080ti path), and pure bf16 weights round most small AdamW updates away."""
    import torch

    from trainers._stage import Stage
    from trainers.sft import SFTConfig

    target_dtype(dtype)
    cfg = resolve(
        SFTConfig,
        {
            **FAST,
            "model": str(tiny_llama),
            "output_dir": str(tmp_path / "full"),
            "dataset": "-",
            "mode": "full",
        },
    )
    model, tok = Stage("sft", cfg).load()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    model.train()
    compute = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == "fp16")
    ids = tok.apply_chat_template(chat_rows(1)[0]["messages"], return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(2):
        with torch.autocast("cpu", dtype=compute):
            loss = model(input_ids=ids, labels=ids).loss
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    w = "model.layers.0.self_attn.q_proj.weight"
    changed = (model.get_parameter(w) != before[w]).float().mean()
    # fp32 weights take the lr-1e-5 updates: (nearly) every element moved
    assert changed > 0.9 and all(torch.isfinite(p).all() for p in model.parameters())


def test_an_fp32_rollout_copy_of_a_flash_attention_policy_runs_sdpa(tiny_llama):
    """On Ampere/Hopper the policy runs flash-attention 2, which computes in fp16/bf16 only:
    an fp32 rollout copy (rollout_dtype=fp32) takes sdpa instead of failing to build."""
    import torch

    from trainers._model import load_model
    from trainers._rollout import merged_copy

    model, _ = load_model(tiny_llama)
    model.config._attn_implementation = "flash_attention_2"  # as loaded on an h100 target
    copy = merged_copy(model, torch.float32)
    assert copy.config._attn_implementation == "sdpa" and copy.dtype == torch.float32
