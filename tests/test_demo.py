"""The demo's promises: its held-out set, its training items apart from it, and a loop detector
that flags the degenerate completions a broken stage produces (make demo checks every stage)."""

from __future__ import annotations

import pytest
import yaml

from harness.grid import expand, load_grid
from leaderboards.behavior import looping


@pytest.mark.parametrize(
    "text, loops",
    [
        ("<" * 60, True),  # the failure seen on an earlier smoke recipe: '<' to the token cap
        ("Step 1: 12 + 13 = 25." + " = 25" * 12, True),  # a short unit repeated to the end
        (
            "<think>\nStep 1: 48 - 36 = 12.\n</think>\nThe answer is 12.",
            False,
        ),  # too short to judge
        (
            "Step 1: 12 + 13 = 25.\nStep 2: 25 - 7 = 18.\nThe answer is 18. I hope this helps with it.",
            False,
        ),
        (" " * 80, False),  # whitespace is not a loop
        (
            "the cat sat on the mat and then the dog sat on the mat and the bird sat on it too, all day",
            False,
        ),
    ],
)
def test_looping_by_hand(text, loops):
    assert looping(text) is loops


def test_training_items_never_repeat_a_test_question():
    from tasks.math import generate, test_questions, test_seed
    from tasks.math.train import train_items

    test = {i["question"] for i in generate(100, test_seed(), levels=[2])}
    train = train_items("2", 400, 1)
    drawn = {i["question"] for i in generate(400, 1, levels=[2])}
    assert len(test & drawn) == 2  # seed 1 does draw two level-2 test questions ...
    assert not {i["question"] for i in train} & test_questions()  # ... and they are left out
    assert len(train) == 398


def test_the_demo_evaluates_held_out_two_digit_items():
    grid = load_grid("smoke")
    exp = expand(grid)
    evals = {c.stage: c for c in exp.eval}
    assert sorted(evals) == ["base", "distill", "distill+grpo"]
    assert ("math_arith_2digit", "1.0") in evals["base"].tasks
    raw = yaml.safe_load(open("tasks/math/math_arith_2digit.yaml"))
    assert raw["dataset_kwargs"]["levels"] == [2]
    distill = next(c for c in exp.train if c.stage == "distill")
    assert distill.resolved["levels"] == "2" and distill.resolved["item_seed"] != 1234
