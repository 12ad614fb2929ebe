"""Task families: one contract (``tasks.FAMILIES``) that the harness and the trainers look up.

- bench's own task index is lm-eval's ``TaskManager`` over tasks/ (names, versions, members);
- every family exports the contract, and every training source's items are scored 1.0 by
  the family's verify against the family's own teacher (the wiring), beside items whose
  answers were worked out by hand;
- the rows the methods build for fixed configs are byte for byte the rows they built before
  the families held the builders (the hashes were taken on that code), so no method's
  VERSION had to move.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

import tasks
from harness.taskinfo import task_index
from tasks import FAMILIES, family
from trainers._data import data_identity, source_fields, source_prompts, trace_rows
from trainers.distill import DistillConfig, distill_rows
from trainers.dpo import DPOConfig, task_prompts
from trainers.grpo import GRPOConfig, prompt_rows, reward_functions
from trainers.sft import SFTConfig, load_sft_rows

GSM8K_SLICE = Path(__file__).parent / "fixtures" / "math" / "gsm8k_test_slice.jsonl"


@pytest.fixture
def gsm8k_train(tmp_path, monkeypatch) -> Path:
    """A data mirror whose GSM8K train split is the fixture slice (19 rows)."""
    folder = tmp_path / "mirror" / "openai" / "gsm8k" / "main"
    folder.mkdir(parents=True)
    shutil.copy(GSM8K_SLICE, folder / "train.jsonl")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "mirror"))
    return folder / "train.jsonl"


# --- the task index -------------------------------------------------------------------------


def test_bench_task_index_is_lm_evals_task_manager_over_tasks():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks.TASKS_DIR), include_defaults=False)
    theirs = {}
    for name, entry in manager.task_index.items():
        kind = str(getattr(entry.kind, "name", entry.kind)).lower()
        meta = (entry.cfg or {}).get("metadata") or {}
        if kind == "tag":
            theirs[name] = ("tag", tuple(sorted(entry.tags)))
        elif kind == "group":
            members = tuple(t if isinstance(t, str) else t["task"] for t in entry.cfg["task"])
            theirs[name] = (str(meta.get("version", "group")), members)
        else:
            theirs[name] = (str(meta.get("version", "0")), ())
    ours = {
        name: (i.version, tuple(sorted(i.members)) if i.version == "tag" else i.members)
        for name, i in task_index().items()
    }
    assert ours == theirs
    # not two empty indexes: the three groups and their members, as the group YAMLs list them
    assert ours["math"] == ("1.0", ("math_gsm8k", "math_arith"))
    assert ours["think_quality"] == ("1.0", ("think_quality_math", "think_quality_causal"))
    assert ours["causal_nli_more_variables"] == ("1.0", ())
    assert len(ours) == 12  # 10 tasks, 2 groups


def test_every_task_folder_is_a_family_and_every_family_a_task_folder():
    folders = {p.parent.name for p in tasks.TASKS_DIR.glob("*/*.yaml")}
    assert folders == set(FAMILIES)
    assert all(FAMILIES[name] == f"tasks.{name}" for name in FAMILIES)


# --- the contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_exports_the_contract(name):
    fam = family(name)
    assert isinstance(fam.VERSION, str) and fam.VERSION
    assert callable(fam.verify) and callable(fam.sample_fields)
    held = fam.held_out()
    assert isinstance(held, frozenset) and held and all(isinstance(t, str) for t in held)
    assert set(getattr(fam, "USES", ())) <= set(FAMILIES) - {name}
    if hasattr(fam, "SOURCES"):
        assert callable(fam.prompts) and callable(fam.teacher)
    # the key's verifier versions come from this one table
    assert tasks.verifier_versions(name) == {
        f: family(f).VERSION for f in (name, *getattr(fam, "USES", ()))
    }


def test_held_out_items_are_the_test_sets_user_turns():
    from tasks.causal_nli.utils import doc_to_text as causal_text
    from tasks.causal_nli.utils import load_generated
    from tasks.math.utils import doc_to_text as math_text
    from tasks.math.utils import load_arith_docs

    math_test = load_arith_docs(seed=1234)["test"]
    assert family("math").held_out() == {math_text(d) for d in math_test}
    assert (len(math_test), len(family("math").held_out())) == (500, 454)  # small levels repeat
    causal_test = load_generated()["test"]
    assert family("causal_nli").held_out() == {causal_text(d) for d in causal_test}
    assert family("think_quality").held_out() == (
        family("math").held_out() | family("causal_nli").held_out()
    )


@pytest.mark.parametrize(("source", "name"), list(tasks.training_sources().items()))
def test_every_source_is_scored_one_by_its_own_verifier_against_its_teacher(
    source, name, gsm8k_train
):
    """The wiring: prompts -> teacher -> verify, as the trainers call them, for every source
    of every family, with the fields a method's config gives it (distill has them all; small
    sets, the rest at their defaults)."""
    fam = family(name)
    fields = source_fields(DistillConfig(n_per_level=20, n_gsm8k=19, causal_n=60), source)
    assert set(fields) == set(fam.SOURCES[source])  # every field a source reads is a config field
    got, items = source_prompts(source, 7, 12, **fields)
    assert got == name and len(items) == 12
    assert items == source_prompts(source, 7, 12, **fields)[1]  # seeded
    assert items != source_prompts(source, 8, 12, **fields)[1]
    held = fam.held_out()
    for item in items:
        assert item["prompt"][-1]["role"] == "user" and item["prompt"][-1]["content"] not in held
        assert fam.verify(fam.teacher(item), item["reference"]).value == 1.0
        assert fam.verify(fam.teacher(item, direct=True), item["reference"]).value == 1.0
        assert "Step 1" in fam.teacher(item) and "Step" not in fam.teacher(item, direct=True)
    # GRPO's reward is the same verify, looked up through the table, for every family that
    # scores this source's answers: its own, and think_quality (which USES it)
    rewards = [f for f in FAMILIES if f == name or name in getattr(family(f), "USES", ())]
    assert name in rewards
    for reward in rewards:
        cfg = GRPOConfig(sources=source, reward=reward, n_prompts=12, item_seed=7)
        rows, _ = prompt_rows(cfg)
        _, asked = source_prompts(source, 7, 12, **source_fields(cfg, source))
        assert [(r["prompt"], r["reference"]) for r in rows] == [
            (it["prompt"], it["reference"]) for it in asked
        ]
        funcs, _ = reward_functions(cfg)
        traces = [fam.teacher(it) for it in asked]
        assert funcs[0](traces, reference=[r["reference"] for r in rows]) == [1.0] * 12, reward


def test_a_reward_that_cannot_score_a_source_is_refused_in_one_line():
    with pytest.raises(
        ValueError, match="reward math cannot score sources=causal prompts; set reward=causal_nli"
    ):
        prompt_rows(GRPOConfig(sources="causal", reward="math"))
    with pytest.raises(
        ValueError, match="sources 'logic' unknown; use one of arithmetic, gsm8k, causal"
    ):
        prompt_rows(GRPOConfig(sources="logic"))
    with pytest.raises(ValueError, match="sources=arithmetic reads levels, which this method's"):
        load_sft_rows(SFTConfig(sources="arithmetic"))


# --- worked out by hand ----------------------------------------------------------------------


def test_arithmetic_items_worked_out_by_hand():
    math = family("math")
    items = math.prompts("arithmetic", 0, levels="2,5", n_per_level=2)
    assert [(it["question"], it["reference"]) for it in items] == [
        ("What is 73 - 45?", "28"),
        (
            "4 friends share 36 cookies equally. Each friend then uses 3 of their cookies. "
            "How many cookies does each friend have left?",
            "6",
        ),  # 36 / 4 = 9, 9 - 3 = 6
        ("What is 69 + 59?", "128"),
        (
            "3 friends share 21 stickers equally. Each friend then uses 6 of their stickers. "
            "How many stickers does each friend have left?",
            "1",
        ),  # 21 / 3 = 7, 7 - 6 = 1
    ]
    assert math.teacher(items[0]) == "<think>\nStep 1: 73 - 45 = 28\n</think>\nThe answer is 28."
    assert math.teacher(items[0], direct=True) == "<think>\n</think>\nThe answer is 28."
    assert math.verify("The answer is 27.", items[0]["reference"]).value == 0.0
    assert "Question: What is 73 - 45?\n" in items[0]["prompt"][0]["content"]  # math's eval prompt
    with pytest.raises(ValueError, match="item_seed 1234 generates the math_arith test items"):
        math.prompts("arithmetic", 1234, levels="2", n_per_level=2)


def test_gsm8k_item_worked_out_by_hand(gsm8k_train):
    math = family("math")
    items = math.prompts("gsm8k", 0, n_gsm8k=19)
    janet = next(it for it in items if it["question"].startswith("Janet’s ducks"))
    assert janet["reference"] == "18"  # 16 - 3 - 4 = 9 eggs sold, 9 * $2 = $18
    assert math.teacher(janet) == (
        "<think>\nStep 1: Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "Step 2: She makes 9 * 2 = $18 every day at the farmer’s market.\n</think>\nThe answer is 18."
    )
    assert math.teacher(janet) == math.gsm8k_think_trace({"answer": janet["solution"]})


def _corr2cause(path: Path, rows: list[tuple[str, int]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "label"])
        writer.writerows(rows)
    return path


def test_corr2cause_items_worked_out_by_hand(tmp_path):
    from tasks.causal_nli.language import render_input, render_premise

    # A ⊥ B and nothing else independent: skeleton A - C - B, C in no separating set of A
    # and B, so A -> C <- B is the one DAG of the class, and A directly causes C: valid.
    # Asked as causal_nli's test set asks it, it is a test item and never trained on; with
    # the two correlations in the other order it is the same problem in another wording.
    def collider(*correlations):
        premise = render_premise(("A", "B", "C"), list(correlations), [("A", "B", ())])
        return render_input(premise, "A directly causes C.")

    tested, reworded = collider(("A", "C"), ("B", "C")), collider(("B", "C"), ("A", "C"))
    # A ⊥ C | B only: skeleton A - B - C, no v-structure, 3 DAGs; A -> B is in one: invalid
    chain = render_input(
        render_premise(("A", "B", "C"), [("A", "B"), ("A", "C"), ("B", "C")], [("A", "C", ("B",))]),
        "A directly causes B.",
    )
    path = _corr2cause(tmp_path / "hand.csv", [(tested, 1), (reworded, 1), (chain, 0)])
    causal = family("causal_nli")
    fields = {**source_fields(GRPOConfig(), "causal"), "causal_file": str(path)}
    items = {it["input"]: it for it in causal.prompts("causal", 0, **fields)}
    assert set(items) == {reworded, chain}  # the test item is left out
    assert items[reworded]["reference"] == "valid" and items[chain]["reference"] == "invalid"
    assert "Markov equivalence class: 1 DAG: {A->C, B->C}." in causal.teacher(items[reworded])
    assert causal.teacher(items[reworded]).endswith("</think>\nvalid")
    assert '"A directly causes B" holds in 1 of 3 DAGs' in causal.teacher(items[chain])
    assert causal.teacher(items[chain]).endswith("</think>\ninvalid")
    assert causal.teacher(items[chain], direct=True) == "invalid"
    assert causal.verify("valid", items[chain]["reference"]).value == 0.0
    assert causal.verify(causal.teacher(items[chain]), "invalid").value == 1.0


# --- byte for byte the rows of before -------------------------------------------------------

# data_identity(rows)["sha256"] of each set, taken on the code before the families held the
# builders (commit bedc2c4): equal hashes mean the refactor changed no training row.
BEFORE = {
    "sft_causal": (32, "8ae557186f2461e9427e5d686118ee4d5559ec7612de9762071437016f334619"),
    "distill_mix": (60, "6b3b11404f64d327cabc5f4733c319f8401f079c749e6acd997658a56250a0a1"),
    "distill_default": (295, "c53a4dc91766b9ec96e249048ea36d2f74fb1447529f0f68d6e5d794cbd3bcc1"),
    "dpo_arith": (21, "360e49e8784185241e2ad3db871da23d1611c689ee4b1930f8503ae7350af7ef"),
    "dpo_causal": (16, "d26a8a4ed8ede01b500e7872325f4da2c328dde636735933474be58cea48b63f"),
    "grpo_arith": (256, "59ecedbb77e60ce21ef7b15bcecf7387666a350016263f6b92ab19c9affb7920"),
    "grpo_causal": (32, "5038d8282ff3d5333278eab01fbf3d5843cb071e7a82b76faeefedeaf00bd065"),
}


def test_rows_for_fixed_configs_are_byte_identical_to_before(gsm8k_train):
    sets = {
        "sft_causal": load_sft_rows(
            SFTConfig(
                sources="causal", causal_n=40, num_variables="3,4", direct_fraction=0.5, item_seed=3
            )
        )[0],
        "distill_mix": distill_rows(
            DistillConfig(
                sources="arithmetic,gsm8k,causal",
                levels="2:30,4:10",
                direct_fraction=0.3,
                causal_n=30,
                num_variables="3",
                n_gsm8k=5,
                item_seed=5,
            )
        )[0],
        "distill_default": distill_rows(DistillConfig())[0],
        "dpo_arith": task_prompts(DPOConfig(sources="arithmetic", levels="2,4", n_prompts=21))[0],
        "dpo_causal": task_prompts(
            DPOConfig(sources="causal", n_prompts=16, causal_n=40, num_variables="3")
        )[0],
        "grpo_arith": prompt_rows(GRPOConfig())[0],
        "grpo_causal": prompt_rows(
            GRPOConfig(
                sources="causal", reward="causal_nli", causal_n=64, num_variables="3", n_prompts=32
            )
        )[0],
    }
    got = {k: (len(rows), data_identity(rows, "")["sha256"]) for k, rows in sets.items()}
    assert got == BEFORE
    # the mix holds every source, with both kinds of trace
    completions = [r["completion"][0]["content"] for r in sets["distill_mix"]]
    assert sum(c.startswith("<think>\n</think>") for c in completions) > 0  # direct arithmetic
    assert sum(c in ("valid", "invalid") for c in completions) > 0  # direct causal
    gsm8k = {json.loads(line)["question"] for line in GSM8K_SLICE.open()}
    asked = [r["prompt"][0]["content"] for r in sets["distill_mix"]]
    assert sum(any(f"Question: {q}\n" in a for q in gsm8k) for a in asked) == 5  # n_gsm8k


def test_trace_rows_are_the_source_traces_of_every_method(gsm8k_train):
    """sft and distill ask the same builder: the same fields give the same rows."""
    cfg = dataclasses.replace(
        DistillConfig(), sources="causal", causal_n=20, num_variables="3", direct_fraction=0.5
    )
    sft = SFTConfig(sources="causal", causal_n=20, num_variables="3", direct_fraction=0.5)
    assert (
        distill_rows(cfg)[0]
        == load_sft_rows(sft)[0]
        == trace_rows("causal", 0, **source_fields(sft, "causal"))
    )
