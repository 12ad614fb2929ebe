"""The terminal board fits 120 columns: deltas stack under the value, then task names abbreviate."""

from leaderboards import render
from leaderboards._synthetic import write_eval_cell
from leaderboards.store import ingest


def _store(tmp_path, tasks):
    for stage, p in [("base", 0.2), ("distill", 0.6), ("distill+grpo", 0.7)]:
        scores = [1.0 if i < p * 40 else 0.0 for i in range(40)]
        write_eval_cell(
            tmp_path,
            "smollm2-135m-instruct",
            stage,
            {t: {"version": "1.0", "scores": scores} for t in tasks},
        )
    ingest(tmp_path)
    return tmp_path / "bench.duckdb"


def test_three_tasks_stack_deltas_and_fit_120_columns(tmp_path):
    text = render(_store(tmp_path, ["math_arith", "causal_nli", "think_quality"]), "terminal")
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120, max(lines, key=len)
    row = next(ln for ln in lines if "distill+grpo" in ln)
    assert "0.7000 ± 0.0734*" in row and "(+0.5000 / +0.1000)" in lines[lines.index(row) + 1]


def test_many_tasks_abbreviate_with_a_legend(tmp_path):
    tasks = ["math_arith", "causal_nli", "think_quality", "math_gsm8k", "causal_nli_paraphrased"]
    text = render(_store(tmp_path, tasks), "terminal")
    assert max(map(len, text.splitlines())) <= 120
    assert "t2 = causal_nli_paraphrased@v1.0" in text and "t5 = think_quality@v1.0" in text
