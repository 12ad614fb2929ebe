"""ORPO (trl's experimental ORPOTrainer) as a bench method: dpo's pairs, one odds-ratio loss,
no reference model. It trains in a grid on a tiny random model from its config file, its
trainer file and its METHODS line alone; the manifest and the train record say so."""

from __future__ import annotations

import math

import pytest
import yaml
from test_trainer import FAST, lora_b_norms, read_train_rows

from harness.api import run_grid
from harness.runner import stage_dir
from harness.status import record_file
from leaderboards.record import load_record
from trainers.manifest import read_manifest

BETA = 0.5  # not trl's default 0.1: the logged loss shows which beta trained
STEP = {
    **FAST,
    "max_steps": 2,
    "beta": BETA,
    "n_prompts": 4,
    "samples_per_prompt": 2,
    "sample_max_new_tokens": 6,
}


def test_orpo_trains_in_a_grid_on_verifier_pairs_and_records_it(tmp_path, tiny_llama):
    grid = {
        "name": "orpo-test",
        "models": ["tiny-random-llama"],
        "recipes": [["orpo"]],
        "steps": {"orpo": STEP},
        "tasks": ["math_arith"],
        "eval": {"limit": 2},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    results = tmp_path / "results"
    plan, outcome = run_grid(str(path), results=results, kind="train")
    assert {o.status for o in outcome.values()} == {"done"}, outcome
    (cell,) = plan.expansion.train
    out = stage_dir(results, cell.key)

    m = read_manifest(out)
    assert (m.method, m.mode, m.adapter, m.steps) == ("orpo", "lora", "adapter", 2)
    assert len(m.losses) == 2 and all(math.isfinite(x) for x in m.losses)
    # a random model is never right: every prompt pairs the teacher's trace against a sample
    assert m.data["rows"] == 4 and m.data["source"].startswith("pairs(math verifier")
    assert len(read_train_rows(out)) == 4
    assert m.plan["method"] == "orpo" and m.planned_memory_gb > 0
    norms = lora_b_norms(out / "adapter")
    assert norms and all(n > 0 for n in norms.values())  # peft initialises every B at zero

    # trl's ORPO loss with this config's beta: the chosen NLL minus beta × mean log σ(log odds)
    import json

    logs = [r for r in json.loads((out / "log_history.json").read_text()) if "loss" in r]
    assert len(logs) == 2
    for r in logs:
        assert r["loss"] == pytest.approx(r["nll_loss"] - BETA * r["log_odds_ratio"], abs=1e-4)
        assert r["log_odds_ratio"] < 0  # log σ(x) < 0 for every x

    record = load_record(record_file(results, "train", cell.key))
    assert (record.kind, record.stage, record.recipe) == ("train", "orpo", ["orpo"])
    assert record.checkpoint == str(out) and record.train.steps == 2
    assert record.method_configs["orpo"]["method"] == "orpo"
    assert record.method_configs["orpo"]["beta"] == BETA
    # keyed as the config class says: its VERSION, and verifier versions (VERIFIER_DRIVEN)
    assert (record.inputs["method"], record.inputs["method_version"]) == ("orpo", "1")
    assert record.inputs["verifiers"]["math"]


def test_orpo_plans_two_sequences_a_row_and_no_reference_model():
    from harness.zoo import planner_facts
    from trainers.planner import plan

    facts = planner_facts("qwen2.5-7b-instruct")
    orpo = plan(facts, "orpo", "h100", seq_len=2048, mode="full", effective_batch=8)
    dpo = plan(facts, "dpo", "h100", seq_len=2048, mode="full", effective_batch=8)
    sft = plan(facts, "sft", "h100", seq_len=2048, mode="full", effective_batch=8)
    # chosen and rejected in one forward, as dpo; full dpo adds a frozen copy of the weights
    assert orpo.activations_per_sample_gb == dpo.activations_per_sample_gb
    assert orpo.activations_per_sample_gb > sft.activations_per_sample_gb
    assert orpo.extra_gb == 0 and dpo.extra_gb == pytest.approx(orpo.weights_gb)
