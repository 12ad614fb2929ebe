"""``bench analyze``'s documents as types: what ``results/analysis/*.json`` holds.

:class:`WeightsDoc` is one A → B weight comparison (``leaderboards.weights.WeightDiff``), and
:class:`BehaviorDoc` one eval cell × task's behaviour with its comparison to the parent stage
(``leaderboards.behavior``). Both carry a ``schema_version``; :func:`parse_analysis` upgrades
older files (the first ones had none: version 0), so the store, the board's panels and the CLI
read every file through these types.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench_core.errors import BenchError

__all__ = [
    "ANALYSIS_VERSION",
    "WeightsDoc",
    "WeightSummary",
    "WeightGroup",
    "TensorRow",
    "BehaviorDoc",
    "BehaviorFigures",
    "BehaviorComparison",
    "AnalysisDoc",
    "parse_analysis",
]

ANALYSIS_VERSION = 1

Num = float | None  # NaN and infinities are written as null (strict JSON)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorRow(_Doc):
    name: str
    layer: int | None
    module: str
    numel: int
    shape: list[int]
    sparsity: dict[str, Num]  # tolerance as written -> share of |ΔW| <= tol
    rel_norm: Num
    rank_ratio: Num = None
    spectral_drift: Num = None
    overlap: Num = None
    note: str | None = None


class WeightGroup(_Doc):
    """The tensors of one layer (``layer``) or one module type (``module``), averaged."""

    layer: int | None = None
    module: str | None = None
    n_tensors: int
    numel: int
    sparsity: dict[str, Num]
    density: dict[str, Num]
    rel_norm: Num
    rank_ratio: Num
    spectral_drift: Num
    overlap: Num

    @property
    def name(self) -> str:
        return str(self.module if self.module is not None else self.layer)


class WeightSummary(_Doc):
    n_tensors: int
    numel: int
    sparsity: dict[str, Num]  # weighted by numel
    rel_norm: Num  # ‖ΔW‖ / ‖W_A‖ over every tensor
    rank_ratio: Num


class WeightMeta(_Doc):
    """Who A and B are, set by ``bench analyze`` (empty when compared outside it)."""

    label: str | None = None
    a: str | None = None
    b: str | None = None
    model_id: str | None = None
    stage_a: str | None = None
    stage_b: str | None = None


class Skipped(_Doc):
    name: str
    reason: str


class WeightsDoc(_Doc):
    schema_version: Literal[1] = ANALYSIS_VERSION
    kind: Literal["weights"] = "weights"
    a: str
    b: str
    dtype: str
    mode: str  # full (two checkpoints) or lowrank (B is a LoRA adapter over A)
    tolerances: list[str]
    top_k: int
    seconds: float
    meta: WeightMeta = Field(default_factory=WeightMeta)
    summary: WeightSummary
    tensors: list[TensorRow]
    layers: list[WeightGroup]
    modules: list[WeightGroup]
    skipped: list[Skipped] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return self.meta.label or f"{self.a} → {self.b}"


class BehaviorFigures(_Doc):
    n_prompts: int
    n_samples: int
    samples_per_prompt: int
    score: Num
    reasoning_len_mean: Num
    reasoning_len_median: Num
    answer_len_mean: Num
    answer_len_median: Num
    truncation_rate: Num
    score_completed: Num
    distinct_answers: Num
    answer_entropy: Num
    sc_confidence: Num
    sc_accuracy: Num
    ece: Num
    brier: Num
    repetition: Num
    repetition_n: int


class Delta(_Doc):
    delta: Num
    ci: list[Num]
    p: Num = None


class Solved(_Doc):
    """Prompts solved within k samples, parent vs child, with McNemar's p."""

    both: int
    parent_only: int
    child_only: int
    neither: int
    p: Num


class PassPair(_Doc):
    parent: Num
    child: Num


class BehaviorComparison(_Doc):
    """Child minus parent over the prompts they share (``behavior.compare_behavior``)."""

    parent: str  # the parent's eval cell key
    child: str
    task: str
    n_shared: int
    deltas: dict[str, Delta]
    solved_at_k: dict[str, Solved]
    pass_at_k: dict[str, PassPair]
    crossover_k: int | None
    parent_stage: str | None = None


class BehaviorDoc(_Doc):
    schema_version: Literal[1] = ANALYSIS_VERSION
    kind: Literal["behavior"] = "behavior"
    model_id: str
    stage: str
    task_version: str
    cell_key: str
    task: str
    length_unit: str
    figures: BehaviorFigures
    pass_at_k: dict[str, Num]  # k -> unbiased pass@k
    vs_parent: BehaviorComparison | None = None

    @property
    def pass_at_1(self) -> Num:
        return self.pass_at_k.get("1")

    @property
    def pass_at_n(self) -> Num:
        """pass@k at the largest k measured."""
        return self.pass_at_k[max(self.pass_at_k, key=int)] if self.pass_at_k else None


AnalysisDoc = WeightsDoc | BehaviorDoc
_TYPES: dict[str, type[WeightsDoc] | type[BehaviorDoc]] = {
    "weights": WeightsDoc,
    "behavior": BehaviorDoc,
}


def _v0_to_v1(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """Version 0 (no schema_version): a weights document had no ``kind``; the meta of one
    compared outside ``bench analyze`` was ``{}``."""
    return {**doc, "schema_version": 1, "kind": doc.get("kind", kind)}


_UPGRADES: dict[int, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    0: _v0_to_v1,
}  # each version adds one step here (never edit old steps)


def parse_analysis(data: bytes | str | dict[str, Any], kind: str) -> AnalysisDoc:
    """A document of ``kind`` (weights or behavior: a file's name prefix) from its JSON or its
    decoded object, upgraded to this version; a ValueError names the field when it is not one."""
    if kind not in _TYPES:
        raise BenchError(f"analysis kind {kind!r}: use one of {', '.join(_TYPES)}")
    doc = json.loads(data) if isinstance(data, bytes | str) else data
    if not isinstance(doc, dict):
        raise BenchError(f"an analysis document is a JSON object, not {type(doc).__name__}")
    while doc.get("schema_version", 0) in _UPGRADES:
        doc = _UPGRADES[doc.get("schema_version", 0)](doc, kind)
    if doc.get("kind") != kind:
        raise BenchError(f"field 'kind': {doc.get('kind')!r}, not {kind!r}")
    return _TYPES[kind].model_validate(doc)
