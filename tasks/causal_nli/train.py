"""The causal_nli family's training side: Corr2Cause prompts that are never a test item, and
the teacher.

Source ``causal`` (``sources=causal`` in a method's config; :data:`SOURCES` names the fields it
reads): Corr2Cause rows from a file (``causal_file``: CSV/JSONL in the released layout, or
``hub:causal-nlp/corr2cause``), or generated with the oracle (:mod:`tasks.causal_nli.generator`)
at ``num_variables`` and ``kinds``, ``causal_n`` of them, half valid per (N, kind) with
``label_balance``. An item whose text is one of causal_nli's test items is left out: at 3
variables the generator has only a few hundred distinct items, so fresh seeds alone would not
keep them apart. ``direct_fraction`` of the traces give the verdict alone.

A prompt is causal_nli's eval prompt (``utils.doc_to_text``) as the user turn; the reference is
the gold verdict, ``valid`` or ``invalid``.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import Any

from bench_core.mirror import mirror_rows
from bench_core.offline import hub_offline
from tasks.causal_nli.check import read_rows as read_corr2cause
from tasks.causal_nli.generator import generate
from tasks.causal_nli.language import KINDS, ParseError, parse_input
from tasks.causal_nli.traces import trace_for_input
from tasks.causal_nli.verifier import normalize_label

__all__ = ["SOURCES", "prompts", "teacher", "held_out", "test_inputs", "train_items", "messages"]

SOURCES = {
    "causal": (
        "causal_file",
        "causal_n",
        "num_variables",
        "kinds",
        "label_balance",
        "direct_fraction",
    )
}


def _test_metadata() -> dict[str, Any]:
    from tasks import task_config

    return task_config(Path(__file__).with_name("causal_nli.yaml"))["metadata"]


@cache
def test_inputs() -> frozenset[str]:
    """The ``input`` texts of causal_nli's test items, generated as causal_nli.yaml says."""
    from tasks.causal_nli.utils import _generated, _sizes

    meta = _test_metadata()
    sizes = {"sizes": _sizes(meta["num_variables"])} if "num_variables" in meta else {}
    return frozenset(
        d["input"] for d in _generated(int(meta["n_items"]), int(meta["data_seed"]), **sizes)
    )


def held_out() -> frozenset[str]:
    """The user turns of causal_nli's test items (its variants ask the same problems)."""
    return frozenset(messages(x)[0]["content"] for x in test_inputs())


def messages(text: str) -> list[dict[str, str]]:
    """causal_nli's eval prompt for a Corr2Cause ``input`` as the user turn."""
    from tasks.causal_nli.utils import (
        doc_to_text,
        to_doc,
    )  # lazy: the lm-eval hooks load on first use

    return [{"role": "user", "content": doc_to_text(to_doc({"input": text, "label": 0}, 0))}]


def _choices(num_variables: Any, kinds: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    text = (
        ",".join(map(str, num_variables))
        if isinstance(num_variables, list | tuple)
        else str(num_variables).replace(" ", "")
    )
    if not all(p.isdigit() and 2 <= int(p) <= 8 for p in text.split(",")):
        raise ValueError(
            f"num_variables {num_variables!r}: write sizes 2..8 separated by commas, e.g. 3,4"
        )
    chosen = tuple(k.strip() for k in str(kinds).split(",") if k.strip()) or KINDS
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds {unknown[0]!r} unknown; use some of {', '.join(KINDS)}")
    return tuple(sorted({int(p) for p in text.split(",")})), chosen


def _file_rows(spec: str) -> list[dict]:
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
    return read_corr2cause(Path(spec).expanduser())


def train_items(
    seed: int,
    *,
    causal_file: str,
    causal_n: int,
    num_variables: Any,
    kinds: str,
    label_balance: bool,
) -> list[dict]:
    """Corr2Cause rows (``input``, ``label`` 0/1, ``num_variables``, ``template``, ``id``) of
    the source's fields, without causal_nli's test items."""
    sizes, chosen = _choices(num_variables, kinds)
    if causal_n < 1:
        raise ValueError(f"causal_n {causal_n}: must be at least 1")
    held = test_inputs()
    if not causal_file:
        if seed == int(_test_metadata()["data_seed"]):
            raise ValueError(
                f"item_seed {seed} generates the causal_nli test items (tasks/causal_nli/causal_nli.yaml); "
                "train on another seed"
            )
        try:
            rows = generate(
                causal_n, seed, num_variables=sizes, kinds=chosen, balance=label_balance
            )
        except ValueError as err:  # too few distinct problems at these sizes and kinds
            raise ValueError(
                f"causal_n {causal_n}: {err}; lower causal_n or widen num_variables/kinds"
            ) from None
        return [r for r in rows if r["input"] not in held]
    rows = []
    for k, row in enumerate(_file_rows(causal_file)):
        try:
            premise, hypothesis = parse_input(str(row["input"]))
            label = int(normalize_label(row["label"]) == "valid")
        except (ParseError, ValueError) as err:
            raise ValueError(f"causal_file {causal_file}: row {k}: {err}") from None
        n = len(premise.variables)
        if n in sizes and hypothesis.kind in chosen and row["input"] not in held:
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
    if label_balance:  # valid and invalid alternate while both last
        by = [[r for r in rows if r["label"] == v] for v in (1, 0)]
        rows = (
            [r for pair in zip(*by, strict=False) for r in pair]
            + by[0][len(by[1]) :]
            + by[1][len(by[0]) :]
        )
    if not rows:
        raise ValueError(
            f"causal_file {causal_file}: no row with num_variables in {num_variables} and kinds "
            f"{kinds or 'all'}; widen num_variables or kinds"
        )
    return rows[:causal_n]


def prompts(source: str, seed: int, n: int | None = None, **fields: Any) -> list[dict]:
    """Training items with ``prompt`` (messages) and ``reference`` (the gold verdict); the
    first ``n`` when given. An item's ``id`` is its text: a generator's or a file's ids repeat
    across seeds and files, the problem does not."""
    if source != "causal":
        raise ValueError(f"causal_nli has no source {source!r}; use one of {', '.join(SOURCES)}")
    return [
        {
            **it,
            "id": it["input"],
            "prompt": messages(it["input"]),
            "reference": "valid" if it["label"] else "invalid",
        }
        for it in train_items(seed, **fields)[:n]
    ]


def teacher(item: dict, direct: bool = False) -> str:
    """The oracle's steps as a ``<think>`` trace, then the verdict
    (:func:`tasks.causal_nli.traces.trace_for_input`); ``direct``: the verdict alone."""
    return trace_for_input(item["input"], direct=direct)
