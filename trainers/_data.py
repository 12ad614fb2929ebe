"""Training rows: reading files, checking columns, data identity, and the task-built sets.

Rows are plain dicts in trl's dataset types: conversational ``messages``, or
``prompt``/``completion``, ``prompt``/``chosen``/``rejected`` (preferences), ``prompt`` +
a reference column (GRPO). Task-built sets use the task's own eval prompt
(``tasks.math.utils.doc_to_text``) as the user turn, so training and evaluation ask the
same question; the tokenizer's chat template renders it (never a hand-written string).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "read_rows",
    "sample_rows",
    "require_columns",
    "data_identity",
    "split_eval",
    "prompt_messages",
    "arithmetic_items",
    "arithmetic_prompts",
    "level_counts",
    "arithmetic_sft_rows",
    "gsm8k_sft_rows",
    "openthoughts_row",
    "EVAL_ITEM_SEED",
]

EVAL_ITEM_SEED = 1234  # tasks/math/math_arith.yaml: the generated items the leaderboard tests on


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def read_rows(spec: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local .jsonl/.json/.parquet/.csv file, or ``hub:org/name`` when online."""
    if spec.startswith("hub:"):
        name = spec.removeprefix("hub:")
        if _offline():
            raise ValueError(
                f"dataset {name}: HF_HUB_OFFLINE is set; point dataset= at a local file instead"
            )
        import datasets

        return [dict(r) for r in datasets.load_dataset(name, split=split)]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"dataset {spec}: file not found; pass a .jsonl/.json/.parquet/.csv path or hub:org/name"
        )
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"dataset {spec}: a .json file must hold a list of rows")
        return data
    if suffix in (".parquet", ".csv"):
        import pyarrow.csv
        import pyarrow.parquet

        table = (
            pyarrow.parquet.read_table(path) if suffix == ".parquet" else pyarrow.csv.read_csv(path)
        )
        return table.to_pylist()
    raise ValueError(
        f"dataset {spec}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet or .csv"
    )


def require_columns(
    rows: Sequence[dict], alternatives: Sequence[Sequence[str]], source: str
) -> tuple[str, ...]:
    """The first column set every row has; else a one-line error naming what is missing."""
    if not rows:
        raise ValueError(f"dataset {source}: no rows; check the file or the generator settings")
    for columns in alternatives:
        if all(all(c in row for c in columns) for row in rows):
            return tuple(columns)
    first = rows[0]
    wanted = " or ".join("+".join(c) for c in alternatives)
    missing = [c for c in alternatives[0] if c not in first] or list(alternatives[0])
    raise ValueError(
        f"dataset {source}: missing column {missing[0]!r} (need {wanted}; found {', '.join(sorted(first)) or 'none'}); "
        f"rename the columns or convert the file to one of those formats"
    )


def data_identity(rows: Sequence[dict], source: str) -> dict[str, Any]:
    """What the training data was: its source, row count and a hash of the canonical rows."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return {"source": source, "rows": len(rows), "sha256": h.hexdigest()}


def sample_rows(rows: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded sample of ``n`` rows (in their original order), or all rows when ``n`` is
    unset or not smaller: a hub mixture is concatenated by source, so its first N rows
    would be one source."""
    if not n or n >= len(rows):
        return rows
    if n < 0:
        raise ValueError(f"limit {n}: must be a positive number of rows")
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


def split_eval(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, eval): a seeded ``fraction`` held out, at least one row when fraction > 0."""
    if fraction <= 0:
        return rows, []
    if not 0 < fraction < 1:
        raise ValueError(f"eval_fraction {fraction}: must be in [0, 1)")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(len(rows) * fraction))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def prompt_messages(question: str) -> list[dict[str, str]]:
    """The math task's eval prompt as the user turn."""
    from tasks.math.utils import doc_to_text

    return [{"role": "user", "content": doc_to_text({"question": question})}]


def level_counts(levels: str | int | Sequence[int], n_per_level: int) -> dict[int, int]:
    """Items per level: ``"2,4"`` → ``n_per_level`` of each; ``"2:300,4:10"`` → a mix with
    its own count per level (a curriculum: many easy traces, a few of the harder level)."""
    if isinstance(levels, int):
        return {levels: n_per_level}
    parts = levels.replace(" ", "").split(",") if isinstance(levels, str) else list(levels)
    counts: dict[int, int] = {}
    for part in (str(x) for x in parts if str(x)):
        level, _, n = part.partition(":")
        if not (level.isdigit() and (not n or n.isdigit())):
            raise ValueError(
                f"levels {levels!r}: {part!r} is not LEVEL or LEVEL:COUNT; write e.g. 2,4 or 2:300,4:10"
            )
        counts[int(level)] = int(n) if n else n_per_level
    return counts


def arithmetic_items(levels: str | int | Sequence[int], n_per_level: int, seed: int) -> list[dict]:
    """Generated items (tasks.math.generate) at ``levels`` (see :func:`level_counts`);
    refuses the seed of the leaderboard's test items."""
    from tasks.math import generate

    if seed == EVAL_ITEM_SEED:
        raise ValueError(
            f"item_seed {EVAL_ITEM_SEED} generates the math_arith test items (tasks/math/math_arith.yaml); "
            "train on another seed"
        )
    return generate(n_per_level, seed=seed, levels=level_counts(levels, n_per_level))


def arithmetic_prompts(levels: str | int | Sequence[int], n: int, seed: int) -> list[dict]:
    """The first ``n`` generated items spread over ``levels`` (ceil(n / levels) of each,
    interleaved), for methods that sample from prompts: dpo pairs, grpo rollouts."""
    per_level = -(-n // len(level_counts(levels, 0)))
    return arithmetic_items(levels, per_level, seed)[:n]


def _conversation(question: str, answer: str) -> dict:
    """Conversational prompt/completion: trl trains on the completion only, so the loss is
    not spent on the (fixed) instruction and chat-template tokens."""
    return {
        "prompt": prompt_messages(question),
        "completion": [{"role": "assistant", "content": answer}],
    }


def arithmetic_sft_rows(
    levels: str | int | Sequence[int], n_per_level: int, seed: int, direct_fraction: float = 0.0
) -> list[dict]:
    """The programmatic teacher's ``<think>`` traces for generated arithmetic; a seeded
    ``direct_fraction`` of the items get the answer without the steps (think_trace's ``direct``)."""
    from tasks.math import think_trace

    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction {direct_fraction} must be between 0 and 1")
    items = arithmetic_items(levels, n_per_level, seed)
    return [
        _conversation(
            it["question"],
            think_trace(it, direct=random.Random(f"direct:{it['id']}").random() < direct_fraction),
        )
        for it in items
    ]


def gsm8k_sft_rows(n: int, seed: int) -> list[dict]:
    """GSM8K train solutions rewritten as ``<think>`` traces (the first ``n`` after a seeded shuffle)."""
    from tasks.math import gsm8k_think_trace, load_gsm8k

    rows = load_gsm8k("train")
    random.Random(seed).shuffle(rows)
    return [_conversation(r["question"], gsm8k_think_trace(r)) for r in rows[:n]]


_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.S)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.S)


def openthoughts_row(row: dict) -> dict:
    """An OpenThoughts-style row (``conversations`` of from/value, begin/end_of_thought markers)
    → ``messages`` with the reasoning in ``<think>…</think>``."""
    messages = []
    for turn in row["conversations"]:
        role = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}[
            turn["from"]
        ]
        text = turn["value"]
        thought, solution = _THOUGHT.search(text), _SOLUTION.search(text)
        if role == "assistant" and thought:
            answer = solution.group(1).strip() if solution else text[thought.end() :].strip()
            text = f"<think>\n{thought.group(1).strip()}\n</think>\n{answer}"
        messages.append({"role": role, "content": text})
    return {"messages": messages}
