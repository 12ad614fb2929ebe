"""Training rows: reading files, checking columns, data identity, and the task-built sets.

Rows are plain dicts in trl's dataset types: conversational ``messages``, or
``prompt``/``completion``, ``prompt``/``chosen``/``rejected`` (preferences), ``prompt`` +
a reference column (GRPO). Task-built sets use the task's own eval prompt
(``tasks.math.utils.doc_to_text``, ``tasks.causal_nli.utils.doc_to_text``) as the user
turn, so training and evaluation ask the same question; the tokenizer's chat template
renders it (never a hand-written string).

The causal source (``sources=causal``, fields of :class:`CausalData`) reads Corr2Cause
rows from a file or the hub, or generates them with the oracle, and never keeps an item
whose text is one of causal_nli's test items: at 3 variables the generator has only a
few hundred distinct items, so fresh seeds alone would not keep them apart.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from bench_core.mirror import mirror_rows
from bench_core.offline import hub_offline
from bench_core.rows import read_rows as read_file
from trainers._config import Allowed, at_least

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
    "CausalData",
    "CAUSAL_HUB",
    "causal_items",
    "causal_source",
    "causal_messages",
    "causal_sft_rows",
    "causal_prompts",
]

from tasks.math import test_seed

EVAL_ITEM_SEED = test_seed()  # the generated items the leaderboard tests on (math_arith.yaml)


def read_rows(spec: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local .jsonl/.json/.parquet/.csv file (bench_core.rows), or ``hub:org/name``: the
    data mirror's ``org/name/<split>.jsonl`` when it holds the split, else the hub when online."""
    if spec.startswith("hub:"):
        name = spec.removeprefix("hub:")
        mirrored = mirror_rows(name, None, split)
        if mirrored is not None:
            return mirrored
        if hub_offline(datasets=True):
            raise ValueError(
                f"dataset {name}: not in the data mirror ({name}/{split}.jsonl under $BENCH_DATA_DIR) "
                "and HF_HUB_OFFLINE is set; copy the split there or point dataset= at a local file"
            )
        import datasets

        return [dict(r) for r in datasets.load_dataset(name, split=split)]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"dataset {spec}: file not found; pass a .jsonl/.json/.parquet/.csv path or hub:org/name"
        )
    return read_file(path)


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
    from tasks.math import test_questions

    held_out = test_questions()  # another seed can still draw a test question (2 of 100 at level 2)
    return [
        i
        for i in generate(n_per_level, seed=seed, levels=level_counts(levels, n_per_level))
        if i["question"] not in held_out
    ]


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


# --- causal_nli -----------------------------------------------------------------------------

CAUSAL_HUB = "causal-nlp/corr2cause"
# tasks/causal_nli/causal_nli.yaml: the generated items the leaderboard tests on
CAUSAL_EVAL = {"n_items": 240, "seed": 1234, "num_variables": (2, 3, 4, 5, 6)}


@dataclass
class CausalData:
    """Fields of the causal source, shared by every method's config (``sources=causal``)."""

    causal_file: str = ""  # Corr2Cause CSV/JSONL, or hub:causal-nlp/corr2cause; empty: generated
    causal_n: int = 1000  # rows: generated, or kept from the file after filtering
    num_variables: str = "2,3,4,5,6"  # generated sizes; a file's rows are filtered to these
    kinds: str = ""  # comma-separated hypothesis kinds (tasks.causal_nli.KINDS); empty: all
    label_balance: bool = True  # half valid per (N, kind); from a file, valid and invalid alternate

    RANGES: ClassVar[dict[str, Allowed]] = {"causal_n": at_least(1)}


def _causal_choices(cfg) -> tuple[tuple[int, ...], tuple[str, ...]]:
    from tasks.causal_nli import KINDS

    value = cfg.num_variables
    text = (
        ",".join(map(str, value))
        if isinstance(value, list | tuple)
        else str(value).replace(" ", "")
    )
    if not all(p.isdigit() and 2 <= int(p) <= 8 for p in text.split(",")):
        raise ValueError(
            f"num_variables {cfg.num_variables!r}: write sizes 2..8 separated by commas, e.g. 3,4"
        )
    kinds = tuple(k.strip() for k in str(cfg.kinds).split(",") if k.strip()) or KINDS
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds {unknown[0]!r} unknown; use some of {', '.join(KINDS)}")
    return tuple(sorted({int(p) for p in text.split(",")})), kinds


def _causal_file_rows(spec: str) -> list[dict]:
    """Rows of a Corr2Cause file (the released layout), or of the hub's train.csv when online."""
    if spec.startswith("hub:"):
        name = spec.removeprefix("hub:")
        mirrored = mirror_rows(name, None, "train")  # the hub's train.csv, as the mirror holds it
        if mirrored is not None:
            return mirrored
        if hub_offline(datasets=True):
            raise ValueError(
                f"causal_file {spec}: not in the data mirror ({name}/train.jsonl under "
                "$BENCH_DATA_DIR) and HF_HUB_OFFLINE is set; point causal_file at a local Corr2Cause CSV"
            )
        import datasets

        # name the one CSV: the repo's default config would also fetch dev and test
        return [
            dict(r)
            for r in datasets.load_dataset(name, data_files={"data": "train.csv"}, split="data")
        ]
    from tasks.causal_nli.check import read_rows as read_corr2cause

    return read_corr2cause(Path(spec).expanduser())


@cache
def _test_inputs() -> frozenset[str]:
    from tasks.causal_nli import generate

    rows = generate(
        CAUSAL_EVAL["n_items"], CAUSAL_EVAL["seed"], num_variables=CAUSAL_EVAL["num_variables"]
    )
    return frozenset(r["input"] for r in rows)


def causal_items(cfg, seed: int) -> list[dict]:
    """Corr2Cause rows (``input``, ``label`` 0/1, ``num_variables``, ``template``, ``id``) of
    ``cfg``'s causal fields, without causal_nli's test items."""
    from tasks.causal_nli import ParseError, generate, normalize_label, parse_input

    sizes, kinds = _causal_choices(cfg)
    if cfg.causal_n < 1:
        raise ValueError(f"causal_n {cfg.causal_n}: must be at least 1")
    held = _test_inputs()
    if not cfg.causal_file:
        if seed == CAUSAL_EVAL["seed"]:
            raise ValueError(
                f"item_seed {seed} generates the causal_nli test items (tasks/causal_nli/causal_nli.yaml); "
                "train on another seed"
            )
        try:
            rows = generate(
                cfg.causal_n, seed, num_variables=sizes, kinds=kinds, balance=cfg.label_balance
            )
        except ValueError as err:  # too few distinct problems at these sizes and kinds
            raise ValueError(
                f"causal_n {cfg.causal_n}: {err}; lower causal_n or widen num_variables/kinds"
            ) from None
        return [r for r in rows if r["input"] not in held]
    rows = []
    for k, row in enumerate(_causal_file_rows(cfg.causal_file)):
        try:
            premise, hypothesis = parse_input(str(row["input"]))
            label = int(normalize_label(row["label"]) == "valid")
        except (ParseError, ValueError) as err:
            raise ValueError(f"causal_file {cfg.causal_file}: row {k}: {err}") from None
        n = len(premise.variables)
        if n in sizes and hypothesis.kind in kinds and row["input"] not in held:
            rows.append(
                {
                    "input": row["input"],
                    "label": label,
                    "num_variables": n,
                    "template": hypothesis.kind,
                    "id": str(row.get("id") or f"row-{k}"),
                }
            )
    random.Random(seed).shuffle(rows)
    if cfg.label_balance:  # valid and invalid alternate while both last
        by = [[r for r in rows if r["label"] == v] for v in (1, 0)]
        rows = (
            [r for pair in zip(*by, strict=False) for r in pair]
            + by[0][len(by[1]) :]
            + by[1][len(by[0]) :]
        )
    if not rows:
        raise ValueError(
            f"causal_file {cfg.causal_file}: no row with num_variables in {cfg.num_variables} and kinds "
            f"{cfg.kinds or 'all'}; widen num_variables or kinds"
        )
    return rows[: cfg.causal_n]


def causal_source(cfg, seed: int, direct_fraction: float | None = None) -> str:
    """A name for the causal rows that states every field they came from."""
    origin = f"file={cfg.causal_file}" if cfg.causal_file else "generated"
    direct = "" if direct_fraction is None else f",direct={direct_fraction}"
    return (
        f"causal({origin},n={cfg.causal_n},num_variables={cfg.num_variables},kinds={cfg.kinds or 'all'},"
        f"balance={cfg.label_balance},seed={seed}{direct})"
    )


def causal_messages(text: str) -> list[dict[str, str]]:
    """causal_nli's eval prompt for a Corr2Cause ``input`` as the user turn."""
    from tasks.causal_nli.utils import doc_to_text, to_doc

    return [{"role": "user", "content": doc_to_text(to_doc({"input": text, "label": 0}, 0))}]


def causal_sft_rows(cfg, seed: int, direct_fraction: float) -> list[dict]:
    """The causal teacher's ``<think>`` traces (tasks.causal_nli.teacher); a seeded
    ``direct_fraction`` of the items get the verdict alone (1.0: verdict-only SFT)."""
    from tasks.causal_nli.teacher import trace_for_input

    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction {direct_fraction} must be between 0 and 1")
    rows = []
    for it in causal_items(cfg, seed):
        direct = random.Random(f"direct:{it['input']}").random() < direct_fraction
        answer = trace_for_input(it["input"], direct=direct)
        rows.append(
            {
                "prompt": causal_messages(it["input"]),
                "completion": [{"role": "assistant", "content": answer}],
            }
        )
    return rows


def causal_prompts(cfg, seed: int) -> list[dict]:
    """Items with their eval prompt (``prompt``), gold verdict (``reference``) and the
    teacher's trace (``teacher``), for methods that sample: dpo pairs, grpo rollouts."""
    from tasks.causal_nli.teacher import trace_for_input

    return [
        {
            "prompt": causal_messages(it["input"]),
            "reference": "valid" if it["label"] else "invalid",
            "teacher": trace_for_input(it["input"]),
        }
        for it in causal_items(cfg, seed)
    ]
