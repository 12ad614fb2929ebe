"""causal_nli through real lm-eval with the bundled SmolLM2-135M-Instruct (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.causal_nli import KINDS, breakdown, f1_valid, verify

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lm_eval_metrics_are_the_mean_of_verifier_scores(bundled_model):
    import lm_eval
    from lm_eval.tasks import TaskManager

    # 2-3 variable problems keep prompts short enough for a CPU run; indexing only
    # bench's tasks (not lm-eval's ~14k built-in YAMLs) saves most of the start-up
    manager = TaskManager(
        include_path=str(REPO / "tasks"),
        include_defaults=False,
        metadata={"num_variables": "2,3", "n_items": 12},
    )
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={bundled_model},dtype=float32,device=cpu",
        tasks=["causal_nli"],
        task_manager=manager,
        apply_chat_template=True,
        limit=4,
        batch_size=4,
        gen_kwargs={"max_gen_toks": 12},
        log_samples=True,
        bootstrap_iters=0,
    )
    metrics = out["results"]["causal_nli"]
    samples = out["samples"]["causal_nli"]
    assert len(samples) == 4 and out["versions"]["causal_nli"] == 1.0
    scores = [verify(s["filtered_resps"][0], s["doc"]["label"]) for s in samples]
    assert [s["acc"] for s in samples] == [x.value for x in scores]
    assert 0.0 <= metrics["acc,none"] <= 1.0
    assert metrics["acc,none"] == pytest.approx(sum(x.value for x in scores) / 4)
    pairs = [
        (int(s["doc"]["label"] == "valid"), {"valid": 1, "invalid": 0}.get(x.answer or "", -1))
        for s, x in zip(samples, scores, strict=True)
    ]
    assert 0.0 <= metrics["f1,none"] <= 1.0
    assert metrics["f1,none"] == pytest.approx(f1_valid(pairs))
    for s in samples:  # per-sample rows keep what the breakdowns group by
        assert s["doc"]["kind"] in KINDS and s["doc"]["num_variables"] in (2, 3)
    overall = breakdown(samples)["all"]
    assert overall["n"] == 4
    assert overall["acc"] == pytest.approx(metrics["acc,none"])
    assert overall["f1"] == pytest.approx(metrics["f1,none"])
