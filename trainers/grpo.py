"""Group relative policy optimisation (trl ``GRPOTrainer``) with task verifiers as rewards.

Rewards are exactly what the leaderboard measures: the ``verify`` of the task family
``reward`` names (``tasks.FAMILIES``: ``math``, ``think_quality``, ``causal_nli``) wrapped by
``tasks.scoring.as_reward``, optionally plus ``format_weight`` × the ``<think>`` format check.
Prompts: a file (``dataset=``) with a ``prompt`` column and a reference column; else the
``n_prompts`` first items of a family's training source (``sources=``: e.g. ``arithmetic``,
generated at ``levels``, or ``causal``, Corr2Cause problems from the fields of
:class:`trainers._data.CausalData`), with the task's eval prompt and gold answer. The reward
must score that family's answers: its own family's, or one it ``USES`` (think_quality).
Rollouts use vLLM in colocate mode when vLLM is importable and CUDA is present
(``use_vllm=auto``), HF generation otherwise; on a CPU they are sampled from a merged bf16 copy
of the policy re-synced after every optimizer step (``rollout_dtype``, trainers/_rollout.py).
"""

from __future__ import annotations

import importlib.util
import logging

from transformers import TrainerCallback

from trainers._config import cli
from trainers._data import (
    data_identity,
    read_rows,
    require_columns,
    source_fields,
    source_name,
    source_prompts,
)
from trainers.grpo_config import GRPOConfig, machine_settings
from trainers.manifest import Manifest

__all__ = [
    "GRPOConfig",
    "machine_settings",
    "main",
    "NoRewardSignal",
    "reward_functions",
    "think_format_reward",
]

log = logging.getLogger(__name__)


def think_format_reward(completions, **_columns) -> list[float]:
    """1.0 for a well-formed ``<think>…</think>`` then an answer, else 0.0."""
    from tasks.scoring import completion_text
    from tasks.think_quality import format_ok

    return [float(format_ok(completion_text(c))) for c in completions]


def _reward_family(cfg: GRPOConfig):
    from tasks import FAMILIES, family

    if cfg.reward not in FAMILIES:
        raise ValueError(
            f"grpo config: reward {cfg.reward!r} unknown; use one of {', '.join(FAMILIES)}"
        )
    return family(cfg.reward)


def reward_functions(cfg: GRPOConfig) -> tuple[list, list[float]]:
    import functools

    from tasks import source_family
    from tasks.scoring import as_reward

    reward = _reward_family(cfg)
    verify = reward.verify
    scored = None if cfg.dataset else source_family(cfg.sources)
    if scored != cfg.reward and scored in getattr(reward, "USES", ()):
        # a family that scores another's answers (think_quality) is told whose
        verify = functools.update_wrapper(functools.partial(verify, task=scored), verify)
    funcs, weights = [as_reward(verify, cfg.reference_column)], [1.0]
    if cfg.format_weight:
        funcs.append(think_format_reward)
        weights.append(cfg.format_weight)
    return funcs, weights


class NoRewardSignal(TrainerCallback):
    """Warns once when, for ``patience`` logged steps in a row, every group's
    rewards were equal (trl's ``frac_reward_zero_std`` = 1): all advantages are then zero and
    the policy gets no gradient, and a run that lands there rarely leaves it (seen: one update
    sent every rollout to the length limit, and every later group scored 0)."""

    def __init__(self, patience: int):
        self.patience, self.run, self.warned = patience, 0, False

    def on_log(self, args, state, control, logs=None, **kwargs):
        frac = (logs or {}).get("frac_reward_zero_std")
        if frac is None:
            return
        self.run = self.run + 1 if frac >= 1.0 else 0
        if self.patience and self.run >= self.patience and not self.warned:
            self.warned = True
            log.warning(
                "grpo: no reward variance in any group for %d steps (to step %d), so no "
                "gradient; raise num_generations or temperature, or train on prompts the "
                "model sometimes solves (levels, dataset)",
                self.run,
                state.global_step,
            )


def _use_vllm(cfg: GRPOConfig) -> bool:
    """The planned rollout engine (:meth:`GRPOConfig.rollout_vllm`), where vLLM and CUDA exist."""
    import torch

    want = cfg.rollout_vllm(cfg.target)
    if want and not (importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()):
        if cfg.use_vllm == "true":
            raise ValueError(
                "grpo config: use_vllm=true needs vllm installed and CUDA; set use_vllm=auto"
            )
        return False  # auto in an environment without the image's vLLM: HF rollouts
    return want


def vllm_args(cfg: GRPOConfig, plan, max_length: int, vllm: bool) -> dict:
    """trl.GRPOConfig's vLLM fields: colocate, the share of the card the plan sized, and a
    context of prompt + completion (vLLM would otherwise reserve the model's full context)."""
    if not vllm:
        return {"use_vllm": False}
    return {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": plan.vllm_gpu_memory_utilization,
        "vllm_max_model_length": max_length + cfg.max_completion_length,
    }


def prompt_rows(cfg: GRPOConfig) -> tuple[list[dict], str]:
    if cfg.dataset:
        rows = read_rows(cfg.dataset)
        require_columns(rows, (("prompt", cfg.reference_column),), cfg.dataset)
        return [
            {"prompt": r["prompt"], cfg.reference_column: r[cfg.reference_column]} for r in rows
        ], cfg.dataset
    from tasks import source_family

    fields = source_fields(cfg, cfg.sources)
    scored = source_family(cfg.sources)
    if cfg.reward != scored and scored not in getattr(_reward_family(cfg), "USES", ()):
        raise ValueError(
            f"grpo config: reward {cfg.reward} cannot score sources={cfg.sources} prompts; "
            f"set reward={scored} (the family of {cfg.sources})"
        )
    _, items = source_prompts(cfg.sources, cfg.item_seed, cfg.n_prompts, **fields)
    rows = [{"prompt": it["prompt"], cfg.reference_column: it["reference"]} for it in items]
    return rows, f"{source_name(cfg.sources, cfg.item_seed, **fields)} prompts(n={cfg.n_prompts})"


def main(cfg: GRPOConfig) -> Manifest:
    import torch
    import trl
    from datasets import Dataset

    from trainers._data import sample_rows
    from trainers._rollout import copy_dtype
    from trainers._rollout_trainer import CopyRolloutTrainer
    from trainers._stage import Stage

    rows, source = prompt_rows(cfg)
    rows = sample_rows(rows, cfg.limit, cfg.seed)
    funcs, weights = reward_functions(cfg)
    vllm = _use_vllm(cfg)
    rollout = copy_dtype(cfg.rollout_dtype, vllm, torch.cuda.is_available())
    stage = Stage("grpo", cfg)
    model, tokenizer = stage.load()
    shared = stage.trainer_args()
    args = trl.GRPOConfig(
        **shared,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=weights,
        **vllm_args(cfg, stage.plan, stage.max_length, vllm),
        # HF rollouts on a GPU: as many micro-batches per generation as the KV cache fits
        # (trainers/planner.py _generation_batch; None keeps trl's, one per optimizer step)
        steps_per_generation=stage.plan.steps_per_generation,
    )
    trainer = CopyRolloutTrainer(
        rollout_dtype=rollout,
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=stage.peft_config(),
        callbacks=[*stage.callbacks(), NoRewardSignal(cfg.no_signal_patience)],
    )
    machine = machine_settings({"rollout_dtype": cfg.rollout_dtype})
    return stage.train(trainer, data_identity(rows, source), machine)


if __name__ == "__main__":
    raise SystemExit(cli(GRPOConfig, main))
