"""The public face of the trainers' data helpers: reading rows and the task-built training sets.

Other packages (the benchmarks under ci/perf) build the same sets the trainers train on
through these names; the code lives in ``_data``.
"""

from __future__ import annotations

from trainers._data import (
    CausalData,
    arithmetic_sft_rows,
    causal_items,
    causal_messages,
    causal_prompts,
    causal_sft_rows,
    causal_source,
    gsm8k_sft_rows,
    level_counts,
    prompt_messages,
    read_rows,
)

__all__ = [
    "read_rows",
    "level_counts",
    "prompt_messages",
    "arithmetic_sft_rows",
    "gsm8k_sft_rows",
    "CausalData",
    "causal_items",
    "causal_messages",
    "causal_prompts",
    "causal_sft_rows",
    "causal_source",
]
