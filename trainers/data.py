"""The public face of the trainers' data helpers: reading rows and the sets task families build.

Other packages (the benchmarks under ci/perf) build the same sets the trainers train on
through these names; the code lives in ``_data``.
"""

from __future__ import annotations

from trainers._data import (
    CausalData,
    read_rows,
    source_fields,
    source_name,
    source_prompts,
    source_traces,
    trace_rows,
)

__all__ = [
    "read_rows",
    "CausalData",
    "source_fields",
    "source_name",
    "source_prompts",
    "source_traces",
    "trace_rows",
]
