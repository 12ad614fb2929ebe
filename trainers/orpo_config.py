"""The orpo method's config and facts (torch-free: the harness reads it at grid load;
trainers/orpo.py trains with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainers._config import MemoryProfile, TrainConfig, positive
from trainers._data import CausalData
from trainers.dpo_config import PairData

__all__ = ["ORPOConfig"]


# PairData first: its dataset field (and doc) over TrainConfig's
@dataclass
class ORPOConfig(PairData, TrainConfig, CausalData):
    # Bump when what this method trains changes for the same config (data rendering, loss,
    # defaults' meaning): it is part of every train cell's key, like a task's metadata.version.
    VERSION: ClassVar[str] = "1"
    VERIFIER_DRIVEN: ClassVar[bool] = True  # pairs are ranked by the task's verifier
    # chosen and rejected in one forward; no reference model in any mode (the odds are the
    # policy's own)
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(sequences_per_row=2)

    learning_rate: float = 2e-5  # trl's 1e-6 is for full fine-tuning; adapters take dpo's rate
    beta: float = 0.1  # λ: the odds-ratio term's weight beside the chosen sequence's NLL

    # checked at construction with TrainConfig's and PairData's (trainers/_config.py:
    # check_ranges)
    RANGES = {"beta": positive()}
