"""The dpo method's config and facts (torch-free: the harness reads it at grid load;
trainers/dpo.py trains with it), and :class:`PairData`, the preference-pair fields every
pair method (dpo, orpo) shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from trainers._config import Allowed, MemoryProfile, TrainConfig, at_least, positive
from trainers._data import CausalData

__all__ = ["DPOConfig", "PairData"]


@dataclass
class PairData:
    """Where a pair method's (prompt, chosen, rejected) rows come from: a file, or pairs the
    task verifier ranks among the starting model's samples (trainers/dpo.py verifier_pairs)."""

    dataset: str = ""  # prompt/chosen/rejected rows; empty: build pairs with the verifier
    sources: str = "arithmetic"  # a task family's training source: the prompts pairs are built for
    levels: str = "2"  # arithmetic: the generated prompts' levels, e.g. 2,4
    n_prompts: int = 64  # prompts the starting model samples completions of
    item_seed: int = 0  # seeds the generated prompts
    samples_per_prompt: int = 4  # chosen is one the verifier accepts, rejected one it refuses
    sample_max_new_tokens: int = 128
    sample_temperature: float = 1.0
    teacher_fallback: bool = True  # no sample right: the teacher's trace (correct) is chosen

    # a pair needs two samples of a prompt
    RANGES: ClassVar[dict[str, Allowed]] = {
        "n_prompts": at_least(1),
        "item_seed": at_least(0),
        "samples_per_prompt": at_least(2),
        "sample_max_new_tokens": at_least(1),
        "sample_temperature": positive(),
    }

    def memory(self, target: str | None = None) -> MemoryProfile:
        """The method's profile (the next class's ``memory``), sampling before training when
        the pairs are built from the starting model's samples (no ``dataset``)."""
        profile = super().memory(target)  # type: ignore[misc]
        return dataclasses.replace(profile, samples_before_training=not self.dataset)


# PairData first: its dataset field (and doc) over TrainConfig's
@dataclass
class DPOConfig(PairData, TrainConfig, CausalData):
    # Bump when what this method trains changes for the same config (data rendering, loss,
    # defaults' meaning): it is part of every train cell's key, like a task's metadata.version.
    # 2: limit is a seeded sample; conversational pairs lose a duplicated string prompt;
    #    3: fp32 weights under mode=full, fp32 adapters under qlora on fp16 targets; fp16
    #    GradScaler skips are not divergence
    VERSION: ClassVar[str] = "3"
    VERIFIER_DRIVEN: ClassVar[bool] = True  # pairs are ranked by the task's verifier
    # chosen and rejected in one forward; full mode keeps a frozen reference model; memory() adds
    # trl's fused LM head on a CPU
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(sequences_per_row=2, reference_copy=True)

    learning_rate: float = 2e-5
    beta: float = 0.1
    loss_type: str = "sigmoid"

    # checked at construction with TrainConfig's and PairData's (trainers/_config.py:
    # check_ranges)
    RANGES = {"beta": positive()}

    def memory(self, target: str | None = None) -> MemoryProfile:
        """trl scores chosen and rejected through its fused LM head everywhere, but only a CPU
        plan counts it so (measured: ci/perf/plan_vs_measured.py); a GPU plan keeps their
        full-sequence logits until trl's Triton head is measured on a GPU."""
        from containers.targets import get_target

        gpu = get_target(target or self.target).is_gpu
        return dataclasses.replace(super().memory(target), fused_head=not gpu)
