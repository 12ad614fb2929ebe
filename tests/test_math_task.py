"""The math task: answer extraction, verifier, generator, think traces, check_file."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.math import (
    equivalent,
    extract_answer,
    generate,
    gsm8k_think_trace,
    make_item,
    reference_answer,
    reward,
    strip_think,
    think_trace,
    verify,
)
from tasks.math import verifier as verifier_module
from tasks.math.check import check_file
from tasks.math.gsm8k import data_dir, gsm8k_gold, gsm8k_steps, load_gsm8k
from tasks.scoring import CheckReport, Score

FIXTURES = Path(__file__).parent / "fixtures" / "math"
GSM8K_SLICE = FIXTURES / "gsm8k_test_slice.jsonl"

# (realistic model output, expected extracted answer)
EXTRACTION_CASES = [
    ("The answer is $1,234.", "1234"),
    ("So the total is 5 + 7 = 12.\nThe answer is 12.", "12"),
    ("Adding gives \\boxed{\\frac{1}{2}}.", "1/2"),
    ("First 3, then 4, so \\boxed{7} apples in total; 8 is wrong.", "7"),
    ("<think>Maybe 5? No, 6.</think>\nThe answer is 7", "7"),
    ("<think>\nI keep thinking about 5 and 6 and 7", None),  # never closed: no answer
    ("Half of 10 is 5, plus 2.</think>\nAnswer: -3", "-3"),  # template opened <think>
    ("The temperature drops to \u22127 degrees. The answer is \u22127.", "-7"),
    ("10-5=5, so 5 left.", "5"),
    ("Final Answer: 0.5", "0.5"),
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
    ("#### 1,600", "1600"),
    ("The answer is **42**.", "42"),
    ("The answer is $\\frac{3}{4}$.", "3/4"),
    ("The answer is:\n\n18 dollars", "18"),
    ("I'm not sure how to solve this.", None),
    ("The answer is 18. I double-checked, the answer is correct.", "18"),
    ("It costs $18.50 in total.", "18.50"),
    ("The answer is \\(x^2+1\\)", "x^2+1"),
    ("\\boxed{1,\\!234}", "1234"),
    ("Step 1: 2 * 3 = 6\nStep 2: 6 + 4 = 10", "10"),
]


@pytest.mark.parametrize(("completion", "expected"), EXTRACTION_CASES)
def test_extract_answer_from_realistic_outputs(completion, expected):
    assert extract_answer(completion) == expected


def test_strip_think_keeps_only_the_visible_answer():
    assert strip_think("<think>a</think>B<think>c</think>D") == "BD"
    assert strip_think("reasoning</think> final") == "final"
    assert strip_think("answer 3 <think>more thoughts") == "answer 3"


def test_reference_answer_reads_bare_gsm8k_and_boxed_references():
    assert reference_answer("1,600") == "1600"
    assert reference_answer("She has 3.\n#### 3") == "3"
    assert reference_answer("so $\\boxed{\\frac{1}{2}}$") == "1/2"
    assert reference_answer(42) == "42"
    assert reference_answer("") is None


@pytest.mark.parametrize(
    ("completion", "reference", "value"),
    [
        ("The answer is 0.5.", "1/2", 1.0),  # fraction vs decimal: math-verify
        ("\\boxed{\\dfrac{1}{2}}", "0.5", 1.0),
        ("The answer is 18.00", "18", 1.0),
        ("The answer is $1,234.", "1234", 1.0),
        ("The answer is 1234", "#### 1,234", 1.0),
        ("\\boxed{1+x^2}", "x^2+1", 1.0),
        ("The answer is -7.", "7", 0.0),
        ("The answer is 12.", "13", 0.0),
        ("No idea.", "3", 0.0),
    ],
)
def test_verify_uses_mathematical_equivalence(completion, reference, value):
    score = verify(completion, reference)
    assert isinstance(score, Score)
    assert score.value == value


def test_verify_reports_answer_and_reason():
    score = verify("<think>2+2</think>The answer is 5.", "4")
    assert (score.value, score.answer) == (0.0, "5")
    assert "differs" in score.reason
    assert verify("nothing here", "4").reason == "no answer found in the completion"


def test_fraction_equivalence_goes_through_math_verify(monkeypatch):
    calls = []
    real = verifier_module._math_verify

    def spy(pred, gold, timeout):
        calls.append((pred, gold))
        return real(pred, gold, timeout)

    monkeypatch.setattr(verifier_module, "_math_verify", spy)
    assert verify("The answer is 1/2", "0.5").value == 1.0
    assert calls == [("1/2", "0.5")]
    assert verify("The answer is 7", "7").value == 1.0  # equal text: no sympy needed
    assert len(calls) == 1


def test_verify_works_off_the_main_thread():
    cases = [
        ("The answer is 0.5", "1/2", 1.0),
        ("\\boxed{1+x^2}", "x^2+1", 1.0),
        ("The answer is 3", "4", 0.0),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        values = list(pool.map(lambda c: verify(c[0], c[1]).value, cases))
    assert values == [c[2] for c in cases]


def test_off_main_thread_time_is_bounded(monkeypatch):
    def slow(pred, gold, timeout):
        time.sleep(1.5)
        return True

    monkeypatch.setattr(verifier_module, "_math_verify", slow)
    monkeypatch.setattr(verifier_module, "TIMEOUT_S", 1)
    out = {}

    def run():
        start = time.monotonic()
        out["same"] = equivalent("a", "b")
        out["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert out["same"] is None
    assert out["elapsed"] < 1.4
    # a timed-out item scores 0 through verify too
    thread_scores = []
    t = threading.Thread(target=lambda: thread_scores.append(verify("\\boxed{x}", "y")))
    t.start()
    t.join()
    assert thread_scores[0].value == 0.0 and "timed out" in thread_scores[0].reason


def test_main_thread_signal_timeout_stops_a_runaway_comparison():
    start = time.monotonic()
    assert equivalent("9^{9^{9^{9}}}", "5", timeout=1) is False
    assert time.monotonic() - start < 6


def test_reward_is_the_verifier_in_trl_shape():
    values = reward(
        ["The answer is 4.", [{"role": "assistant", "content": "\\boxed{5}"}]], reference=["4", "4"]
    )
    assert values == [1.0, 0.0]


# --- generator -----------------------------------------------------------------------

_FACT_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def test_generator_is_deterministic_and_prefix_stable():
    assert generate(5, seed=3) == generate(5, seed=3)
    assert generate(5, seed=3)[:10] == generate(2, seed=3)
    assert generate(5, seed=3) != generate(5, seed=4)
    assert make_item(4, 7, seed=3) == generate(8, seed=3)[7 * 5 + 3]


def test_generator_interleaves_levels_and_carries_fields():
    items = generate(4, seed=0)
    assert [i["level"] for i in items[:5]] == [1, 2, 3, 4, 5]
    for item in items:
        assert set(item) >= {"question", "answer", "level", "steps"}
        assert isinstance(item["answer"], str) and int(item["answer"]) >= 0
        assert item["steps"]


def test_generated_answers_equal_a_recomputation():
    for item in generate(60, seed=11):
        if item["level"] <= 4:  # "What is <expr>?" -- evaluate the question itself
            expr = item["question"].removeprefix("What is ").removesuffix("?")
            assert eval(expr, {"__builtins__": {}}) == int(item["answer"]), item  # noqa: S307
        facts = [_FACT_RE.search(step) for step in item["steps"]]
        assert all(facts), item
        for fact in facts:
            a, op, b, c = fact.groups()
            assert _OPS[op](int(a), int(b)) == int(c), item
        assert facts[-1].group(4) == item["answer"]


def test_level_shapes():
    items = generate(30, seed=5)
    by_level = {lv: [i for i in items if i["level"] == lv] for lv in range(1, 6)}
    assert all(re.fullmatch(r"What is \d \+ \d\?", i["question"]) for i in by_level[1])
    assert all(re.fullmatch(r"What is \d\d [-+] \d\d\?", i["question"]) for i in by_level[2])
    assert all(
        re.fullmatch(r"What is \d{3} ([-+] \d{3}|\* \d)\?", i["question"]) for i in by_level[3]
    )
    assert all(len(i["steps"]) in (2, 3) for i in by_level[4])
    assert all(
        len(i["steps"]) >= 2 and not i["question"].startswith("What is") for i in by_level[5]
    )


def test_unknown_level_is_a_one_line_error():
    with pytest.raises(ValueError, match="level 6 does not exist"):
        make_item(6, 0)


def test_think_trace_format_and_answer():
    item = {
        "question": "What is (2 + 3) * 4?",
        "answer": "20",
        "level": 4,
        "steps": ["2 + 3 = 5", "5 * 4 = 20"],
    }
    assert (
        think_trace(item)
        == "<think>\nStep 1: 2 + 3 = 5\nStep 2: 5 * 4 = 20\n</think>\nThe answer is 20."
    )
    assert think_trace(item, direct=True) == "<think>\n</think>\nThe answer is 20."
    for item in generate(10, seed=1):
        assert verify(think_trace(item), item["answer"]).value == 1.0
        assert verify(think_trace(item, direct=True), item["answer"]).value == 1.0


# --- GSM8K ---------------------------------------------------------------------------


def _slice_rows() -> list[dict]:
    return [json.loads(line) for line in GSM8K_SLICE.read_text().splitlines()]


def test_gsm8k_think_trace_strips_calculator_annotations():
    row = {
        "question": "q",
        "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
        "She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 1,018",
    }
    assert gsm8k_think_trace(row) == (
        "<think>\nStep 1: Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "Step 2: She makes 9 * 2 = $18 every day.\n</think>\nThe answer is 1018."
    )
    assert gsm8k_gold(row["answer"]) == "1018"


def test_gsm8k_think_traces_of_the_slice_verify():
    for row in _slice_rows():
        trace = gsm8k_think_trace(row)
        assert "<<" not in trace
        assert verify(trace, row["answer"]).value == 1.0
        assert len(gsm8k_steps(row["answer"])) == trace.count("\nStep ")


def test_gsm8k_without_a_gold_line_is_an_error():
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no final line")


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    (tmp_path / "gsm8k_test.jsonl").write_text(GSM8K_SLICE.read_text())
    assert load_gsm8k("test") == _slice_rows()  # the earlier file name, read as a fallback


def test_gsm8k_reads_the_mirror_layout_first(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "gsm8k_test.jsonl").write_text(GSM8K_SLICE.read_text().splitlines()[0] + "\n")
    folder = tmp_path / "openai" / "gsm8k" / "main"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text(GSM8K_SLICE.read_text())
    assert load_gsm8k("test") == _slice_rows()  # every row of the layout's file, not the one


def test_offline_without_local_gsm8k_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as err:
        load_gsm8k("test")
    message = str(err.value)
    assert "\n" not in message and f"{tmp_path}/openai/gsm8k/main/test.jsonl" in message
    assert "BENCH_DATA_DIR" in message


# --- check_file ----------------------------------------------------------------------


def test_check_file_on_the_gsm8k_slice():
    report = check_file(GSM8K_SLICE)
    assert isinstance(report, CheckReport)
    assert (report.n, report.agree, report.failures, report.agreement) == (19, 19, 0, 1.0)
    assert report.last_line() == "agreement=1.0000 n=19"


def test_check_file_on_math_rows_needs_math_verify():
    report = check_file(FIXTURES / "math_rows.jsonl")
    assert (report.n, report.agree, report.failures) == (4, 4, 0)


def test_check_file_counts_unparseable_rows(tmp_path, capsys):
    rows = GSM8K_SLICE.read_text().splitlines()[:3]
    bad = tmp_path / "broken.jsonl"
    no_gold = json.dumps({"question": "q", "answer": "1 + 1 = 2"})
    empty_gold = json.dumps({"question": "q", "answer": "1 + 1 = 2\n#### "})
    bad.write_text("\n".join([*rows, "{not json", no_gold, "[1, 2]", empty_gold]))
    report = check_file(bad, show=True)
    assert (report.n, report.agree, report.failures) == (7, 3, 4)
    assert report.agreement == pytest.approx(3 / 7)
    assert [d["row"] for d in report.disagreements] == [4, 5, 6, 7]
    assert '"row": 4' in capsys.readouterr().out


def test_check_file_reports_disagreements(tmp_path):
    path = tmp_path / "math.jsonl"
    rows = [
        {"problem": "p", "solution": "so \\boxed{3}", "answer": "4"},
        {"problem": "p", "solution": "so \\boxed{\\frac{1}{4}}", "answer": "0.25"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    report = check_file(path)
    assert (report.n, report.agree, report.failures) == (2, 1, 0)
    assert report.disagreements[0]["row"] == 1 and report.disagreements[0]["parsed"] == "3"


def test_check_file_missing_field_is_one_line(tmp_path):
    bad = tmp_path / "nofield.jsonl"
    bad.write_text(
        json.dumps({"question": "q", "answer": "#### 1"})
        + "\n"
        + json.dumps({"question": "q2"})
        + "\n"
    )
    with pytest.raises(ValueError) as err:
        check_file(bad)
    message = str(err.value)
    assert "\n" not in message
    assert str(bad) in message and "'answer'" in message and "row 2" in message


def test_check_file_math_rows_need_answer(tmp_path):
    bad = tmp_path / "math.jsonl"
    bad.write_text(json.dumps({"problem": "p", "solution": "\\boxed{1}"}) + "\n")
    with pytest.raises(ValueError, match="no field 'answer'"):
        check_file(bad)


SHARED_GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k_test.jsonl"


@pytest.mark.skipif(not SHARED_GSM8K.is_file(), reason="GSM8K test file not in ../shared/data")
def test_check_file_on_the_full_gsm8k_test_split():
    start = time.monotonic()
    report = check_file(SHARED_GSM8K)
    assert (report.n, report.agreement, report.failures) == (1319, 1.0, 0)
    assert time.monotonic() - start < 10
