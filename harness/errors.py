"""User-facing errors; they live in the leaf layer (bench_core.errors) so every package can raise them."""

from __future__ import annotations

from bench_core.errors import BenchError, closest

__all__ = ["BenchError", "closest"]
