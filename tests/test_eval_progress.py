"""The live view's request progress during an eval: the wrappers keep each model's own call style.

lm-eval's vLLM model calls ``self._model_generate(requests=..., generate=True, sampling_params=...)``
with keywords; the HF model calls ``self._model_generate(context, max_length, stop, ...)``
positionally. The stand-ins below take the vLLM form keyword-only, so a wrapper that renames or
reorders a parameter fails here as it fails a real ``--backend vllm`` eval.
"""

import inspect

import pytest
from lm_eval.api.model import LM

import harness._live as live
import harness.evaluate as evaluate
from harness.api import eval_model


class KeywordLM(LM):
    """A stand-in for lm-eval's VLLM: generate_until answers in batches of 2 through a
    keyword-only ``_model_generate`` (which also serves log-likelihoods, ``generate=False``)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _model_generate(self, *, requests, generate=False, sampling_params=None):
        self.calls.append((len(requests), generate, sampling_params))
        return ["4" for _ in requests]

    def generate_until(self, requests, disable_tqdm=False):
        contexts = [req.args[0] for req in requests]
        outs = []
        for i in range(0, len(contexts), 2):
            batch = contexts[i : i + 2]
            outs += self._model_generate(requests=batch, generate=True, sampling_params="greedy")
        return outs

    def loglikelihood(self, requests, disable_tqdm=False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


class PositionalLM(KeywordLM):
    """The HF form: the batch is the first positional argument."""

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        self.calls.append((len(context), max_length, stop))
        return ["4" for _ in context]

    def generate_until(self, requests, disable_tqdm=False):
        contexts = [req.args[0] for req in requests]
        outs = []
        for i in range(0, len(contexts), 2):
            outs += self._model_generate(contexts[i : i + 2], 16, ["\n"], do_sample=False)
        return outs


@pytest.mark.parametrize("stand_in", [KeywordLM, PositionalLM])
def test_an_eval_reports_progress_through_either_call_style(
    stand_in, monkeypatch, tmp_path, tiny_llama
):
    lm = stand_in()
    monkeypatch.setattr(evaluate, "build_lm", lambda req: (lm, "float32"))
    phases = []
    monkeypatch.setattr(live, "_sink", phases.append)
    rec = eval_model(
        model="tiny-random-llama",
        tasks=["math_arith"],
        limit=5,
        chat_template=False,
        results=tmp_path,
    )
    (task,) = rec.tasks
    assert task.metrics["exact_match"].n == 5
    assert (tmp_path / task.samples_file).exists()  # the record and its samples were written
    # every batch reached the model with its own arguments (a 5-request call: 2 + 2 + 1)
    assert [c[0] for c in lm.calls] == [2, 2, 1]
    generating = [p for p in phases if p.startswith("generating")]
    assert generating == [
        "generating 0/5 requests",
        "generating 2/5 requests",
        "generating 4/5 requests",
        "generating 5/5 requests",
        "generating 5/5 requests",
    ]


def test_the_wrapped_methods_keep_their_signatures(monkeypatch):
    lm = KeywordLM()
    before = inspect.signature(lm._model_generate), inspect.signature(lm.generate_until)
    evaluate._keep_prompt_opener(lm)
    evaluate._report_requests(lm)
    assert inspect.signature(lm._model_generate) == before[0]
    assert lm._model_generate.__name__ == "_model_generate"
    phases = []
    monkeypatch.setattr(live, "_sink", phases.append)
    # a log-likelihood call outside generate_until is not generation progress
    assert lm._model_generate(requests=[[1, 2]], generate=False) == ["4"]
    assert phases == [] and lm.calls == [(1, False, None)]
