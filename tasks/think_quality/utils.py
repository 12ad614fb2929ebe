"""lm-eval hooks of the think_quality tasks (referenced with ``!function``)."""

from __future__ import annotations

from typing import Any

from tasks.math.utils import MATH_SOURCES
from tasks.scoring import score_once
from tasks.think_quality.scorer import score as _score

score = score_once(_score)  # process_results and sample_fields see the same samples

__all__ = ["process_results_math", "process_results_causal", "sample_fields"]


def _metrics(completion: str, reference: Any, task: str) -> dict[str, float]:
    s = score(completion, reference, task)
    return {"composite": s.composite, "format_ok": float(s.format_ok), "correct": s.correct}


def process_results_math(doc: dict, results: list[str]) -> dict[str, float]:
    return _metrics(results[0], doc["reference"], "math")


def _causal_reference(doc: dict) -> Any:
    # causal_nli docs are expected to carry "reference" (what its verify takes), else "label".
    return doc["reference"] if "reference" in doc else doc["label"]


def process_results_causal(doc: dict, results: list[str]) -> dict[str, float]:
    return _metrics(results[0], _causal_reference(doc), "causal_nli")


def sample_fields(doc: dict, completion: str) -> dict[str, Any]:
    """Per-sample row fields for the harness: ``correct`` is the answer's own correctness
    (what paired tests compare), not the composite."""
    math_doc = doc.get("source") in MATH_SOURCES
    s = score(
        completion,
        doc["reference"] if math_doc else _causal_reference(doc),
        "math" if math_doc else "causal_nli",
    )
    return {"answer": s.answer, "correct": s.correct == 1.0, "score": s.composite}
