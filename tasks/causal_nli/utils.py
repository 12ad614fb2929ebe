"""lm-eval hooks of causal_nli (``!function utils.*`` in the YAMLs of this folder).

lm-eval imports this file by path, so it imports the task through the installed
``tasks`` package. Dataset loaders receive the task's ``metadata`` (plus lm-eval's
runtime metadata, e.g. ``pretrained``) as keyword arguments and ignore what they do not use.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from bench_core.offline import hub_offline
from tasks.causal_nli.check import read_rows
from tasks.causal_nli.generator import generate
from tasks.causal_nli.language import ParseError, parse_input
from tasks.causal_nli.variants import paraphrased_rows, renamed_rows
from tasks.causal_nli.verifier import f1_valid, normalize_label, verify
from tasks.scoring import score_once

_verify = score_once(verify)  # process_results and sample_fields see the same samples

__all__ = [
    "load_generated",
    "load_corr2cause",
    "load_renamed",
    "load_paraphrased",
    "variant_docs",
    "to_doc",
    "doc_to_text",
    "doc_to_target",
    "process_results",
    "sample_fields",
    "f1_valid",
]

HUB_DATASET = "causal-nlp/corr2cause"
FILE_ENV = "BENCH_CORR2CAUSE_FILE"
PROMPT = (
    "Premise: {premise}\n"
    "Hypothesis: {hypothesis}\n\n"
    "The premise lists every statistical relation among the variables. "
    "Does the hypothesis necessarily follow from it? "
    "Answer with one word: valid or invalid."
)


def to_doc(row: dict[str, Any], index: int) -> dict[str, Any]:
    """A released or generated row as an lm-eval doc; ``kind``/``num_variables`` ride along."""
    text = str(row["input"])
    head, _, hypothesis = text.rpartition("Hypothesis:")
    try:
        premise, hyp = parse_input(text)
        kind, n = hyp.kind, len(premise.variables)
    except ParseError:  # still evaluable; the breakdown files it under its template or "unknown"
        kind, n = str(row.get("template") or "unknown"), int(row.get("num_variables") or 0)
    return {
        "id": str(row.get("id") or f"row-{index}"),
        "input": text,
        "premise": head.strip().removeprefix("Premise:").strip(),
        "hypothesis": hypothesis.strip(),
        "label": normalize_label(row["label"]),
        "kind": kind,
        "num_variables": n,
    }


@lru_cache(maxsize=8)
def _generated(
    n_items: int, seed: int, sizes: tuple[int, ...] = (2, 3, 4, 5, 6)
) -> tuple[dict[str, Any], ...]:
    rows = generate(n_items, seed, num_variables=sizes)
    return tuple(to_doc(r, k) for k, r in enumerate(rows))


def _sizes(value: Any) -> tuple[int, ...]:
    """``num_variables`` metadata: a list, or a comma-separated string from the command line."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(sorted({int(v) for v in items}))


def _splits(test: list[dict[str, Any]], fewshot_seed: int, n_fewshot: int) -> dict[str, Any]:
    from datasets import Dataset

    seen = {d["input"] for d in test}  # few-shot examples never repeat a test item
    train = [d for d in _generated(n_fewshot, fewshot_seed) if d["input"] not in seen]
    return {"test": Dataset.from_list(list(test)), "train": Dataset.from_list(train)}


def load_generated(
    data_seed: int = 1234,
    n_items: int = 240,
    num_variables: Any = (2, 3, 4, 5, 6),
    fewshot_seed: int = 4321,
    n_fewshot_items: int = 24,
    **_: Any,
) -> dict[str, Any]:
    """The default test set: ``generate(n_items, data_seed)``, balanced over kinds and N."""
    test = list(_generated(int(n_items), int(data_seed), _sizes(num_variables)))
    return _splits(test, int(fewshot_seed), int(n_fewshot_items))


def variant_docs(
    variant: str, n_items: int, seed: int, num_variables: Any, names: str = "mixed"
) -> list[dict[str, Any]]:
    """Generated items under a perturbation (``renamed`` or ``paraphrased``, see
    :mod:`tasks.causal_nli.variants`): the same problems as ``generate(n_items, seed)``,
    asked differently. ``kind`` stays the generator's template, so breakdowns pair up."""
    rows = generate(int(n_items), int(seed), num_variables=_sizes(num_variables))
    if variant == "renamed":
        rows = renamed_rows(rows, names, int(seed))
    elif variant == "paraphrased":
        rows = paraphrased_rows(rows)
    else:
        raise ValueError(f"causal_nli variant {variant!r}: use renamed or paraphrased")
    return [{**to_doc(r, k), "kind": r["template"]} for k, r in enumerate(rows)]


def _variant_splits(variant: str, meta: dict[str, Any]) -> dict[str, Any]:
    from datasets import Dataset

    sizes, names = meta.get("num_variables", (2, 3, 4, 5, 6)), str(meta.get("names", "mixed"))
    test = variant_docs(
        variant, meta.get("n_items", 240), meta.get("data_seed", 1234), sizes, names
    )
    seen = {d["input"] for d in test}
    shots = variant_docs(
        variant,
        meta.get("n_fewshot_items", 24),
        meta.get("fewshot_seed", 4321),
        (2, 3, 4, 5, 6),
        names,
    )
    return {
        "test": Dataset.from_list(test),
        "train": Dataset.from_list([d for d in shots if d["input"] not in seen]),
    }


def load_renamed(**metadata: Any) -> dict[str, Any]:
    """causal_nli's items with the variables renamed (``names``: letters, words or mixed)."""
    return _variant_splits("renamed", metadata)


def load_paraphrased(**metadata: Any) -> dict[str, Any]:
    """causal_nli's items with the hypotheses in the paraphrased wording."""
    return _variant_splits("paraphrased", metadata)


def load_corr2cause(
    split: str = "test", fewshot_seed: int = 4321, n_fewshot_items: int = 24, **_: Any
) -> dict[str, Any]:
    """Real Corr2Cause rows: the file named by $BENCH_CORR2CAUSE_FILE, else the data mirror's
    ``causal-nlp/corr2cause/{split}.jsonl``, else the hub's ``{split}.csv`` (train, dev or test)
    when online."""
    from bench_core.mirror import mirror_rows

    if path := os.environ.get(FILE_ENV):
        rows = read_rows(path)
    elif (mirrored := mirror_rows(HUB_DATASET, None, split)) is not None:
        rows = mirrored
    elif not hub_offline(datasets=True):
        import datasets

        # name the one CSV: the repo's train.csv alone is ~750 MB
        files = {"data": f"{split}.csv"}
        rows = list(datasets.load_dataset(HUB_DATASET, data_files=files, split="data"))
    else:
        raise ValueError(
            f"causal_nli_corr2cause: no data; set {FILE_ENV}=/path/to/corr2cause.csv "
            f"(columns input,label), put {HUB_DATASET}/{split}.jsonl in the data mirror, "
            "or unset HF_HUB_OFFLINE to read the hub dataset"
        )
    test = [to_doc(r, k) for k, r in enumerate(rows)]
    return _splits(test, int(fewshot_seed), int(n_fewshot_items))


def doc_to_text(doc: dict[str, Any]) -> str:
    return PROMPT.format(premise=doc["premise"], hypothesis=doc["hypothesis"])


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc["label"]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """``acc`` = the verifier's score; ``f1`` = (gold, pred) with pred -1 when unparseable."""
    score = _verify(results[0], doc["label"])
    gold = int(doc["label"] == "valid")
    pred = {"valid": 1, "invalid": 0}.get(score.answer or "", -1)
    return {"acc": score.value, "f1": (gold, pred)}


def sample_fields(doc: dict[str, Any], completion: str) -> dict[str, Any]:
    """Per-sample row fields for the harness: the parsed verdict and whether it was right."""
    score = _verify(completion, doc["label"])
    return {"answer": score.answer, "correct": score.value == 1.0, "score": score.value}
