"""The math family's training side: prompts that are never a test item, and the teacher.

Sources (``sources=`` in a method's config; :data:`SOURCES` names the fields each reads):

- ``arithmetic``: generated items (:mod:`tasks.math.generate`) at ``levels``, ``n_per_level``
  of each or per-level counts such as ``2:300,4:10``; the seed must not be math_arith's test
  seed, and an item whose question is a test question is left out anyway (another seed still
  draws one now and then: 2 of 100 at level 2). ``direct_fraction`` of the traces give the
  answer without the steps.
- ``gsm8k``: GSM8K's train split, the first ``n_gsm8k`` rows after a seeded shuffle (math_gsm8k
  tests on the test split, other problems). Its traces always show the steps.

A prompt is math's eval prompt (``utils.doc_to_text``) as the user turn, so training and the
leaderboard ask the same question; the tokenizer's chat template renders it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tasks.math.generate import generate, test_seed, think_trace
from tasks.math.gsm8k import gsm8k_gold, gsm8k_steps, load_gsm8k

__all__ = [
    "SOURCES",
    "prompts",
    "teacher",
    "held_out",
    "test_questions",
    "level_counts",
    "train_items",
    "messages",
]

SOURCES = {"arithmetic": ("levels", "n_per_level", "direct_fraction"), "gsm8k": ("n_gsm8k",)}


@cache
def test_questions() -> frozenset[str]:
    """The questions of math_arith's test items (every level, as math_arith.yaml generates them)."""
    from tasks import task_config

    n = task_config(Path(__file__).with_name("math_arith.yaml"))["dataset_kwargs"]["n_per_level"]
    return frozenset(i["question"] for i in generate(int(n), test_seed()))


def held_out() -> frozenset[str]:
    """The user turns of math_arith's test items. GSM8K's test problems are another split of
    the dataset than the train rows the ``gsm8k`` source reads."""
    from tasks.math.utils import doc_to_text

    return frozenset(doc_to_text({"question": q}) for q in test_questions())


def messages(question: str) -> list[dict[str, str]]:
    """math's eval prompt for ``question`` as the user turn."""
    from tasks.math.utils import doc_to_text  # lazy: the lm-eval hooks load on first use

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


def train_items(levels: str | int | Sequence[int], n_per_level: int, seed: int) -> list[dict]:
    """Generated items at ``levels`` (see :func:`level_counts`) without math_arith's test
    questions; refuses the seed of the test items."""
    if seed == test_seed():
        raise ValueError(
            f"item_seed {seed} generates the math_arith test items (tasks/math/math_arith.yaml); "
            "train on another seed"
        )
    held = test_questions()
    return [
        i
        for i in generate(n_per_level, seed=seed, levels=level_counts(levels, n_per_level))
        if i["question"] not in held
    ]


def _field(fields: dict[str, Any], name: str, source: str) -> Any:
    if fields.get(name) is None:
        raise ValueError(
            f"sources={source} reads {name}, which this method's config does not have; "
            f"use a method with a {name} field"
        )
    return fields[name]


def prompts(source: str, seed: int, n: int | None = None, **fields: Any) -> list[dict]:
    """Training items of ``source`` with ``prompt`` (messages) and ``reference`` (the gold
    answer). With ``n`` (dpo and grpo): the first ``n``, spread over ``levels`` (ceil(n / levels)
    of each, interleaved); without: every item of ``n_per_level`` or ``n_gsm8k``."""
    if source == "gsm8k":
        rows = load_gsm8k("train")
        random.Random(seed).shuffle(rows)
        count = _field(fields, "n_gsm8k", source) if n is None else n
        return [
            {
                "id": r["question"],
                "source": "gsm8k",
                "question": r["question"],
                "solution": r["answer"],
                "prompt": messages(r["question"]),
                "reference": gsm8k_gold(r["answer"]),
            }
            for r in rows[:count]
        ]
    if source != "arithmetic":
        raise ValueError(f"math has no source {source!r}; use one of {', '.join(SOURCES)}")
    levels = _field(fields, "levels", source)
    if n is None:
        per_level = _field(fields, "n_per_level", source)
    else:
        per_level = -(-n // len(level_counts(levels, 0)))
    items = train_items(levels, per_level, seed)[:n]
    return [
        {**it, "source": "arith", "prompt": messages(it["question"]), "reference": it["answer"]}
        for it in items
    ]


def teacher(item: dict, direct: bool = False) -> str:
    """The programmatic teacher's ``<think>`` trace for a :func:`prompts` item
    (:func:`tasks.math.generate.think_trace`); ``direct``: the answer without the steps."""
    if item.get("source") == "gsm8k":  # a GSM8K train row: its solution's lines are the steps
        item = {"answer": item["reference"], "steps": gsm8k_steps(item["solution"])}
    return think_trace(item, direct=direct)
