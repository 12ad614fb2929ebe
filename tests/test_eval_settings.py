"""Eval settings resolved per model (zoo -> grid -> CLI), reasoning parsed as emitted, repeats kept."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from harness.evaluate import _keep_prompt_opener, _opens_thinking
from harness.settings import EvalSettings, resolve_eval
from harness.zoo import get_model
from tasks.math import verify as math_verify
from tasks.scoring import score_once


def test_the_zoo_decides_template_budget_context_and_sampling():
    instruct, base, r1 = (
        get_model(n)
        for n in ("qwen2.5-1.5b-instruct", "qwen2.5-1.5b", "deepseek-r1-distill-qwen-7b")
    )
    grid = EvalSettings()
    assert resolve_eval(instruct, grid).apply_chat_template is True
    assert resolve_eval(base, grid).apply_chat_template is False  # base models: plain prompts
    plain = resolve_eval(base, grid)
    assert (plain.max_gen_toks, plain.temperature, plain.repeats) == (
        None,
        0.0,
        1,
    )  # the task's own budget
    assert plain.max_model_len == base.context_length
    thinking = resolve_eval(r1, grid)
    assert (thinking.temperature, thinking.top_p, thinking.repeats) == (0.6, 0.95, 4)
    assert thinking.max_gen_toks == 32768 and thinking.max_model_len == r1.context_length
    # a grid may lower the budget and force greedy; the CLI's value wins over the grid's
    lowered = resolve_eval(r1, EvalSettings(max_gen_toks=2048, temperature=0.0))
    assert (lowered.max_gen_toks, lowered.temperature, lowered.repeats) == (2048, 0.0, 1)
    assert lowered.generation_kwargs() == {"max_gen_toks": 2048, "do_sample": False}
    # the budget never exceeds the context (a prompt needs room)
    short = get_model("tiny-random-llama")
    assert (
        resolve_eval(short, EvalSettings(max_gen_toks=10_000)).max_gen_toks
        == short.context_length - 256
    )


def test_an_opener_in_the_prompt_is_put_back_in_front_of_the_completion():
    assert _opens_thinking("<|User|>2+2?<|Assistant|><think>\n")
    assert not _opens_thinking(
        "<think>x</think> now answer"
    )  # closed in the prompt: an answer follows
    assert not _opens_thinking("Question: 2+2?\nAnswer:")

    class FakeLM:
        def generate_until(self, requests, disable_tqdm=False):
            return ["so 4.\n</think>\nThe answer is 4.", "The answer is 5."]

    lm = FakeLM()
    _keep_prompt_opener(lm)
    reqs = [
        SimpleNamespace(args=("<|Assistant|><think>\n", {})),
        SimpleNamespace(args=("Answer:", {})),
    ]
    first, second = lm.generate_until(reqs)
    assert first.startswith("<think>") and second == "The answer is 5."
    # parsed as reasoning up to </think>: the answer is what follows
    assert math_verify(first, "4").value == 1.0
    # cut off inside its reasoning: no answer, even though a number stands in the reasoning
    assert math_verify("<think>\n2+2 is 4, but", "4").value == 0.0


def test_each_sample_is_verified_once_for_metric_and_row():
    calls = []

    def verify(completion, reference):
        calls.append(completion)
        return math_verify(completion, reference)

    once = score_once(verify)
    assert once("The answer is 4.", "4").value == 1.0 and once("The answer is 4.", "4").value == 1.0
    assert calls == ["The answer is 4."]
    assert (
        once("The answer is 4.", "5").value == 0.0 and len(calls) == 2
    )  # another reference: verified


@pytest.mark.slow
def test_repeats_keep_every_sample_and_report_the_mean(tmp_path, tiny_llama):
    from harness.api import eval_model

    record = eval_model(
        model="tiny-random-llama",
        tasks=["math_arith"],
        limit=3,
        max_gen_toks=4,
        repeats=3,
        temperature=1.0,
        results=tmp_path,
    )
    task = record.tasks[0]
    assert task.primary_metric == "exact_match@mean3" and task.metrics["exact_match@mean3"].n == 3
    first = pq.read_table(tmp_path / task.samples_file).to_pylist()
    every = pq.read_table(tmp_path / task.repeats_file).to_pylist()
    assert len(first) == 3 and sorted({r["repeat"] for r in first}) == [0]
    assert len(every) == 9 and sorted(r["repeat"] for r in every) == [0] * 3 + [1] * 3 + [2] * 3
    # a random 2-layer model never stops by itself: every sample runs to its 4-token cap
    assert all(r["gen_tokens"] >= 3 and r["truncated"] for r in every)
    assert task.truncated == 1.0 and task.score_completed is None
    assert json.loads(json.dumps(record.inputs))["eval"]["repeats"] == 3
