"""Training on causal_nli: the teacher's traces, the causal data source of the trainers, GRPO
with the real causal verifier as reward, and the robustness variants through lm-eval.

Fixtures are built with the project's own generator (the Corr2Cause licence forbids
copying its rows into the project).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from tasks.causal_nli import generate, parse_input, verify
from tasks.causal_nli.language import parse_premise, render_input, render_premise
from tasks.causal_nli.oracle import entailed, equivalence_class
from tasks.causal_nli.traces import trace_for_input
from tasks.causal_nli.utils import load_generated
from trainers import train_stage
from trainers._data import data_identity
from trainers.data import CausalData, source_fields, source_prompts

TEST_INPUTS = {d["input"] for d in load_generated()["test"]}  # causal_nli's own test items

FAST = {"effective_batch": 4, "max_length": 320, "learning_rate": 1e-2, "save_steps": 100}


def causal_items(cfg, seed: int) -> list[dict]:
    """The causal source's training items for ``cfg``'s causal fields."""
    return source_prompts("causal", seed, **source_fields(cfg, "causal"))[1]


# --- the teacher ------------------------------------------------------------------------------


def test_the_teachers_verdict_is_the_oracles_label_on_1000_items():
    rows = generate(1000, seed=77, num_variables=(2, 3, 4, 5))
    traces = [trace_for_input(r["input"]) for r in rows]
    verdicts = [t.rsplit("</think>\n", 1)[1] for t in traces]
    agree = sum((v == "valid") == bool(r["label"]) for v, r in zip(verdicts, rows, strict=True))
    assert agree / len(rows) == 1.0
    # and the task's own verifier reads the verdict out of every trace
    assert all(verify(t, r["label"]).value == 1.0 for t, r in zip(traces, rows, strict=True))
    assert all(t.startswith("<think>\nStep 1: Skeleton: ") for t in traces)
    assert {"valid", "invalid"} == set(verdicts)
    assert trace_for_input(rows[0]["input"], direct=True) == verdicts[0]


def _input(variables, correlations, independences, hypothesis):
    return render_input(render_premise(variables, correlations, independences), hypothesis)


def _steps(trace: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in trace.splitlines() if line.startswith("Step ")]


def test_teacher_on_a_collider_worked_out_by_hand():
    # A ⊥ B, and nothing else independent (in particular A, B dependent given C): the
    # skeleton is A - C - B, C is in no separating set of A and B, so A -> C <- B is a
    # v-structure and the class is that one DAG.
    text = _input(("A", "B", "C"), [("A", "C"), ("B", "C")], [("A", "B", ())], "{h}")
    expected = {
        "A directly causes C.": "valid",
        "C directly causes B.": "invalid",
        "There exists at least one collider (i.e., common effect) of A and B.": "valid",
        "There exists at least one confounder (i.e., common cause) of A and B.": "invalid",
    }
    for hypothesis, verdict in expected.items():
        trace = trace_for_input(text.replace("{h}", hypothesis))
        steps = _steps(trace)
        assert steps[:3] == [
            "Skeleton: A-C, B-C.",
            "V-structures: A -> C <- B.",
            "Markov equivalence class: 1 DAG: {A->C, B->C}.",
        ]
        assert trace.endswith(f"</think>\n{verdict}"), (hypothesis, trace)


def test_teacher_on_a_chain_worked_out_by_hand():
    # A ⊥ C | B only: skeleton A - B - C, B separates A and C, so no v-structure; the
    # class is A->B->C, A<-B<-C and A<-B->C (3 DAGs), which disagree on every direction.
    text = _input(
        ("A", "B", "C"), [("A", "B"), ("A", "C"), ("B", "C")], [("A", "C", ("B",))], "{h}"
    )
    for hypothesis, verdict, holding in (
        ("A directly causes B.", "invalid", 1),  # only in A->B->C
        ("There exists at least one confounder (i.e., common cause) of A and C.", "invalid", 1),
        ("There exists at least one collider (i.e., common effect) of A and C.", "invalid", 0),
    ):
        trace = trace_for_input(text.replace("{h}", hypothesis))
        steps = _steps(trace)
        assert steps[0] == "Skeleton: A-B, B-C." and steps[1] == "V-structures: none."
        assert steps[2].startswith("Markov equivalence class: 3 DAGs: ")
        assert f"holds in {holding} of 3 DAGs" in steps[3]
        assert trace.endswith(f"\n{verdict}")


def test_teacher_follows_an_orientation_forced_downstream_of_a_collider():
    # A -> C <- B, C -> D, worked out by hand: A ⊥ B (dependent given C or D, C's
    # descendant); D ⊥ A and D ⊥ B given any set holding C. The v-structure orients
    # A -> C <- B, and C - D must then point away from C (C <- D would be a second
    # collider at C, with A and D non-adjacent): one DAG, in which C causes D directly.
    independences = [
        ("A", "B", ()),
        ("A", "D", ("C",)),
        ("A", "D", ("B", "C")),
        ("B", "D", ("C",)),
        ("B", "D", ("A", "C")),
    ]
    corr = [("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]
    text = _input(("A", "B", "C", "D"), corr, independences, "{h}")
    premise = parse_premise(text.split("\nHypothesis:")[0].removeprefix("Premise: "))
    assert equivalence_class(premise) == (frozenset({("A", "C"), ("B", "C"), ("C", "D")}),)
    for hypothesis, verdict in (
        ("C directly causes D.", "valid"),
        ("A causes something else which causes D.", "valid"),
        ("A directly causes D.", "invalid"),
    ):
        trace = trace_for_input(text.replace("{h}", hypothesis))
        assert _steps(trace)[:2] == ["Skeleton: A-C, B-C, C-D.", "V-structures: A -> C <- B."]
        assert trace.endswith(f"\n{verdict}"), trace


# --- the causal data source ---------------------------------------------------------------


def write_corr2cause(path: Path, rows: list[dict]) -> Path:
    """The released layout: input (two lines: premise, hypothesis), label, num_variables, template."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["input", "label", "num_variables", "template"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in writer.fieldnames} for r in rows)
    return path


def test_corr2cause_csv_rows_are_read_filtered_and_balanced(tmp_path):
    rows = generate(60, seed=5, num_variables=(3, 4))
    path = write_corr2cause(tmp_path / "c2c.csv", rows)
    assert "\nHypothesis:" in path.read_text()  # each input spans two lines, quoted
    cfg = CausalData(causal_file=str(path), causal_n=1000)
    items = causal_items(cfg, seed=0)
    kept = [r["input"] for r in rows if r["input"] not in TEST_INPUTS]
    assert len(kept) < len(rows)  # a file's rows that are causal_nli test items are dropped too
    assert sorted(r["input"] for r in items) == sorted(kept)
    by_input = {r["input"]: r for r in rows}
    assert all(r["label"] == by_input[r["input"]]["label"] for r in items)
    # balanced: valid and invalid alternate while both last
    assert [r["label"] for r in items[:20]] == [1, 0] * 10
    only = causal_items(
        CausalData(causal_file=str(path), num_variables="4", kinds="parent,child"), 0
    )
    assert only and {(r["num_variables"], r["template"]) for r in only} <= {
        (4, "parent"),
        (4, "child"),
    }
    assert len(causal_items(CausalData(causal_file=str(path), causal_n=7), 0)) == 7


def test_bad_causal_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nx,1\n")
    cases = [
        (CausalData(causal_file=str(bad)), "missing column 'input'"),
        (CausalData(causal_file="hub:causal-nlp/corr2cause"), "HF_HUB_OFFLINE is set"),
        (CausalData(num_variables="3,x"), "num_variables '3,x'"),
        (CausalData(kinds="parent,cousin"), "kinds 'cousin' unknown"),
        (CausalData(causal_n=1000, num_variables="3"), "causal_n 1000: only 3.. distinct items"),
    ]
    for cfg, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            causal_items(cfg, seed=0)
        assert "\n" not in str(e.value)
    broken = write_corr2cause(
        tmp_path / "broken.csv",
        [
            {
                "input": "Premise: nonsense\nHypothesis: A causes B.",
                "label": 1,
                "num_variables": 2,
                "template": "parent",
            }
        ],
    )
    with pytest.raises(ValueError, match=r"broken.csv: row 0: not a Corr2Cause premise"):
        causal_items(CausalData(causal_file=str(broken)), seed=0)
    with pytest.raises(ValueError, match="item_seed 1234 generates the causal_nli test items"):
        causal_items(CausalData(), seed=1234)


def test_generated_training_items_never_repeat_a_test_item():
    test = TEST_INPUTS
    raw = generate(300, seed=3, num_variables=(3,))  # nearly every distinct 3-variable problem
    items = causal_items(CausalData(causal_n=300, num_variables="3"), seed=3)
    assert len(items) < len(raw) and not test & {r["input"] for r in items}


def test_data_identity_changes_with_every_causal_field(tmp_path):
    from trainers.distill import DistillConfig
    from trainers.dpo import DPOConfig
    from trainers.grpo import GRPOConfig, prompt_rows
    from trainers.sft import SFTConfig, load_sft_rows

    causal = {f.name for f in dataclasses.fields(CausalData)}
    for cls in (SFTConfig, DistillConfig, DPOConfig, GRPOConfig):
        assert causal | {"sources", "item_seed"} <= {f.name for f in dataclasses.fields(cls)}
    path = write_corr2cause(tmp_path / "c2c.csv", generate(40, seed=5, num_variables=(3,)))
    base = {"sources": "causal", "causal_n": 24, "num_variables": "3", "direct_fraction": 0.5}
    changes = {
        "causal_file": str(path),
        "causal_n": 20,
        "num_variables": "3,4",
        "kinds": "parent,child,has_collider",
        "label_balance": False,
        "item_seed": 1,
        "direct_fraction": 0.0,
    }
    assert set(changes) == causal | {"item_seed", "direct_fraction"}

    def identity(cls, loader, **fields):
        return json.dumps(data_identity(*loader(cls(**{**base, **fields}))), sort_keys=True)

    seen = {identity(SFTConfig, load_sft_rows)}
    for field, value in changes.items():
        seen.add(identity(SFTConfig, load_sft_rows, **{field: value}))
    assert len(seen) == 1 + len(changes)
    # grpo prompts too (no targets there, so direct_fraction is not a grpo field)
    grpo = {**base, "reward": "causal_nli", "n_prompts": 12}
    grpo.pop("direct_fraction")
    seen = {json.dumps(data_identity(*prompt_rows(GRPOConfig(**grpo))))}
    for field, value in changes.items():
        if field != "direct_fraction":
            seen.add(json.dumps(data_identity(*prompt_rows(GRPOConfig(**{**grpo, field: value})))))
    assert len(seen) == len(changes)


def test_training_prompts_are_the_eval_prompt_of_causal_nli():
    from tasks.causal_nli.utils import doc_to_text, to_doc
    from trainers.sft import SFTConfig, load_sft_rows

    rows, source = load_sft_rows(SFTConfig(sources="causal", causal_n=12, num_variables="3"))
    items = causal_items(SFTConfig(sources="causal", causal_n=12, num_variables="3"), seed=0)
    assert [r["prompt"] for r in rows] == [
        [{"role": "user", "content": doc_to_text(to_doc(it, 0))}] for it in items
    ]
    assert [r["completion"][0]["content"] for r in rows] == [
        "valid" if it["label"] else "invalid" for it in items
    ]  # sft's default: the verdict alone
    assert source.startswith("causal(causal_n=12,num_variables=3,")


def test_distill_mixes_teacher_traces_and_bare_verdicts():
    from trainers.distill import DistillConfig, distill_rows

    cfg = DistillConfig(sources="causal", causal_n=200, num_variables="3,4", direct_fraction=0.5)
    rows, source = distill_rows(cfg)
    items = causal_items(cfg, seed=0)
    answers = [r["completion"][0]["content"] for r in rows]
    traced = [a for a in answers if a.startswith("<think>")]
    assert 0.3 < len(traced) / len(rows) < 0.7 and source.endswith(",direct_fraction=0.5,seed=0)")
    for answer, item in zip(answers, items, strict=True):
        assert answer in (
            trace_for_input(item["input"]),
            trace_for_input(item["input"], direct=True),
        )
        assert verify(answer, item["label"]).value == 1.0


def test_dpo_pairs_causal_prompts_by_the_causal_verifier(tmp_path, tiny_llama):
    from test_trainer import assert_trained

    m = train_stage(
        "dpo",
        {
            **FAST,
            "sources": "causal",
            "num_variables": "3",
            "causal_n": 40,
            "n_prompts": 4,
            "samples_per_prompt": 2,
            "sample_max_new_tokens": 4,
            "max_steps": 2,
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "dpo",
    )
    assert_trained(m, 2)
    # a random model never writes a verdict: every prompt pairs the teacher's trace against a sample
    assert m.data["rows"] == 4 and m.data["source"].startswith("pairs(causal_nli verifier, causal(")


# --- GRPO with the real causal reward -----------------------------------------------------


def test_grpo_rewards_causal_prompts_with_the_causal_verifier():
    from trainers.grpo import GRPOConfig, prompt_rows, reward_functions

    funcs, weights = reward_functions(GRPOConfig(reward="causal_nli", format_weight=0.25))
    completions = [
        [{"role": "assistant", "content": "<think>\nStep 1: ...\n</think>\nvalid"}],
        [{"role": "assistant", "content": "invalid"}],
        [{"role": "assistant", "content": "I cannot tell."}],
    ]
    assert funcs[0](completions, reference=["valid", "valid", "valid"]) == [1.0, 0.0, 0.0]
    assert funcs[1](completions, reference=["valid"] * 3) == [1.0, 0.0, 0.0]
    assert weights == [1.0, 0.25]
    with pytest.raises(
        ValueError, match="reward causal_nli cannot score sources=arithmetic prompts"
    ):
        prompt_rows(GRPOConfig(reward="causal_nli"))


def _events(stage_dir: Path) -> list[dict]:
    return [e for e in json.loads((stage_dir / "log_history.json").read_text()) if "reward" in e]


def test_sft_then_grpo_with_the_real_causal_reward(tmp_path, tiny_llama):
    from test_trainer import assert_trained, lora_b_norms

    data = {"sources": "causal", "causal_n": 64, "num_variables": "3", "item_seed": 4}
    # verdict-only sft first: a random tiny model never writes valid/invalid, and a reward
    # that is 0 for every rollout gives no advantage and no gradient. Full fine-tuning, as a
    # LoRA on two 64-wide layers with the output head frozen barely moves the loss (10.9 ->
    # 10.3 in 12 steps), and a model that learns the verdict prior (~half valid) samples both
    sft = train_stage(
        "sft",
        {
            **FAST,
            **data,
            "packing": False,
            "max_steps": 12,
            "mode": "full",
            "learning_rate": 3e-2,
            "lr_scheduler_type": "constant",
        },
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "sft",
    )
    assert sft.steps == 12 and sft.final_loss < 0.5 * sft.losses[0]
    grpo = train_stage(
        "grpo",
        {
            **FAST,
            **data,
            "reward": "causal_nli",
            "n_prompts": 16,
            "num_generations": 4,
            "effective_batch": 8,
            "per_device_batch": 8,
            "max_completion_length": 4,
            "temperature": 1.2,
            "max_steps": 3,
        },
        base_model=tiny_llama,
        parent=tmp_path / "sft",
        output_dir=tmp_path / "grpo",
    )
    assert_trained(grpo, 3)
    events = _events(tmp_path / "grpo")
    # the verifier's 0/1 scores differ inside at least one group of 4 rollouts
    assert any(e["frac_reward_zero_std"] < 1.0 for e in events)
    assert any(e["reward_std"] > 0 for e in events)
    assert grpo.data["source"].startswith("causal(causal_n=64,num_variables=3,")
    assert all(n > 0 for n in lora_b_norms(tmp_path / "grpo" / "adapter").values())


# --- robustness variants through lm-eval ----------------------------------------------------


@pytest.fixture(scope="module")
def manager():
    from lm_eval.tasks import TaskManager

    import tasks

    return TaskManager(include_path=str(tasks.TASKS_DIR), include_defaults=False)


def test_variants_are_lm_eval_tasks_with_their_own_versions(manager):
    from harness.taskinfo import task_index

    names = ["causal_nli_renamed", "causal_nli_paraphrased", "causal_nli_more_variables"]
    loaded = manager.load(names)["tasks"]
    base = list(manager.load(["causal_nli"])["tasks"]["causal_nli"].eval_docs)
    for name in names:
        task = loaded[name]
        assert task.config.metadata["version"] == 1.0 and task_index()[name].version == "1.0"
        assert task.config.generation_kwargs["until"] == ["\n\nPremise:"]
        docs = list(task.eval_docs)
        for doc in docs[:40]:  # the oracle reads every variant and agrees with its label
            premise, hypothesis = parse_input(doc["input"])
            assert entailed(premise, hypothesis) == (doc["label"] == "valid")
            assert task.process_results(doc, [doc["label"]])["acc"] == 1.0
    renamed = list(loaded["causal_nli_renamed"].eval_docs)
    paraphrased = list(loaded["causal_nli_paraphrased"].eval_docs)
    assert [d["label"] for d in renamed] == [d["label"] for d in base]  # the same problems
    assert [d["kind"] for d in paraphrased] == [d["kind"] for d in base]
    assert all(" directly causes " not in d["hypothesis"] for d in paraphrased)
    assert {d["num_variables"] for d in loaded["causal_nli_more_variables"].eval_docs} == {7}
    assert max(d["num_variables"] for d in base) == 6


def test_a_renamed_item_checked_by_hand():
    import random

    from tasks.causal_nli.variants import rename

    text = _input(
        ("A", "B", "C"), [("A", "C"), ("B", "C")], [("A", "B", ())], "A directly causes C."
    )
    row = {"input": text, "label": 1, "num_variables": 3, "template": "parent", "id": "x"}
    out = rename(row, ("rain", "smoke", "traffic"), random.Random(0))
    names = random.Random(0).sample(("rain", "smoke", "traffic"), 3)
    a, b, c = names
    assert out["input"] == (
        f"Premise: Suppose there is a closed system of 3 variables, {a}, {b} and {c}. "
        "All the statistical relations among these 3 variables are as follows: "
        f"{a} correlates with {c}. {b} correlates with {c}. However, {a} is independent of {b}.\n"
        f"Hypothesis: {a} directly causes {c}."
    )
    assert out["label"] == 1  # the collider a -> c <- b still orients a -> c


# --- the grid -------------------------------------------------------------------------------


def test_rlcausality_grid_carries_the_seed_settings_per_model():
    from harness.grid import expand, load_grid

    exp = expand(load_grid("rlcausality"))
    train = {(c.model, c.stage): c.resolved for c in exp.train}
    models = ("qwen2.5-1.5b", "phi-3.5-mini-instruct", "deepseek-r1-distill-qwen-7b")
    assert set(train) == {(m, s) for m in models for s in ("sft", "sft+grpo")}
    assert {(c.model, c.stage) for c in exp.eval} == {
        (m, s) for m in models for s in ("base", "sft", "sft+grpo")
    }
    seed = {  # lora r/alpha, learning rate, grad accumulation: the seed study's per model
        "qwen2.5-1.5b": (32, 16, 3e-5, 16),
        "phi-3.5-mini-instruct": (64, 32, 2e-5, 16),
        "deepseek-r1-distill-qwen-7b": (64, 32, 2e-5, 32),
    }
    for (model, stage), cfg in train.items():
        r, alpha, lr, accum = seed[model]
        if (model, stage) == ("deepseek-r1-distill-qwen-7b", "sft+grpo"):
            r = 32  # rank 64 does not fit the 11 GB card beside GRPO's sequence (the grid says why)
        assert (cfg["lora_r"], cfg["lora_alpha"], cfg["learning_rate"], cfg["grad_accum"]) == (
            r,
            alpha,
            lr,
            accum,
        )
        assert (cfg["mode"], cfg["nproc"], cfg["per_device_batch"]) == ("qlora", 2, 1)
        assert cfg["effective_batch"] == cfg["per_device_batch"] * cfg["grad_accum"] * cfg["nproc"]
        assert cfg["sources"] == "causal"
    assert {train[m, "sft+grpo"]["reward"] for m in models} == {"causal_nli"}
    assert set(exp.eval[0].inputs["tasks"]) == {
        "causal_nli",
        "causal_nli_corr2cause",
        "causal_nli_renamed",
        "causal_nli_paraphrased",
        "causal_nli_more_variables",
        "think_quality_causal",
    }
