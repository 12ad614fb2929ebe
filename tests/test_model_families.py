"""Training as each model family's authors intend, on tiny models with the same quirks:
an R1-style template that strips reasoning from assistant turns keeps the traces in the
training targets; a model without a template (gpt2-like, 1,024 context) trains on plain
text with max_length clipped; DPO takes the Tulu 3 preference layout with the prompt once;
limit / n_hub are seeded samples of a source-grouped mixture.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from trainers import train_stage
from trainers._config import resolve

FAST = {"effective_batch": 4, "max_length": 96, "learning_rate": 1e-2, "save_steps": 100}
TRACE = "Step 1: 7 + 5 = 12, carry the one"


@pytest.fixture(scope="session")
def tiny_r1() -> Path:
    from harness.zoo import materialize

    return materialize("tiny-random-r1")


@pytest.fixture(scope="session")
def tiny_gpt2() -> Path:
    from harness.zoo import materialize

    return materialize("tiny-random-gpt2")


def think_rows(n: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} + 12?"},
                {
                    "role": "assistant",
                    "content": f"<think>\n{TRACE}\n</think>\nThe answer is {i + 12}.",
                },
            ]
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- the template probe ----------------------------------------------------------------------


def test_the_probe_tells_the_three_kinds_of_template(tiny_r1, tiny_gpt2, tiny_llama):
    from transformers import AutoTokenizer

    from trainers._templates import KEEPS, NO_TEMPLATE, STRIPS_REASONING, template_kind

    r1 = AutoTokenizer.from_pretrained(tiny_r1)
    assert template_kind(r1) == STRIPS_REASONING
    assert template_kind(AutoTokenizer.from_pretrained(tiny_gpt2)) == NO_TEMPLATE
    assert template_kind(AutoTokenizer.from_pretrained(tiny_llama)) == KEEPS
    # what tiny-random-r1 carries: the opener in the generation prompt, no reasoning in turns
    turns = think_rows(1)[0]["messages"]
    assert r1.apply_chat_template(turns[:1], tokenize=False, add_generation_prompt=True).endswith(
        "<|Assistant|><think>\n"
    )
    assert TRACE not in r1.apply_chat_template(turns, tokenize=False)


def test_r1_style_rows_keep_the_trace_once_after_the_prompt_opener(tiny_r1):
    from transformers import AutoTokenizer

    from trainers._templates import template_rows

    tok = AutoTokenizer.from_pretrained(tiny_r1)
    (row,), _ = template_rows(think_rows(1), tok)
    assert row["prompt"] == "<|User|>What is 0 + 12?<|Assistant|><think>\n"
    # the prompt opened <think>: the completion starts inside the reasoning, no second opener
    assert row["completion"] == f"{TRACE}\n</think>\nThe answer is 12."


def test_r1_style_training_targets_contain_the_reasoning(tmp_path, tiny_r1, tiny_llama):
    """Through the template the labels would hold the answer only; the SFT path trains on it."""
    from trainers._stage import Stage
    from trainers.sft import SFTConfig, build_trainer

    cfg = resolve(
        SFTConfig,
        {
            **FAST,
            "max_length": 256,
            "packing": False,
            "model": str(tiny_r1),
            "output_dir": str(tmp_path / "r1"),
        },
    )
    trainer = build_trainer(Stage("sft", cfg), cfg, think_rows(4))
    tok = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = [t for t in batch["labels"][0].tolist() if t != -100]
    targets = tok.decode(labels)
    assert TRACE in targets and "</think>" in targets and "The answer is" in targets
    assert "What is" not in targets  # completion-only loss: the prompt is context, not target
    assert targets.count("<think>") == 0  # the opener is the prompt's, as at inference

    # a template that keeps the reasoning trains on trl's conversational rows, unchanged
    cfg2 = resolve(
        SFTConfig,
        {
            **FAST,
            "max_length": 256,
            "packing": False,
            "model": str(tiny_llama),
            "output_dir": str(tmp_path / "llama"),
        },
    )
    plain = build_trainer(Stage("sft", cfg2), cfg2, think_rows(4))
    batch = plain.data_collator([plain.train_dataset[0]])
    assert TRACE in plain.processing_class.decode(
        [t for t in batch["labels"][0].tolist() if t != -100]
    )


# --- no chat template, short context -------------------------------------------------------------


def test_no_template_model_trains_on_plain_text_with_max_length_clipped(
    tmp_path, tiny_gpt2, caplog
):
    from transformers import AutoTokenizer

    from trainers._templates import template_rows

    rows = think_rows(8)
    (first, *_), _ = template_rows(rows, AutoTokenizer.from_pretrained(tiny_gpt2))
    assert first == {
        "prompt": "What is 0 + 12?\n\n",
        "completion": rows[0]["messages"][1]["content"],
    }

    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="trainers._stage"):
        m = train_stage(
            "sft",
            {**FAST, "max_length": 4096, "dataset": str(data), "max_steps": 2},
            base_model=tiny_gpt2,
            parent=None,
            output_dir=tmp_path / "sft",
        )
    clipped = [r.getMessage() for r in caplog.records if "exceeds" in r.getMessage()]
    assert clipped == [
        "sft: max_length 4096 exceeds tiny-random-gpt2's context 1024; clipped to 1024"
    ]
    assert m.steps == 2 and all(math.isfinite(x) for x in m.losses)
    assert m.plan["seq_len"] == 1024


# --- DPO: both preference layouts ---------------------------------------------------------------

# Shaped like allenai/llama-3.1-tulu-3-8b-preference-mixture: the prompt as a string and
# again as the first turn of the chosen and rejected conversations.
TULU_ROW = {
    "id": "tulu-fixture-0",
    "source": "fixture",
    "prompt": "Name the largest planet in the solar system.",
    "chosen": [
        {"role": "user", "content": "Name the largest planet in the solar system."},
        {"role": "assistant", "content": "Jupiter is the largest planet."},
    ],
    "rejected": [
        {"role": "user", "content": "Name the largest planet in the solar system."},
        {"role": "assistant", "content": "Saturn is the largest planet."},
    ],
    "chosen_rating": 5.0,
    "rejected_rating": 2.0,
}
PLAIN_ROW = {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"}


def test_preference_rows_take_both_layouts_and_state_the_prompt_once():
    from trainers.dpo import preference_rows

    (tulu, plain) = preference_rows([TULU_ROW, PLAIN_ROW], "fixture")
    assert tulu == {
        "prompt": [TULU_ROW["chosen"][0]],
        "chosen": [TULU_ROW["chosen"][1]],
        "rejected": [TULU_ROW["rejected"][1]],
    }
    assert plain == PLAIN_ROW
    with pytest.raises(ValueError, match=r"row 0: .*share no prompt"):
        preference_rows([{**TULU_ROW, "rejected": TULU_ROW["chosen"]}], "fixture")


def test_tulu_layout_renders_the_prompt_once_through_trl(tmp_path, tiny_llama):
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainers.dpo import preference_rows

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    args = trl.DPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_length=256)
    trainer = trl.DPOTrainer(
        model=model,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_list(preference_rows([TULU_ROW], "fixture")),
    )
    row = trainer.train_dataset[0]
    chosen = tok.decode(row["prompt_ids"] + row["chosen_ids"])
    rejected = tok.decode(row["prompt_ids"] + row["rejected_ids"])
    assert chosen.count(TULU_ROW["prompt"]) == 1 and "Jupiter" in chosen and "Saturn" not in chosen
    assert rejected.count(TULU_ROW["prompt"]) == 1 and "Saturn" in rejected


# --- seeded samples of source-grouped rows -------------------------------------------------------


def grouped_rows(per_source: int = 50) -> list[dict]:
    """A mixture concatenated by source, as hub mixtures are: all of a, then b, then c."""
    return [
        {
            "source": s,
            "messages": [
                {"role": "user", "content": f"{s}{i}"},
                {"role": "assistant", "content": "ok"},
            ],
        }
        for s in "abc"
        for i in range(per_source)
    ]


def test_limit_is_a_seeded_sample_of_every_source(tmp_path):
    from trainers._data import read_rows, sample_rows

    rows = read_rows(str(write_jsonl(tmp_path / "mix.jsonl", grouped_rows())))
    sample = sample_rows(rows, 30, seed=0)
    assert len(sample) == 30 and {r["source"] for r in sample} == {"a", "b", "c"}
    assert {r["source"] for r in rows[:30]} == {"a"}  # what the first N rows would have been
    assert sample == sample_rows(rows, 30, seed=0)  # stable for a fixed seed
    assert sample != sample_rows(rows, 30, seed=1)
    assert sample_rows(rows, None, 0) is rows and sample_rows(rows, 500, 0) is rows


def test_distill_n_hub_samples_the_hub_set_by_item_seed(tmp_path, monkeypatch):
    import trainers.distill as distill

    ot = [
        {
            "source": s,
            "conversations": [
                {"from": "user", "value": f"{s}{i}"},
                {"from": "assistant", "value": "ok"},
            ],
        }
        for s in "abc"
        for i in range(40)
    ]
    monkeypatch.setattr(distill, "read_rows", lambda spec, split="train": ot)
    cfg = resolve(distill.DistillConfig, {"sources": "openthoughts", "n_hub": 12, "item_seed": 7})
    rows, name = distill.distill_rows(cfg)
    firsts = {r["messages"][0]["content"][0] for r in rows}
    assert len(rows) == 12 and firsts == {"a", "b", "c"} and name.endswith("(n=12,seed=7)")
    assert rows == distill.distill_rows(cfg)[0]
