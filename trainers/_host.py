"""A stage on a CPU: keep its resident memory to the tensors it holds.

Two things made a CPU stage's peak RSS several times its live tensors (the smoke grid's GRPO
stage on SmolLM2-135M: 6.3 GB peak, 2.1 GB with both settled; ci/perf/plan_vs_measured.py):

- **trl's fused LM head** scores the positions in tiles of 4096 positions × 32768 vocabulary
  columns. On CUDA a Triton kernel folds each tile in place; without Triton (any CPU) its torch
  fallback makes ~4 tile-sized fp32 temporaries in the forward and ~9 in the backward: 1.1 and
  2.3 GB for 16 rows of 134 tokens. Tiles of :data:`CPU_TILE` hold ~17 MB each. The log-sum-exp
  is folded online over the tiles either way, so the result differs only by float rounding.
- **glibc's malloc** serves blocks below its mmap threshold from the heap, and every mapped
  block freed raises that threshold to its size (up to 32 MB), so activations soon come from
  the heap. Under gradient checkpointing each layer's input is kept while its temporaries are
  freed around it, and the heap cannot return the holes: the forward grew RSS by ~80 MB a
  layer (2.4 GB over 30 layers) for 0.27 GB of saved tensors. A fixed threshold of
  :data:`MMAP_THRESHOLD` maps every block of that size on its own, so it goes back to the
  system when freed. Mapping them anew costs page faults: the smoke GRPO row of
  plan_vs_measured.py (2 steps, an idle 2-core machine) took 54 s before, 45 s with the tiles
  alone (4.5 GB peak) and 59 s with both (2.0 GB); a 4 MB threshold took as long for 2.2 GB.

:func:`cpu_stage_memory` sets both for the process (a CPU stage runs in its own process or one
after another in the harness's); the planner counts the tiles (trainers/planner.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["CPU_TILE", "MMAP_THRESHOLD", "cpu_stage_memory", "fused_head_tile"]

CPU_TILE = (512, 8192)  # positions × vocabulary columns per fused-head tile on a CPU
MMAP_THRESHOLD = 1 << 20  # bytes: blocks from this size are mapped, and unmapped when freed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def fused_head_tile() -> tuple[int, int]:
    """trl's fused-head tile as it is set now: (positions, vocabulary columns)."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as utils

    return kernel.TOKEN_CHUNK_SIZE, utils._CHUNKED_LOGPROB_CHUNK_SIZE


def _mallopt_mmap_threshold(nbytes: int) -> bool:
    """Fix glibc's mmap threshold (no-op elsewhere: musl and macOS have no mallopt)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError, TypeError):
        return False


def cpu_stage_memory() -> None:
    """trl's fused head in :data:`CPU_TILE` tiles and malloc's mmap threshold fixed at
    :data:`MMAP_THRESHOLD`, for a stage that trains on the CPU (module docstring)."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as utils

    # read by trl at each call: _fused_forward passes the width, the kernel reads the height
    kernel.TOKEN_CHUNK_SIZE, utils._CHUNKED_LOGPROB_CHUNK_SIZE = CPU_TILE
    _mallopt_mmap_threshold(MMAP_THRESHOLD)
