"""Group relative policy optimisation (trl ``GRPOTrainer``) with task verifiers as rewards.

Rewards are exactly what the leaderboard measures: the task's ``verify`` wrapped by
``tasks.scoring.as_reward`` (``reward=math``, ``think_quality`` or ``causal_nli``),
optionally plus ``format_weight`` × the ``<think>`` format check. Prompts: a file
(``dataset=``) with a ``prompt`` column and a reference column; else ``sources=arithmetic``
(generated at ``levels``) or ``sources=causal`` (Corr2Cause problems from the fields of
:class:`trainers._data.CausalData`, with causal_nli's eval prompt and the gold verdict).
Rollouts use vLLM in colocate mode when vLLM is importable and CUDA is present
(``use_vllm=auto``), HF generation otherwise; on a CPU they are sampled from a merged bf16 copy
of the policy re-synced after every optimizer step (``rollout_dtype``, trainers/_rollout.py).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import ClassVar

from trainers._config import (
    Allowed,
    FieldError,
    MemoryProfile,
    TrainConfig,
    at_least,
    cli,
    one_of,
    positive,
)
from trainers._data import (
    CausalData,
    arithmetic_prompts,
    causal_prompts,
    causal_source,
    data_identity,
    prompt_messages,
    read_rows,
    require_columns,
)
from trainers._rollout import ROLLOUT_DTYPES
from trainers.manifest import Manifest

__all__ = [
    "GRPOConfig",
    "machine_settings",
    "main",
    "no_signal_warning",
    "reward_functions",
    "think_format_reward",
]

log = logging.getLogger(__name__)

VERIFIERS = {
    "math": "tasks.math:verify",
    "think_quality": "tasks.think_quality:verify",
    "causal_nli": "tasks.causal_nli:verify",
}
# the generated prompts each reward can score (think_quality's verify checks math answers)
REWARD_SOURCES = {"math": "arithmetic", "think_quality": "arithmetic", "causal_nli": "causal"}


@dataclass
class GRPOConfig(TrainConfig, CausalData):
    # Bump when what this method trains changes for the same config (data rendering, loss,
    # defaults' meaning): it is part of every train cell's key, like a task's metadata.version.
    # 2: limit is a seeded sample; 3: CPU rollouts come from a merged bf16 copy in eval mode (no
    # LoRA dropout) with another sampler's random stream (rollout_dtype=auto; train: the old path);
    # 4: fp32 weights under mode=full, fp32 adapters under qlora on fp16 targets; fp16
    #    GradScaler skips are not divergence
    VERSION: ClassVar[str] = "4"
    VERIFIER_DRIVEN: ClassVar[bool] = True  # the reward is the task's verifier
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(rollout_engine=True)

    dataset: str = ""  # rows with prompt + reference_column; empty: prompts from sources
    sources: str = "arithmetic"  # arithmetic | causal
    reference_column: str = "reference"
    reward: str = "math"
    format_weight: float = 0.0
    learning_rate: float = 1e-5
    levels: str = "4"
    n_prompts: int = 256
    item_seed: int = 0
    num_generations: int = 8
    max_completion_length: int = 128
    temperature: float = 1.0
    beta: float = 0.0  # KL to the start; under LoRA trl uses the adapter-disabled model
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    # auto: vLLM colocate where the target's image has vLLM, except under qlora (trl would
    # merge the adapter into the 4-bit base and requantize it at every sync); true | false
    use_vllm: str = "auto"
    # share of the card vLLM colocate reserves; null: sized by the planner (weights + KV cache of
    # one step's generations at max_length + max_completion_length)
    vllm_gpu_memory_utilization: float | None = None
    # HF-path rollouts: auto: from a merged copy in bf16 on a CPU with bf16 matmuls (else in the
    # model's dtype), trl's own path on CUDA; bf16 | fp32: from such a copy; train: trl's path,
    # the training model itself (fp32, adapter unmerged, train mode), about 3x slower on CPU
    rollout_dtype: str = "auto"
    no_signal_patience: int = 3  # warn after this many steps with no reward variance; 0: off

    # checked at construction with TrainConfig's (trainers/_config.py: check_ranges);
    # a group advantage needs two generations of a prompt
    RANGES = {
        "format_weight": at_least(0),
        "n_prompts": at_least(1),
        "item_seed": at_least(0),
        "num_generations": at_least(2),
        "max_completion_length": at_least(1),
        "temperature": positive(),
        "beta": at_least(0),
        "vllm_gpu_memory_utilization": Allowed(lo=0, hi=1, lo_open=True),
        "no_signal_patience": at_least(0),
        "rollout_dtype": one_of(*ROLLOUT_DTYPES),
        "use_vllm": one_of("auto", "true", "false"),
    }

    def __post_init__(self) -> None:
        if isinstance(self.use_vllm, bool):  # YAML's unquoted true/false
            self.use_vllm = str(self.use_vllm).lower()
        super().__post_init__()
        if self.effective_batch % self.num_generations:
            raise FieldError(
                "effective_batch",
                f"{self.effective_batch} must be a multiple of num_generations "
                f"{self.num_generations} (each prompt's group of completions trains together)",
            )
        if self.use_vllm == "true" and self.mode == "qlora":
            raise FieldError(
                "use_vllm",
                "true cannot go with mode qlora (each sync would requantize the 4-bit base); "
                "set use_vllm: auto (HF rollouts) or mode: lora",
            )

    def memory(self) -> MemoryProfile:
        if self.beta > 0:  # trl keeps a reference model for the KL term in full mode
            return MemoryProfile(rollout_engine=True, reference_copy=True)
        return self.MEMORY

    def rollout_vllm(self, target: str) -> bool:
        """vLLM colocate rollouts on ``target``: as ``use_vllm`` says; auto where the target's
        image carries vLLM and the base is not 4-bit."""
        from containers.targets import get_target

        if self.use_vllm != "auto":
            return self.use_vllm == "true"
        t = get_target(target)
        return t.is_gpu and t.has_vllm and self.mode != "qlora"


def think_format_reward(completions, **_columns) -> list[float]:
    """1.0 for a well-formed ``<think>…</think>`` then an answer, else 0.0."""
    from tasks.scoring import completion_text
    from tasks.think_quality import format_ok

    return [float(format_ok(completion_text(c))) for c in completions]


def reward_functions(cfg: GRPOConfig) -> tuple[list, list[float]]:
    import importlib

    from tasks.scoring import as_reward

    if cfg.reward not in VERIFIERS:
        raise ValueError(
            f"grpo config: reward {cfg.reward!r} unknown; use one of {', '.join(VERIFIERS)}"
        )
    module, _, name = VERIFIERS[cfg.reward].partition(":")
    funcs, weights = (
        [as_reward(getattr(importlib.import_module(module), name), cfg.reference_column)],
        [1.0],
    )
    if cfg.format_weight:
        funcs.append(think_format_reward)
        weights.append(cfg.format_weight)
    return funcs, weights


def no_signal_warning(patience: int):
    """A callback that warns once when, for ``patience`` logged steps in a row, every group's
    rewards were equal (trl's ``frac_reward_zero_std`` = 1): all advantages are then zero and
    the policy gets no gradient, and a run that lands there rarely leaves it (seen: one update
    sent every rollout to the length limit, and every later group scored 0)."""
    from transformers import TrainerCallback

    class NoRewardSignal(TrainerCallback):
        def __init__(self):
            self.run, self.warned = 0, False

        def on_log(self, args, state, control, logs=None, **kwargs):
            frac = (logs or {}).get("frac_reward_zero_std")
            if frac is None:
                return
            self.run = self.run + 1 if frac >= 1.0 else 0
            if patience and self.run >= patience and not self.warned:
                self.warned = True
                log.warning(
                    "grpo: no reward variance in any group for %d steps (to step %d), so no "
                    "gradient; raise num_generations or temperature, or train on prompts the "
                    "model sometimes solves (levels, dataset)",
                    self.run,
                    state.global_step,
                )

    return NoRewardSignal()


def machine_settings(config: dict) -> dict:
    """``rollout_dtype`` as it resolves on this machine (trainers._rollout.resolve): under
    ``auto`` a CPU with bf16 matmuls and one without sample from different copies."""
    import torch

    from trainers._rollout import resolve

    return {"rollout_dtype": resolve(config["rollout_dtype"], torch.cuda.is_available())}


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
    if REWARD_SOURCES.get(cfg.reward) != cfg.sources:
        raise ValueError(
            f"grpo config: reward {cfg.reward} cannot score sources={cfg.sources} prompts; "
            f"set sources={REWARD_SOURCES.get(cfg.reward)} (causal prompts: reward=causal_nli)"
        )
    if cfg.sources == "causal":
        items = causal_prompts(cfg, cfg.item_seed)[: cfg.n_prompts]
        rows = [{"prompt": it["prompt"], cfg.reference_column: it["reference"]} for it in items]
        return rows, f"{causal_source(cfg, cfg.item_seed)} prompts(n={cfg.n_prompts})"
    items = arithmetic_prompts(cfg.levels, cfg.n_prompts, cfg.item_seed)
    rows = [
        {"prompt": prompt_messages(it["question"]), cfg.reference_column: it["answer"]}
        for it in items
    ]
    return rows, f"arithmetic prompts(levels={cfg.levels}, n={cfg.n_prompts}, seed={cfg.item_seed})"


def main(cfg: GRPOConfig) -> Manifest:
    import torch
    import trl
    from datasets import Dataset

    from trainers._data import sample_rows
    from trainers._rollout import copy_dtype, trainer_class
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
    )
    trainer = trainer_class()(
        rollout_dtype=rollout,
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=stage.peft_config(),
        callbacks=[*stage.callbacks(), no_signal_warning(cfg.no_signal_patience)],
    )
    machine = machine_settings({"rollout_dtype": cfg.rollout_dtype})
    return stage.train(trainer, data_identity(rows, source), machine)


if __name__ == "__main__":
    raise SystemExit(cli(GRPOConfig, main))
