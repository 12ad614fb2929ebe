"""The math and think_quality tasks as lm-eval sees them (``tasks/`` as include_path)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tasks
from tasks.math import verify as math_verify
from tasks.think_quality import score as think_score

INCLUDE_PATH = str(tasks.TASKS_DIR)
OUR_NAMES = (
    "math",
    "math_gsm8k",
    "math_arith",
    "think_quality",
    "think_quality_math",
    "think_quality_causal",
)


@pytest.fixture
def local_data(tmp_path, monkeypatch):
    """A data folder whose GSM8K splits are the 19-row fixture slice."""
    rows = (Path(__file__).parent / "fixtures" / "math" / "gsm8k_test_slice.jsonl").read_text()
    for split in ("train", "test"):
        (tmp_path / f"gsm8k_{split}.jsonl").write_text(rows)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    return tmp_path


def _manager():
    from lm_eval.tasks import TaskManager

    # include_defaults=False: indexing lm-eval's ~14k built-in YAMLs costs ~20 s.
    return TaskManager(include_path=INCLUDE_PATH, include_defaults=False)


def test_tasks_are_registered_from_the_include_path(local_data):
    manager = _manager()
    assert {"math", "math_gsm8k", "math_arith", "think_quality", "think_quality_math"} <= set(
        manager.all_tasks
    )
    assert {"math", "think_quality"} <= set(manager.all_groups)
    loaded = manager.load(["math"])
    assert loaded["group_map"] == {"math": ["math_gsm8k", "math_arith"]}
    gsm8k, arith = loaded["tasks"]["math_gsm8k"], loaded["tasks"]["math_arith"]
    assert gsm8k.config.metadata["version"] == 1.0 and arith.config.metadata["version"] == 1.0
    assert len(gsm8k.eval_docs) == 19
    docs = list(arith.eval_docs)
    assert len(docs) == 500 and [d["level"] for d in docs[:5]] == [1, 2, 3, 4, 5]
    doc = docs[3]
    assert arith.doc_to_text(doc).startswith(f"Question: {doc['question']}\n")
    assert arith.doc_to_target(doc).endswith(f"The answer is {doc['reference']}.")
    # process_results is the verifier
    assert arith.process_results(doc, [f"The answer is {doc['reference']}."]) == {
        "exact_match": 1.0
    }
    assert arith.process_results(doc, ["The answer is -1."]) == {"exact_match": 0.0}


def test_gsm8k_docs_come_from_local_files(local_data):
    from tasks.math import utils

    # lm-eval passes task metadata and model args as keywords: they are ignored
    dataset = utils.load_gsm8k_docs(version=1.0, pretrained="ignored")
    assert {name: len(split) for name, split in dataset.items()} == {"test": 19, "train": 19}
    row = dataset["test"][17]
    assert row["reference"] == "114200" and row["target"].endswith("The answer is 114200.")
    assert "<<" not in row["target"] and "####" in row["answer"]


def test_think_quality_math_shares_the_gsm8k_docs(local_data):
    manager = _manager()
    task = manager.load(["think_quality_math"])["tasks"]["think_quality_math"]
    assert "<think>" in task.config.description
    assert task.config.generation_kwargs["max_gen_toks"] == 512
    doc = next(iter(task.eval_docs))
    good = f"<think>\nStep 1: read the problem\nStep 2: compute the final result\n</think>\nThe answer is {doc['reference']}."
    assert task.process_results(doc, [good]) == {"composite": 1.0, "format_ok": 1.0, "correct": 1.0}


def test_sample_fields_give_the_harness_answer_and_correctness():
    from tasks.math import utils as math_utils
    from tasks.think_quality import utils as think_utils

    doc = math_utils.load_arith_docs(seed=1, n_per_level=1)["test"][0]
    assert doc["source"] == "arith"
    right = f"The answer is {doc['reference']}."
    assert math_utils.sample_fields(doc, right) == {
        "answer": doc["reference"],
        "correct": True,
        "score": 1.0,
    }
    assert math_utils.sample_fields(doc, "no idea") == {
        "answer": None,
        "correct": False,
        "score": 0.0,
    }
    # think_quality: correct is the answer's correctness, although the composite (its score) is 0.5
    assert think_utils.sample_fields(doc, right) == {
        "answer": doc["reference"],
        "correct": True,
        "score": 0.5,
    }


@pytest.mark.slow  # reads lm-eval's ~14k built-in YAMLs
def test_names_do_not_collide_with_lm_eval_builtins():
    import lm_eval.tasks

    builtin = Path(lm_eval.tasks.__file__).parent
    pattern = re.compile(
        rf"^\s*(?:task|group|tag|-)\s*:?\s*['\"]?({'|'.join(OUR_NAMES)})['\"]?\s*$", re.M
    )
    clashes = [
        (p, m.group(1))
        for p in builtin.rglob("*.yaml")
        for m in pattern.finditer(p.read_text(errors="ignore"))
    ]
    assert clashes == []


def _bundled_model() -> Path:
    try:
        from harness.zoo import materialize

        return materialize("smollm2-135m-instruct")
    except Exception:  # the zoo not there yet: the converted copy of the preamble
        return Path("/tmp/smol/out")


HAVE_CAUSAL = (tasks.TASKS_DIR / "causal_nli" / "causal_nli.yaml").is_file()


def _evaluate(lm_eval, model: Path) -> dict:
    return lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model},dtype=float32",
        # the think_quality group once causal_nli is there, its math half until then
        tasks=["math", "think_quality" if HAVE_CAUSAL else "think_quality_math"],
        task_manager=_manager(),
        apply_chat_template=True,
        limit=2,
        log_samples=True,
        gen_kwargs={"max_gen_toks": 32},
        batch_size=8,
        device="cpu",
    )


def _think(field: str, task: str, reference_field: str):
    return lambda c, d: float(getattr(think_score(c, d[reference_field], task), field))


@pytest.mark.slow
def test_real_lm_eval_run_metrics_equal_the_verifier(local_data):
    import lm_eval
    import torch

    model = _bundled_model()
    if not (model / "config.json").is_file():
        pytest.skip(f"bundled model not found at {model}")
    # One thread: on a shared 2-core box two OpenMP threads spin and run ~5x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = _evaluate(lm_eval, model)
    finally:
        torch.set_num_threads(threads)
    results, samples = out["results"], out["samples"]
    think_metrics = ("composite", "format_ok", "correct")
    checks = {
        "math_gsm8k": {"exact_match": lambda c, d: math_verify(c, d["reference"]).value},
        "math_arith": {"exact_match": lambda c, d: math_verify(c, d["reference"]).value},
        "think_quality_math": {m: _think(m, "math", "reference") for m in think_metrics},
    }
    if HAVE_CAUSAL:
        checks["think_quality_causal"] = {
            m: _think(m, "causal_nli", "label") for m in think_metrics
        }
    for task, metrics in checks.items():
        rows = samples[task]
        assert len(rows) == 2
        for metric, rescore in metrics.items():
            value = results[task][f"{metric},none"]
            assert 0.0 <= value <= 1.0
            expected = sum(rescore(r["filtered_resps"][0], r["doc"]) for r in rows) / len(rows)
            assert value == pytest.approx(expected), (task, metric)
    assert [r["doc"]["level"] for r in samples["math_arith"]] == [1, 2]  # metadata kept per sample
    groups = {"math": ("math_gsm8k", "math_arith", "exact_match")}
    if HAVE_CAUSAL:
        groups["think_quality"] = ("think_quality_math", "think_quality_causal", "composite")
    for group, (a, b, metric) in groups.items():
        # equal sizes (limit=2): the size-weighted group mean is the plain mean
        expected = (results[a][f"{metric},none"] + results[b][f"{metric},none"]) / 2
        assert results[group][f"{metric},none"] == pytest.approx(expected)
