"""lm-eval hooks of the math tasks (referenced from the YAMLs with ``!function``).

Every doc carries ``question``, ``reference`` (the gold answer), ``target`` (a worked
solution ending "The answer is N.", the few-shot answer), ``source`` (``gsm8k`` or
``arith``, which tells think_quality a math doc) and its metadata (``level`` for
generated items), so lm-eval's per-sample rows keep it.
"""

from __future__ import annotations

from typing import Any

from tasks.math.generate import LEVELS, generate, test_seed
from tasks.math.gsm8k import gsm8k_gold, gsm8k_solution, load_gsm8k
from tasks.math.verifier import verify
from tasks.scoring import score_once

_verify = score_once(verify)  # process_results and sample_fields see the same samples

__all__ = [
    "MATH_SOURCES",
    "load_gsm8k_docs",
    "load_arith_docs",
    "doc_to_text",
    "process_results",
    "sample_fields",
]

MATH_SOURCES = ("gsm8k", "arith")
_INSTRUCTION = 'Solve the problem step by step, then finish with "The answer is N." where N is the final number.'


def _dataset_dict(splits: dict[str, list[dict]]):
    import datasets

    return datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in splits.items()}
    )


def _gsm8k_doc(row: dict) -> dict:
    return {
        "source": "gsm8k",
        "question": row["question"],
        "answer": row["answer"],
        "reference": gsm8k_gold(row["answer"]),
        "target": gsm8k_solution(row),
    }


def load_gsm8k_docs(**_metadata: Any):
    """``custom_dataset`` of ``math_gsm8k``: local GSM8K (hub fallback), test and train.

    lm-eval passes the task metadata and model args as keywords; none are needed.
    """
    return _dataset_dict(
        {split: [_gsm8k_doc(r) for r in load_gsm8k(split)] for split in ("test", "train")}
    )


def _arith_doc(item: dict) -> dict:
    steps = "\n".join(item["steps"])
    return {
        "source": "arith",
        **item,
        "reference": item["answer"],
        "target": f"{steps}\nThe answer is {item['answer']}.",
    }


def load_arith_docs(
    seed: int | None = None,
    n_per_level: int = 100,
    fewshot_seed: int = 4321,
    levels=None,
    **_metadata: Any,
):
    """``custom_dataset`` of ``math_arith``: generated items, a test and a few-shot split
    (``seed`` defaults to the YAML's, :func:`tasks.math.test_seed`; ``levels``: all by default)."""
    seed = test_seed() if seed is None else int(seed)
    levels = tuple(int(x) for x in levels) if levels else LEVELS
    return _dataset_dict(
        {
            "test": [_arith_doc(i) for i in generate(n_per_level, seed, levels=levels)],
            "train": [_arith_doc(i) for i in generate(10, fewshot_seed)],
        }
    )


def doc_to_text(doc: dict) -> str:
    return f"Question: {doc['question']}\n{_INSTRUCTION}\nAnswer:"


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return {"exact_match": _verify(results[0], doc["reference"]).value}


def sample_fields(doc: dict, completion: str) -> dict[str, Any]:
    """Per-sample row fields for the harness: the parsed answer and whether it was right."""
    score = _verify(completion, doc["reference"])
    return {"answer": score.answer, "correct": score.value == 1.0, "score": score.value}
