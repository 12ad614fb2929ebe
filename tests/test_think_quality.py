"""think_quality: format, length, steps, delegated correctness and the composite."""

from __future__ import annotations

import sys
import types

import pytest

from tasks.math import generate, think_trace
from tasks.scoring import Score
from tasks.think_quality import ThinkScore, count_steps, reward, score, verify

ITEM = {"question": "What is 3 + 4?", "answer": "7", "level": 1, "steps": ["3 + 4 = 7"]}

# (completion, reference, format_ok, think_tokens, steps, correct, composite) -- by hand:
# composite = 0.5 correct + 0.3 format_ok + 0.2 * (min(1, tokens/10) + min(1, steps/2)) / 2
CASES = [
    # the teacher's trace: 7 tokens (Step 1: 3 + 4 = 7), 1 step -> effort (0.7 + 0.5) / 2 = 0.6
    (think_trace(ITEM), "7", True, 7, 1, 1.0, 0.5 + 0.3 + 0.2 * 0.6),
    # two steps, 15 tokens, right answer: full marks
    (
        "<think>\nStep 1: 3 + 4 = 7\nStep 2: check 7 - 4 = 3\n</think>\nThe answer is 7.",
        "7",
        True,
        15,
        2,
        1.0,
        1.0,
    ),
    # well formed but wrong: 0.3 + 0.2 * 1
    (
        "<think>\nStep 1: 3 + 4 = 8\nStep 2: so it is 8\n</think>\nThe answer is 8.",
        "7",
        True,
        13,
        2,
        0.0,
        0.5,
    ),
    # bare correct answer: no think block
    ("The answer is 7.", "7", False, 0, 0, 1.0, 0.5),
    # two think blocks: malformed; the visible answer "7" is still right
    ("<think>a</think><think>b</think>7", "7", False, 1, 1, 1.0, 0.5),
    # never closed: no answer at all
    ("<think>\nI think it is 7", "7", False, 5, 1, 0.0, 0.0),
    # empty reasoning
    ("<think>\n</think>\nThe answer is 7.", "7", False, 0, 0, 1.0, 0.5),
    # no answer after the block
    ("<think>\nStep 1: 3 + 4 = 7\n</think>\n  ", "7", False, 7, 1, 0.0, 0.0),
    # one line, two sentences, 8 tokens -> effort (0.8 + 1) / 2 = 0.9
    (
        "<think>First add 3 and 4. That gives 7.</think> The answer is 7.",
        "7",
        True,
        8,
        2,
        1.0,
        0.98,
    ),
    # three plain lines, 7 tokens -> effort (0.7 + 1) / 2 = 0.85
    ("<think>\nadd 3 and 4\nget 7\ndone\n</think>\n\\boxed{7}", "7", True, 7, 3, 1.0, 0.97),
    # the chat template opened <think>: the model never wrote the block
    ("Add them: 7.</think>The answer is 7.", "7", False, 3, 1, 1.0, 0.5),
]


@pytest.mark.parametrize(
    ("completion", "reference", "ok", "tokens", "steps", "correct", "composite"), CASES
)
def test_think_quality_metrics_by_hand(
    completion, reference, ok, tokens, steps, correct, composite
):
    s = score(completion, reference)
    assert isinstance(s, ThinkScore)
    assert (s.format_ok, s.think_tokens, s.steps, s.correct) == (ok, tokens, steps, correct)
    assert s.composite == pytest.approx(composite)
    v = verify(completion, reference)
    assert isinstance(v, Score) and v.value == pytest.approx(composite)


def test_count_steps_rules():
    assert count_steps("Step 1: a\nmore\nStep 2: b") == 2  # markers win over lines
    assert count_steps("1. a\n2) b\n3. c") == 3
    assert count_steps("a\n\nb\nc") == 3  # non-empty lines
    assert count_steps("It costs 3.5 dollars. So 7! Done?") == 3  # sentences; 3.5 is no end
    assert count_steps("") == 0


def test_teacher_traces_are_well_formed_and_correct():
    for item in generate(6, seed=2):
        s = score(think_trace(item), item["answer"])
        assert s.format_ok and s.correct == 1.0 and s.steps == len(item["steps"])


def test_correctness_is_delegated_to_the_named_task(monkeypatch):
    seen = []

    def fake_verify(completion, reference):
        seen.append((completion, reference))
        return Score(1.0 if completion.strip() == "valid" else 0.0, completion.strip(), "fake")

    monkeypatch.setitem(sys.modules, "tasks.causal_nli", types.SimpleNamespace(verify=fake_verify))
    s = score("<think>\nA and B are independent.\n</think>\nvalid", 1, task="causal_nli")
    assert seen == [("valid", 1)]  # the verifier sees the answer, not the reasoning
    assert (s.format_ok, s.correct, s.think_tokens, s.steps) == (True, 1.0, 5, 1)
    assert s.composite == pytest.approx(0.5 + 0.3 + 0.2 * (0.5 + 0.5) / 2)


def test_unknown_task_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown task 'chess'; use one of math, causal_nli"):
        score("<think>x</think>1", "1", task="chess")


def test_reward_is_the_composite():
    assert reward(["The answer is 7.", think_trace(ITEM)], reference=["7", "7"]) == pytest.approx(
        [0.5, 0.92]
    )
