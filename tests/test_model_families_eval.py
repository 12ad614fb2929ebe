"""One eval cell per model family quirk, on tiny offline models: how each is prompted, sampled,
bounded and parsed (the training side is in test_model_families.py)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from harness.api import eval_model


def rows(results, task) -> list[dict]:
    return pq.read_table(results / (task.repeats_file or task.samples_file)).to_pylist()


def prompt_text(row: dict) -> str:
    return json.loads(row["prompt"])[0][0]  # lm-eval's arguments: [(context, generation kwargs)]


@pytest.mark.slow
def test_r1_style_model_samples_as_its_authors_say_and_parses_reasoning_from_the_prompt_opener(
    tmp_path,
):
    record = eval_model(
        model="tiny-random-r1", tasks=["math_arith"], limit=2, max_gen_toks=6, results=tmp_path
    )
    settings = record.inputs["eval"]
    assert (settings["temperature"], settings["top_p"], settings["repeats"]) == (0.6, 0.95, 4)
    assert settings["apply_chat_template"] is True and settings["max_model_len"] == 2048
    task = record.tasks[0]
    samples = rows(tmp_path, task)
    assert len(samples) == 2 * 4  # every sample of every prompt is kept
    for r in samples:
        assert (
            prompt_text(r).rstrip().endswith("<|Assistant|><think>")
        )  # the template opened the block
        assert r["completion"].startswith("<think>")  # ... so the completion is read as reasoning
        # a random model never closes its reasoning within 6 tokens: cut off, so no answer at all
        assert r["truncated"] and r["answer"] is None and r["score"] == 0.0
    assert task.truncated == 1.0 and task.primary_metric == "exact_match@mean4"


@pytest.mark.slow
def test_no_template_model_gets_plain_prompts_and_its_own_context(tmp_path):
    record = eval_model(
        model="tiny-random-gpt2", tasks=["math_arith"], limit=2, max_gen_toks=4, results=tmp_path
    )
    settings = record.inputs["eval"]
    assert settings["apply_chat_template"] is False and settings["max_model_len"] == 1024
    (task,) = record.tasks
    assert task.chat_template is False
    for r in rows(tmp_path, task):
        text = prompt_text(r)
        assert (
            text.startswith("Question: ")
            and "<|im_start|>" not in text
            and text.rstrip().endswith("Answer:")
        )


@pytest.mark.slow
def test_base_model_gets_plain_few_shot_prompts_despite_a_template_in_its_tokenizer(tmp_path):
    record = eval_model(
        model="tiny-random-base",
        tasks=["math_arith"],
        limit=1,
        num_fewshot=2,
        max_gen_toks=4,
        results=tmp_path,
    )
    (task,) = record.tasks
    assert record.inputs["eval"]["apply_chat_template"] is False and task.n_shot == 2
    (r,) = rows(tmp_path, task)
    text = prompt_text(r)
    assert (
        "<|im_start|>" not in text and text.count("Question: ") == 3
    )  # two shots, then the question
    assert (
        text.count("\nThe answer is ") == 2
    )  # the shots' worked answers (the instruction quotes it too)
