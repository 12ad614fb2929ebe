"""The sft method's config and facts (torch-free: the harness reads it at grid load;
trainers/sft.py trains with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trainers._config import MemoryProfile, TrainConfig, at_least, fraction
from trainers._data import CausalData

__all__ = ["SFTConfig"]


@dataclass
class SFTConfig(TrainConfig, CausalData):
    # Bump when what this method trains changes for the same config (data rendering, loss,
    # defaults' meaning): it is part of every train cell's key, like a task's metadata.version.
    # 2: rows are rendered for templates that strip reasoning or are missing;
    #    3: fp32 weights under mode=full, fp32 adapters under qlora on fp16 targets; fp16
    #    GradScaler skips are not divergence
    VERSION: ClassVar[str] = "3"
    VERIFIER_DRIVEN: ClassVar[bool] = False
    MEMORY: ClassVar[MemoryProfile] = MemoryProfile(fused_head=True)

    dataset: str = ""  # .jsonl/.json/.parquet/.csv with messages, or prompt + completion
    sources: str = ""  # used when dataset is empty: task families' training sources, e.g. causal
    item_seed: int = 0  # seeds the generated items (and a file's shuffle)
    direct_fraction: float = 1.0  # causal: share of items whose target is the verdict alone
    packing: bool = True
    padding_free: bool = False  # without packing: flatten each batch (flash-attention only)
    completion_only_loss: bool | None = None  # None: on for prompt/completion rows
    assistant_only_loss: bool = False  # needs {% generation %} markers in the chat template

    # checked at construction with TrainConfig's (trainers/_config.py: check_ranges)
    RANGES = {"item_seed": at_least(0), "direct_fraction": fraction()}
