"""A thinking model on lm-eval's own tasks: the built-in task scores the text after ``</think>``
(lm-eval's ``think_end_token``), bench's tasks still read the reasoning block, and only the eval
cells where that changes a score get a new key."""

from __future__ import annotations

import json

import pytest
import yaml

import harness.evaluate as evaluate
import harness.keys as keys
import harness.lmeval_tasks as lmeval_tasks
from harness.api import eval_model
from harness.grid import expand, load_grid
from harness.keys import content_key

TOY_GEN = {  # a built-in-style generative task: stops at a blank line, exact match on the answer
    "task": "toy_gen",
    "dataset_path": "json",
    "test_split": "test",
    "output_type": "generate_until",
    "doc_to_text": "Q: {{question}}\nA:",
    "doc_to_target": "{{answer}}",
    "generation_kwargs": {"until": ["\n\n"], "do_sample": False, "max_gen_toks": 64},
    "metric_list": [{"metric": "exact_match"}],
    "metadata": {"version": 1.0},
}
TOY_CHOICE = {  # a built-in-style multiple-choice task: log-likelihoods, nothing generated
    "task": "toy_choice",
    "dataset_path": "json",
    "test_split": "test",
    "output_type": "multiple_choice",
    "doc_to_text": "Q: {{question}}\nA:",
    "doc_to_choice": ["3", "4"],
    "doc_to_target": 1,
    "metric_list": [{"metric": "acc"}],
    "metadata": {"version": 1.0},
}


@pytest.fixture
def toy_builtins(tmp_path, monkeypatch):
    """Two tasks indexed as lm-eval's built-in library (the real one costs a minute to index)."""
    from lm_eval.tasks import TaskManager

    folder = tmp_path / "builtin"
    folder.mkdir()
    data = folder / "test.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"2+2 ({i})", "answer": "4"}) + "\n" for i in range(2))
    )
    for task in (TOY_GEN, TOY_CHOICE):
        cfg = task | {"dataset_kwargs": {"data_files": {"test": str(data)}}}
        (folder / f"{task['task']}.yaml").write_text(yaml.safe_dump(cfg))
    tm = TaskManager(include_path=str(folder), include_defaults=False)
    monkeypatch.setattr(lmeval_tasks, "builtin_index", lambda: dict(tm.task_index))
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "no-mirror"))
    return folder


# Eval cell keys computed on main before built-in tasks stripped a thinking model's reasoning,
# with the key packages pinned below. A payload layout change (KEY_SCHEMA) or a task version bump
# moves them on purpose; nothing else may.
PINNED = {"torch": "2.0", "transformers": "5.0", "lm_eval": "0.4.13"}
MAIN_KEYS = {
    ("tiny-random-llama", ("math_arith", "toy_gen")): "d37264c42aa7bd12",
    ("tiny-random-r1", ("math_arith",)): "67a000897268a2d3",
    ("tiny-random-r1", ("toy_choice",)): "bcc8f4ad3e7abb57",
    ("tiny-random-r1", ("math_arith", "toy_gen")): "9a1b7947620ac258",
}


def _eval_keys(tmp_path, monkeypatch, tasks: list[str]) -> dict[str, dict]:
    monkeypatch.setattr(keys, "package_versions", lambda names: {n: PINNED[n] for n in names})
    path = tmp_path / f"{'-'.join(tasks)}.yaml"
    grid = {"name": "think", "models": ["tiny-random-llama", "tiny-random-r1"], "tasks": tasks}
    path.write_text(yaml.safe_dump(grid | {"eval": {"limit": 2}}))
    return {c.model: c for c in expand(load_grid(str(path))).cells if c.kind == "eval"}


def test_only_a_thinking_model_with_a_generative_builtin_task_gets_a_new_key(
    toy_builtins, tmp_path, monkeypatch
):
    for (model, tasks), main_key in MAIN_KEYS.items():
        cell = _eval_keys(tmp_path, monkeypatch, list(tasks))[model]
        settings = cell.inputs["eval"]
        if (model, tasks) != ("tiny-random-r1", ("math_arith", "toy_gen")):
            assert cell.key == main_key, (model, tasks)  # nothing it scores changed
            assert "think_end_token" not in settings and cell.settings.think_end_token is None
            continue
        assert cell.key != main_key and settings["think_end_token"] == "</think>"
        # that one field is the whole difference from main's payload
        as_on_main = cell.inputs | {
            "eval": {k: v for k, v in settings.items() if k != "think_end_token"}
        }
        assert content_key(as_on_main) == main_key


REPLY = "Let me add.\n\n2 and 2 make 4.</think> 4"  # a blank line inside the reasoning


def _scripted(monkeypatch):
    """The real lm-eval HF model on the tiny model, its generation replaced by REPLY: what
    lm-eval makes of a reasoning completion is lm-eval's own code."""
    import torch

    build = evaluate.build_lm

    def build_lm(req):
        lm, dtype = build(req)
        ids = lm.tokenizer(REPLY, add_special_tokens=False, return_tensors="pt").input_ids

        def model_generate(context, max_length, stop, **kwargs):
            return torch.cat([context, ids.expand(len(context), -1).to(context.device)], dim=1)

        lm._model_generate = model_generate
        return lm, dtype

    monkeypatch.setattr(evaluate, "build_lm", build_lm)


def _completions(results, rec) -> dict[str, tuple[str, float]]:
    import pyarrow.parquet as pq

    out = {}
    for t in rec.tasks:
        rows = pq.read_table(results / t.samples_file).to_pylist()
        out[t.name] = (rows[0]["completion"], t.metrics["exact_match"].value)
    return out


def test_a_builtin_task_scores_after_the_reasoning_and_a_bench_task_reads_it(
    toy_builtins, tmp_path, monkeypatch
):
    _scripted(monkeypatch)
    asked = {"tasks": ["math_arith", "toy_gen"], "limit": 2, "temperature": 0.0}
    rec = eval_model(model="tiny-random-r1", results=tmp_path / "r1", **asked)
    seen = _completions(tmp_path / "r1", rec)
    # lm-eval cut the reasoning at </think> before the task's blank-line stop: the answer scores
    assert seen["toy_gen"] == ("4", 1.0)
    # bench's verifier reads the block as emitted, the template's <think> opener put back
    assert seen["math_arith"][0] == "<think>" + REPLY
    tags = {t.name: t.settings for t in rec.tasks}
    assert tags["toy_gen"].endswith(" after </think>") and "think" not in tags["math_arith"]
    assert rec.inputs["eval"]["think_end_token"] == "</think>"
    # a model that does not think gets every completion whole: the stop cuts inside the reasoning
    rec = eval_model(model="tiny-random-llama", results=tmp_path / "llama", **asked)
    seen = _completions(tmp_path / "llama", rec)
    assert seen["toy_gen"] == ("Let me add.", 0.0) and seen["math_arith"][0] == REPLY
