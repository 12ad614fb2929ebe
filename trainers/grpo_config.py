"""The grpo method's config and facts (torch-free: the harness reads it at grid load;
trainers/grpo.py trains with it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from trainers._config import (
    Allowed,
    FieldError,
    MemoryProfile,
    TrainConfig,
    at_least,
    one_of,
    positive,
)
from trainers._data import CausalData
from trainers._rollout import ROLLOUT_DTYPES

__all__ = ["GRPOConfig", "machine_settings"]

ROLLOUT_BYTES = {"bf16": 2, "fp32": 4}  # a resolved rollout_dtype's copy (train: none)


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
    # memory() adds the reference model (beta > 0), the merged copy HF-path rollouts sample from
    # and, on a CPU, each row's completion and trl's fused LM head (see there)
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(rollout_engine=True)

    dataset: str = ""  # rows with prompt + reference_column; empty: prompts from sources
    sources: str = "arithmetic"  # a task family's training source (tasks.FAMILIES), e.g. causal
    reference_column: str = "reference"
    reward: str = "math"  # the task family whose verify is the reward
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

    def memory(self, target: str | None = None) -> MemoryProfile:
        """trl keeps a reference model for the KL term (beta > 0) in full mode; rollouts
        without vLLM come from a merged copy in the dtype ``rollout_dtype`` resolves to
        (trainers/_rollout.py).

        On a CPU (measured: ci/perf/plan_vs_measured.py) a row is the prompt (max_length) and
        its completion, scored through trl's fused LM head. A GPU plan keeps the estimate it
        had until it is measured on a GPU: rows of max_length with full-vocabulary logits, which
        leaves out the completion and overcounts the logits. Without vLLM it adds the KV cache
        trl generates a generation batch with on the training model, and splits the batch when
        that cache does not fit (trainers/planner.py ``_generation_batch``).
        """
        from containers.targets import get_target
        from trainers._rollout import resolve

        target = target or self.target
        gpu = get_target(target).is_gpu
        copy = resolve(self.rollout_dtype, gpu)
        return dataclasses.replace(
            self.MEMORY,
            fused_head=not gpu,
            completion_tokens=0 if gpu else self.max_completion_length,
            reference_copy=self.beta > 0,
            rollout_copy_bytes=0 if self.rollout_vllm(target) else ROLLOUT_BYTES.get(copy, 0),
        )

    def rollout_vllm(self, target: str) -> bool:
        """vLLM colocate rollouts on ``target``: as ``use_vllm`` says; auto where the target's
        image carries vLLM and the base is not 4-bit."""
        from containers.targets import get_target

        if self.use_vllm != "auto":
            return self.use_vllm == "true"
        t = get_target(target)
        return t.is_gpu and t.has_vllm and self.mode != "qlora"


def machine_settings(config: dict) -> dict:
    """``rollout_dtype`` as it resolves on this machine (trainers._rollout.resolve): under
    ``auto`` a CPU with bf16 matmuls and one without sample from different copies."""
    import torch

    from trainers._rollout import resolve

    return {"rollout_dtype": resolve(config["rollout_dtype"], torch.cuda.is_available())}
