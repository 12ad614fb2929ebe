"""The distill method's config and facts (torch-free: the harness reads it at grid load;
trainers/distill.py trains with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainers._config import MemoryProfile, at_least
from trainers.sft_config import SFTConfig

__all__ = ["DistillConfig"]


@dataclass
class DistillConfig(SFTConfig):
    # 2: seeded n_hub/limit samples; rows rendered for reasoning-stripping templates;
    #    3: fp32 weights under mode=full, fp32 adapters under qlora on fp16 targets; fp16
    #    GradScaler skips are not divergence
    VERSION: ClassVar[str] = "3"
    VERIFIER_DRIVEN: ClassVar[bool] = False
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(fused_head=True)
    # kl_coef > 0: KLSFTTrainer.compute_loss at its peak (the `kl =` line) holds the student's
    # log-probs, the reference's, p = exp(logp), logp - ref_logp and their product: five
    # full-vocabulary fp32 tensors per position, unfused; full mode adds a frozen reference
    KL_MEMORY: ClassVar[MemoryProfile] = MemoryProfile(logit_tensors=5, reference_copy=True)

    sources: str = "arithmetic"  # used when dataset is empty
    levels: str = "2"
    n_per_level: int = 300
    n_gsm8k: int = 200
    item_seed: int = 0
    hub_dataset: str = "open-thoughts/OpenThoughts-114k"
    n_hub: int = 1000
    kl_coef: float = 0.0
    direct_fraction: float = 0.0  # arithmetic, causal: share of traces with the answer but no steps

    # checked at construction with SFTConfig's and TrainConfig's (trainers/_config.py: check_ranges)
    RANGES = {
        "n_per_level": at_least(1),
        "n_gsm8k": at_least(1),
        "n_hub": at_least(1),
        "kl_coef": at_least(0),
    }

    def memory(self, target: str | None = None) -> MemoryProfile:
        return self.KL_MEMORY if self.kl_coef > 0 else self.MEMORY
