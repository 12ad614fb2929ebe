"""The leaderboard: cells equal their records, versions, deltas, significance, filters, formats."""

from __future__ import annotations

import csv
import io
import json
import re

import duckdb
import pytest

from leaderboards import leaderboard, render
from leaderboards._synthetic import write_eval_cell
from leaderboards.board import build_board, parent_stage, stage_depth, task_label
from leaderboards.store import ingest

# Record values deliberately differ from the samples' means: the record is the truth.
VALUES = {
    ("alpha-1b", "base"): {"math_gsm8k": (0.123456789, 0.0111), "causal_nli": (0.5, 0.05)},
    ("alpha-1b", "distill"): {"math_gsm8k": (0.3141592653, 0.0222), "causal_nli": (0.61, 0.049)},
    ("alpha-1b", "distill+grpo"): {"math_gsm8k": (0.4567, 0.0233), "causal_nli": (0.58, 0.048)},
    ("beta_2b", "base"): {"math_gsm8k": (0.2, 0.019), "causal_nli": (0.45, 0.051)},
    ("beta_2b", "sft"): {"math_gsm8k": (0.27182818, 0.0201), "causal_nli": (0.49, 0.0502)},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    for i, ((model, stage), tasks) in enumerate(VALUES.items()):
        spec = {
            t: {
                "version": "1",
                "scores": [float((d + i) % 2) for d in range(40)],
                "value": v,
                "stderr": se,
            }
            for t, (v, se) in tasks.items()
        }
        write_eval_cell(root, model, stage, spec, minutes=i)
    ingest(root)
    return root


@pytest.fixture
def db(results):
    return results / "bench.duckdb"


def test_stage_helpers():
    assert [stage_depth(s) for s in ("base", "sft", "distill+grpo")] == [0, 1, 2]
    assert [parent_stage(s) for s in ("base", "sft", "distill+grpo", "a+b+c")] == [
        None,
        "base",
        "distill",
        "a+b",
    ]
    assert task_label("math", "2") == "math@v2" and task_label("math", "v2") == "math@v2"


def _expected_labels():
    return {"math_gsm8k@v1": "math_gsm8k", "causal_nli@v1": "causal_nli"}


def test_markdown_cells_equal_records(db):
    md = render(db, "md")
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    head = [h.strip() for h in lines[0].strip("|").split("|")]
    assert head[:2] == ["model", "stage"] and set(head[2:]) == set(_expected_labels())
    seen = set()
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        model, stage = cells[0], cells[1]
        seen.add((model, stage))
        for label, text in zip(head[2:], cells[2:], strict=True):
            m = re.match(r"^([\d.]+) ± ([\d.]+)", text)
            value, se = VALUES[(model, stage)][_expected_labels()[label]]
            assert float(m.group(1)) == pytest.approx(value, abs=5e-5)
            assert float(m.group(2)) == pytest.approx(se, abs=5e-5)
    assert seen == set(VALUES)


def test_csv_cells_equal_records_exactly(db):
    rows = list(csv.DictReader(io.StringIO(render(db, "csv"))))
    assert len(rows) == len(VALUES)
    for row in rows:
        for label, task in _expected_labels().items():
            value, se = VALUES[(row["model"], row["stage"])][task]
            assert float(row[label]) == value and float(row[f"{label}:stderr"]) == se


def test_json_cells_equal_records_exactly(db):
    data = json.loads(render(db, "json"))
    assert {c["label"]: (c["task"], c["version"]) for c in data["columns"]} == {
        "causal_nli@v1": ("causal_nli", "1"),
        "math_gsm8k@v1": ("math_gsm8k", "1"),
    }
    for row in data["rows"]:
        for label, task in _expected_labels().items():
            cell = row["cells"][label]
            assert (cell["value"], cell["stderr"]) == VALUES[(row["model"], row["stage"])][task]
            assert cell["n"] == 40


def test_rows_ordered_by_model_then_recipe_depth_and_deltas(db):
    data = json.loads(render(db, "json"))
    assert [(r["model"], r["stage"]) for r in data["rows"]] == [
        ("alpha-1b", "base"),
        ("alpha-1b", "distill"),
        ("alpha-1b", "distill+grpo"),
        ("beta_2b", "base"),
        ("beta_2b", "sft"),
    ]
    cell = data["rows"][2]["cells"]["math_gsm8k@v1"]
    assert data["rows"][2]["parent"] == "distill"
    assert cell["delta_base"] == pytest.approx(0.4567 - 0.123456789)
    assert cell["delta_parent"] == pytest.approx(0.4567 - 0.3141592653)
    assert data["rows"][0]["cells"]["math_gsm8k@v1"]["delta_base"] is None


def test_sql_leaderboard_view_matches_records(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT model_id, stage, value, stderr FROM leaderboard").fetchall()
    finally:
        con.close()
    assert len(rows) == len(VALUES)
    for model, stage, value, stderr in rows:
        for label, task in _expected_labels().items():
            assert (value[label], stderr[label]) == VALUES[(model, stage)][task]


def test_filters(db):
    def rows(**kw):
        return [(r["model"], r["stage"]) for r in json.loads(render(db, "json", **kw))["rows"]]

    assert rows(models=["beta*"]) == [("beta_2b", "base"), ("beta_2b", "sft")]
    assert rows(methods=["grpo"]) == [("alpha-1b", "distill+grpo")]
    assert rows(methods=["distill"]) == [("alpha-1b", "distill"), ("alpha-1b", "distill+grpo")]
    cols = json.loads(render(db, "json", tasks=["math_*"]))["columns"]
    assert [c["label"] for c in cols] == ["math_gsm8k@v1"]
    # deltas survive a filter that hides the base row
    cell = json.loads(render(db, "json", methods=["grpo"]))["rows"][0]["cells"]["math_gsm8k@v1"]
    assert cell["delta_base"] == pytest.approx(0.4567 - 0.123456789)


def test_latex_is_booktabs_and_escaped(db):
    tex = render(db, "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}"):
        assert rule in tex
    assert r"math\_gsm8k@v1" in tex and r"beta\_2b" in tex and r"0.1235 $\pm$ 0.0111" in tex
    body = "\n".join(ln for ln in tex.splitlines() if not ln.startswith("%"))
    assert not re.search(r"(?<!\\)_", body)  # every underscore escaped
    assert tex.count(r"\\") == 1 + len(VALUES) + 1  # header, rows, legend


def test_terminal_shows_values_and_legend(db):
    text = render(db, "terminal")
    assert "0.3142 ± 0.0222" in text and "math_gsm8k@v1" in text and "McNemar" in text
    assert "distill+grpo" in text


def test_terminal_falls_back_to_a_plain_table_for_huge_boards(db, monkeypatch):
    import leaderboards.rendering as rendering

    monkeypatch.setattr(rendering, "RICH_MAX_ROWS", 2)
    lines = render(db, "terminal").splitlines()
    assert lines[0].split() == ["model", "stage", "causal_nli@v1", "math_gsm8k@v1"]
    row = next(ln for ln in lines if ln.startswith("alpha-1b") and "distill+grpo" in ln)
    assert "0.4567 ± 0.0233" in row and "(+0.3332 / +0.1425)" in row


def test_unknown_format_is_a_one_line_error(db):
    with pytest.raises(
        ValueError, match="unknown leaderboard format 'docx'; choose one of terminal"
    ):
        render(db, "docx")


def test_leaderboard_api_ingests_renders_and_writes(results, tmp_path):
    out = tmp_path / "board.md"
    text = leaderboard(results, "md", out=out, models=["alpha-1b"])
    assert (
        out.read_text() == text and "| alpha-1b | distill+grpo |" in text and "beta_2b" not in text
    )


# --- versions and significance: separate small stores ---------------------------


def test_different_task_versions_get_separate_columns(tmp_path):
    s = [1.0, 0.0] * 10
    write_eval_cell(tmp_path, "m", "base", {"math": {"version": "1", "scores": s}})
    write_eval_cell(tmp_path, "m", "sft", {"math": {"version": "2", "scores": s, "value": 0.9}})
    write_eval_cell(
        tmp_path, "m", "sft+grpo", {"math": {"version": "1", "scores": s, "value": 0.7}}
    )
    ingest(tmp_path)
    data = json.loads(render(tmp_path / "bench.duckdb", "json"))
    assert [c["label"] for c in data["columns"]] == ["math@v1", "math@v2"]
    rows = {r["stage"]: r["cells"] for r in data["rows"]}
    assert set(rows["sft"]) == {"math@v2"} and rows["sft"]["math@v2"]["delta_base"] is None
    # sft+grpo's parent (sft) only has v2: no delta vs parent, but its v1 delta vs base stands
    assert rows["sft+grpo"]["math@v1"]["delta_parent"] is None
    assert rows["sft+grpo"]["math@v1"]["delta_base"] == pytest.approx(0.2)


def test_two_keys_of_one_model_and_stage_are_two_rows_never_one_hiding_the_other(tmp_path):
    s = [1.0, 0.0]
    for key, value, minute in (("old", 0.1, 1), ("new", 0.2, 2)):
        write_eval_cell(
            tmp_path,
            "m",
            "base",
            {"math": {"version": "1", "scores": s, "value": value}},
            cell_key=key,
            minutes=minute,
        )
    ingest(tmp_path)
    rows = json.loads(render(tmp_path / "bench.duckdb", "json"))["rows"]
    got = sorted((r["cells"]["math@v1"]["cell_key"], r["cells"]["math@v1"]["value"]) for r in rows)
    assert got == [("new", 0.2), ("old", 0.1)]
    assert len({r["stage"] for r in rows}) == 2  # told apart in the stage label


def test_settings_that_differ_are_two_columns(tmp_path):
    """A --limit 10 rerun of a full eval is its own column, not a replacement of the full run."""
    from leaderboards.record import load_record, write_record

    for key, limit, value in (("full", None, 0.3), ("quick", 10, 0.9)):
        rec = write_eval_cell(
            tmp_path,
            "m",
            "base",
            {"math": {"version": "1", "scores": [1.0, 0.0], "value": value}},
            cell_key=key,
        )
        rec.tasks[0].limit = limit
        rec.inputs = {"weights": "w", "eval": {"limit": limit}, "tasks": {"math": "1"}}
        rec.weights_key, rec.base_weights = "w", "w"
        write_record(rec, tmp_path)
        assert load_record(tmp_path / "records" / f"eval-{key}.json").tasks[0].limit == limit
    ingest(tmp_path)
    data = json.loads(render(tmp_path / "bench.duckdb", "json"))
    assert len(data["rows"]) == 1
    values = sorted(c["value"] for c in data["rows"][0]["cells"].values())
    assert values == [0.3, 0.9] and len(data["columns"]) == 2


def _paired(pattern):
    a, b = [], []
    for count, x, y in pattern:
        a += [float(x)] * count
        b += [float(y)] * count
    return a, b


def test_significance_marks_use_mcnemar_over_shared_docs(tmp_path):
    # base → sft: 20 docs only sft gets right, 2 only base → p = 508 / 2**22: significant.
    base, sft = _paired([(20, 0, 1), (2, 1, 0), (10, 1, 1), (8, 0, 0)])
    # sft → sft+grpo: flip 8 of sft's wrong docs to right and 2 right ones to wrong, so
    # vs its parent it is 8 vs 2 (p = 0.109375, no †) while vs base it is 24 vs 0 (*).
    grpo = list(sft)
    for i in [i for i, x in enumerate(sft) if x == 0.0][:8]:
        grpo[i] = 1.0
    for i in [i for i, x in enumerate(sft) if x == 1.0][:2]:
        grpo[i] = 0.0
    # Other model: sft differs from base by 8 vs 2 → no mark.
    base2, sft2 = _paired([(8, 0, 1), (2, 1, 0), (20, 1, 1), (10, 0, 0)])
    for model, stage, scores in [
        ("m", "base", base),
        ("m", "sft", sft),
        ("m", "sft+grpo", grpo),
        ("n", "base", base2),
        ("n", "sft", sft2),
    ]:
        write_eval_cell(tmp_path, model, stage, {"t": {"version": "1", "scores": scores}})
    ingest(tmp_path)
    con = duckdb.connect(str(tmp_path / "bench.duckdb"), read_only=True)
    try:
        board = build_board(con)
    finally:
        con.close()
    cells = {(r.model, r.stage): r.cells["t@v1"] for r in board.rows}
    assert cells[("m", "sft")].p_base == pytest.approx(508 / 2**22)
    assert cells[("m", "sft")].marks == "*" and cells[("m", "sft")].p_parent is None
    assert cells[("m", "sft+grpo")].p_parent == pytest.approx(0.109375)
    assert cells[("m", "sft+grpo")].marks == "*"  # vs base, not vs parent
    assert cells[("n", "sft")].p_base == pytest.approx(0.109375) and cells[("n", "sft")].marks == ""
    assert cells[("m", "base")].p_base is None and cells[("m", "base")].marks == ""
    md = render(tmp_path / "bench.duckdb", "md")
    assert "| m | sft | 0.7500 ± 0.0693* (+0.4500) |" in md
    assert "differs from base at p < 0.05" in md


def test_paired_counts_are_cached_at_ingest_and_invalidated_on_replace(tmp_path):
    base, sft = _paired([(20, 0, 1), (2, 1, 0), (10, 1, 1), (8, 0, 0)])
    write_eval_cell(tmp_path, "m", "base", {"t": {"version": "1", "scores": base}}, cell_key="b")
    write_eval_cell(tmp_path, "m", "sft", {"t": {"version": "1", "scores": sft}}, cell_key="s")
    ingest(tmp_path)
    db = tmp_path / "bench.duckdb"

    def counts():
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute(
                "SELECT cell, ref, task, n_shared, wins, losses FROM paired_counts"
            ).fetchall()
        finally:
            con.close()

    assert counts() == [("s", "b", "t", 40, 20, 2)]
    # --force re-runs sft with other results: the cached pair must not survive
    sft2 = [1.0] * 8 + [0.0] * 2 + [1.0] * 20 + [0.0] * 10  # vs base: 18 wins, 2 losses
    write_eval_cell(tmp_path, "m", "sft", {"t": {"version": "1", "scores": sft2}}, cell_key="s")
    ingest(tmp_path)
    assert counts() == [("s", "b", "t", 40, 18, 2)]
    # a store without the cache (e.g. written by an older bench) counts on the fly
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM paired_counts")
    board = build_board(con)
    con.close()
    assert board.rows[1].cells["t@v1"].p_base == pytest.approx(2 * (1 + 20 + 190) / 2**20)


def test_a_cell_whose_samples_hit_the_cap_is_marked(tmp_path):
    from leaderboards.record import write_record

    for key, truncated in (("cut", 0.2), ("fine", 0.05)):
        rec = write_eval_cell(
            tmp_path, key, "base", {"math": {"version": "1", "scores": [1.0, 0.0]}}, cell_key=key
        )
        rec.tasks[0].truncated = truncated
        write_record(rec, tmp_path)
    ingest(tmp_path)
    md = render(tmp_path / "bench.duckdb", "md")
    rows = {
        ln.split("|")[1].strip(): ln
        for ln in md.splitlines()
        if ln.startswith("| cut") or ln.startswith("| fine")
    }
    assert (
        "‡" in rows["cut"] and "‡" not in rows["fine"]
    )  # 20 % > 5 %; exactly 5 % is not over the limit
    assert (
        "cut 20%" in rows["cut"] and "cut 5%" in rows["fine"]
    )  # the share itself, whenever any sample hit the cap
    assert "cut 20%" in render(tmp_path / "bench.duckdb", "html")
    assert "‡" in render(tmp_path / "bench.duckdb", "latex").replace(r"\ddagger", "‡")
    cells = json.loads(render(tmp_path / "bench.duckdb", "json"))["rows"]
    assert sorted(r["cells"]["math@v1"]["truncated"] for r in cells) == [0.05, 0.2]


def test_a_cell_with_a_looping_sample_is_marked(tmp_path):
    from leaderboards.record import write_record

    for key, loops in (("loops", 0.1), ("clean", 0.0)):
        rec = write_eval_cell(
            tmp_path, key, "base", {"math": {"version": "1", "scores": [1.0, 0.0]}}, cell_key=key
        )
        rec.tasks[0].looping = loops
        write_record(rec, tmp_path)
    ingest(tmp_path)
    md = render(tmp_path / "bench.duckdb", "md")
    line = {
        ln.split("|")[1].strip(): ln
        for ln in md.splitlines()
        if ln.startswith(("| loops", "| clean"))
    }
    assert "↻" in line["loops"] and "↻" not in line["clean"]
    assert "loop 10%" in line["loops"] and "loop" not in line["clean"]
