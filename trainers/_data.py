"""Training rows: reading files, checking columns, data identity, and the sets task families build.

Rows are plain dicts in trl's dataset types: conversational ``messages``, or
``prompt``/``completion``, ``prompt``/``chosen``/``rejected`` (preferences), ``prompt`` +
a reference column (GRPO).

Without a file, a method trains on ``sources``: names of a task family's training sources
(``tasks.FAMILIES``; ``tasks.training_sources()`` lists them). The family builds the items,
each with its own eval prompt as the user turn (so training and evaluation ask the same
question; the tokenizer's chat template renders it) and never one of its test items, and
writes the teacher's trace; this module only joins them into rows. Which config fields a
source reads is the family's ``SOURCES``; they and the item seed name the rows' source.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
    "openthoughts_row",
    "CausalData",
    "source_fields",
    "source_name",
    "source_prompts",
    "trace_rows",
    "source_traces",
]


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


@dataclass
class CausalData:
    """Fields of causal_nli's ``causal`` source, shared by every method's config (``sources=causal``;
    ``tasks.causal_nli.train`` reads them)."""

    causal_file: str = ""  # Corr2Cause CSV/JSONL, or hub:causal-nlp/corr2cause; empty: generated
    causal_n: int = 1000  # rows: generated, or kept from the file after filtering
    num_variables: str = "2,3,4,5,6"  # generated sizes; a file's rows are filtered to these
    kinds: str = ""  # comma-separated hypothesis kinds (tasks.causal_nli.KINDS); empty: all
    label_balance: bool = True  # half valid per (N, kind); from a file, valid and invalid alternate

    RANGES: ClassVar[dict[str, Allowed]] = {"causal_n": at_least(1)}


# --- task families' training sources ---------------------------------------------------------


def source_fields(cfg: Any, source: str) -> dict[str, Any]:
    """The fields of ``cfg`` that training source ``source`` reads (its family's ``SOURCES``),
    those the config has."""
    from tasks import family, training_sources

    sources = training_sources()
    if source not in sources:
        method = type(cfg).__name__.removesuffix("Config").lower()
        raise ValueError(
            f"{method} config: sources {source!r} unknown; use one of {', '.join(sources)}"
        )
    wanted = family(sources[source]).SOURCES[source]
    return {name: getattr(cfg, name) for name in wanted if hasattr(cfg, name)}


def source_name(source: str, seed: int, **fields: Any) -> str:
    """A name for a source's rows that states every field they came from (empty ones left out)."""
    shown = [f"{k}={v}" for k, v in fields.items() if v not in ("", None)]
    return f"{source}({','.join([*shown, f'seed={seed}'])})"


def source_prompts(
    source: str, seed: int, n: int | None = None, **fields: Any
) -> tuple[str, list[dict]]:
    """(family, items): the family's training items of ``source``, each with ``id``, ``prompt``
    (messages) and ``reference``; the first ``n`` when given (methods that sample: dpo, grpo)."""
    from tasks import family, source_family

    fields.pop("direct_fraction", None)  # it shapes the traces (trace_rows), not the items
    name = source_family(source)
    return name, family(name).prompts(source, seed, n, **fields)


def trace_rows(source: str, seed: int, direct_fraction: float = 0.0, **fields: Any) -> list[dict]:
    """Prompt/completion rows of the family teacher's ``<think>`` traces for ``source``'s items;
    a seeded ``direct_fraction`` of them (drawn per item ``id``) give the answer without the
    steps. trl trains on the completion only, so the loss is not spent on the (fixed)
    instruction and chat-template tokens."""
    from tasks import family

    if not 0.0 <= direct_fraction <= 1.0:
        raise ValueError(f"direct_fraction {direct_fraction} must be between 0 and 1")
    name, items = source_prompts(source, seed, **fields)
    teacher = family(name).teacher
    return [
        {
            "prompt": it["prompt"],
            "completion": [
                {
                    "role": "assistant",
                    "content": teacher(
                        it, direct=random.Random(f"direct:{it['id']}").random() < direct_fraction
                    ),
                }
            ],
        }
        for it in items
    ]


def source_traces(cfg: Any, sources: str) -> tuple[list[dict], str]:
    """Trace rows of every training source in the comma-separated ``sources`` (sft, distill), and
    a name for them; the fields each reads come from ``cfg``."""
    rows, names = [], []
    for source in [s.strip() for s in sources.split(",") if s.strip()]:
        fields = source_fields(cfg, source)
        rows += trace_rows(source, cfg.item_seed, **fields)
        names.append(source_name(source, cfg.item_seed, **fields))
    return rows, "+".join(names)
