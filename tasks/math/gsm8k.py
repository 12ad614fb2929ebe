"""GSM8K: the data mirror first, the hub only as a fallback for users who are online.

The mirror (bench_core.mirror: ``$BENCH_DATA_DIR``, else ``../shared/data`` beside the
checkout) holds ``openai/gsm8k/main/{train,test}.jsonl`` (fields ``question``, ``answer`` =
a worked solution ending ``#### <number>``); the earlier names ``gsm8k_{train,test}.jsonl`` at
its top are read too. Without either, ``openai/gsm8k`` (config ``main``) is loaded with
``datasets``. Tests never take the hub path.
"""

from __future__ import annotations

import re

from bench_core.mirror import data_dir, split_file
from bench_core.offline import hub_offline
from bench_core.rows import read_rows
from tasks.math.extract import normalize_number

__all__ = [
    "data_dir",
    "load_gsm8k",
    "gsm8k_gold",
    "gsm8k_steps",
    "gsm8k_solution",
    "gsm8k_think_trace",
    "HUB_DATASET",
]

HUB_DATASET = ("openai/gsm8k", "main")
_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")


def load_gsm8k(split: str) -> list[dict]:
    """Rows ``{question, answer}`` of a split (``train`` or ``test``)."""
    found = split_file(*HUB_DATASET, split)
    if found is not None:
        return read_rows(found)
    if hub_offline(datasets=True):
        folder = data_dir()
        where = f"{folder}/openai/gsm8k/main/{split}.jsonl" if folder else f"{split}.jsonl"
        raise ValueError(
            f"GSM8K: {where} not found and the hub is off (HF_HUB_OFFLINE); set BENCH_DATA_DIR to "
            "a data mirror holding openai/gsm8k/main/{train,test}.jsonl (bench data pull gsm8k)"
        )
    import datasets  # the online fallback only

    return [dict(row) for row in datasets.load_dataset(*HUB_DATASET, split=split)]


def gsm8k_gold(answer: str) -> str:
    """The gold number after ``####``, normalised ("1,600" -> "1600")."""
    if "####" not in answer:
        raise ValueError("GSM8K answer has no '#### <number>' line")
    return normalize_number(answer.rsplit("####", 1)[1])


def gsm8k_steps(answer: str) -> list[str]:
    """The solution's lines before ``####``, calculator annotations ``<<a*b=c>>`` removed."""
    body = _CALCULATOR_RE.sub("", answer.rsplit("####", 1)[0])
    return [" ".join(line.split()) for line in body.splitlines() if line.strip()]


def gsm8k_solution(row: dict) -> str:
    """The worked solution as plain text ending "The answer is N." (a few-shot target)."""
    return "\n".join([*gsm8k_steps(row["answer"]), f"The answer is {gsm8k_gold(row['answer'])}."])


def gsm8k_think_trace(row: dict) -> str:
    """The solution rewritten as ``<think>`` with "Step n:" lines, then "The answer is N."."""
    steps = "\n".join(f"Step {i}: {s}" for i, s in enumerate(gsm8k_steps(row["answer"]), 1))
    return f"<think>\n{steps}\n</think>\nThe answer is {gsm8k_gold(row['answer'])}."
