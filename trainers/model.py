"""The public face of the trainers' model helpers, for the harness and the benchmarks.

A stage directory loads as the trainers wrote it (``merged/`` when present, else
``base_weights`` + ``adapter/``); generation and peak-memory readings are the ones the
trainers themselves use, so an eval measures what training saw. The code lives in
``_model``/``_generate``; this module only names what other packages may rely on.
"""

from __future__ import annotations

from trainers._generate import generate_completions
from trainers._model import ensure_merged, load_model, peak_memory_gb, reset_peak_memory

__all__ = [
    "load_model",
    "ensure_merged",
    "peak_memory_gb",
    "reset_peak_memory",
    "generate_completions",
]
