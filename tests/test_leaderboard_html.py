"""The static HTML leaderboard: self-contained, rendered by headless Chromium, sortable."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium, needs_chromium

from leaderboards import render
from leaderboards._synthetic import write_eval_cell
from leaderboards.store import ingest

STAGES = [("base", 0.3), ("sft", 0.35), ("distill", 0.5), ("distill+grpo", 0.7)]
MODELS = ["smol-135m", "qwen-0.5b"]
TASKS = ["math_gsm8k", "causal_nli"]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    for m, model in enumerate(MODELS):
        for s, (stage, p) in enumerate(STAGES):
            tasks = {
                t: {
                    "version": "1",
                    "scores": [
                        float((d * 7 + m + k) % 100 < 100 * (p + 0.05 * k)) for d in range(100)
                    ],
                }
                for k, t in enumerate(TASKS)
            }
            write_eval_cell(root, model, stage, tasks, minutes=s)
    ingest(root)
    out = root / "leaderboard.html"
    out.write_text(render(root / "bench.duckdb", "html"))
    return out


def test_html_is_self_contained(page):
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    assert "<style>" in html and "<script>" in html and "function sortTable" in html
    assert html.count('src="data:image/png;base64,') == len(TASKS) + len(MODELS)
    assert html.count("<tr>") == 1 + len(MODELS) * len(STAGES)


@needs_chromium
def test_screenshot_shows_table_and_plots(page, tmp_path):
    from PIL import Image  # a matplotlib dependency

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (1600, 1200, 3)

    def non_white(top: int, bottom: int) -> float:
        return float((img[top:bottom].sum(axis=2) < 720).mean())

    colours = np.unique(img[..., 0] * 65536 + img[..., 1] * 256 + img[..., 2])
    assert len(colours) > 500  # text antialiasing, plots: not a blank page
    assert non_white(60, 140) > 0.2  # the dark table header
    assert non_white(140, 420) > 0.02  # table rows' text
    # matplotlib's first two colours fill the bars below the table
    plots = img[450:]
    blue = int((plots == (31, 119, 180)).all(axis=2).sum())
    orange = int((plots == (255, 127, 14)).all(axis=2).sum())
    assert blue > 2000 and orange > 2000


def _rows(dom: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*)</tbody>", dom, re.S).group(1)
    return [re.findall(r'data-v="([^"]*)"', tr) for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


@needs_chromium
def test_dom_after_javascript_has_rows_and_plots(page, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-ready="yes"' in dom  # the script ran to its end
    assert len(_rows(dom)) == len(MODELS) * len(STAGES)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == len(TASKS) + len(
        MODELS
    )


@needs_chromium
def test_sorting_by_a_column(page, tmp_path):
    # column 2 is the first task column; the hash triggers the same sort a header click does
    before = [float(r[1]) for r in _rows(page.read_text())]
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#sort=2:desc").stdout
    after = [float(r[1]) for r in _rows(dom)]
    assert after == sorted(before, reverse=True) and after != before
    assert 'aria-sort="descending"' in dom
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#sort=2:asc").stdout
    assert [float(r[1]) for r in _rows(dom)] == sorted(before)


# --- bench analyze's panels: a weight heatmap per stage transition, behaviour per cell ----------


def _analysis_results(root: Path) -> Path:
    """Two eval cells of one model (base, distill) with 4 samples per prompt, and a weight analysis."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from safetensors.torch import save_file

    from leaderboards.analysis_store import write_analysis
    from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
    from leaderboards.weights import compare_weights

    for m, (stage, right) in enumerate(
        [("base", lambda d, r: r == d % 4), ("distill", lambda d, r: d % 3 > 0)]
    ):
        key = f"cell-{stage}"
        rows = [
            {
                "cell_key": key,
                "task": "math",
                "doc_id": d,
                "repeat": r,
                "score": float(right(d, r)),
                "correct": bool(right(d, r)),
                "answer": str(right(d, r) * 7 + r),
                "gen_tokens": 20 + 10 * m,
                "truncated": r == 3 and m == 0,
                "completion": f"<think>{'step ' * (3 + m)}</think> {r}",
                "target": "7",
                "prompt": f"q{d}",
                "logprob": -1.0,
                "meta": "{}",
            }
            for d in range(12)
            for r in range(4)
        ]
        path = root / "samples" / key / "math.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
        score = sum(x["score"] for x in rows) / len(rows)
        write_record(
            RunRecord(
                kind="eval",
                cell_key=key,
                model_id="smol",
                stage=stage,
                recipe=[] if m == 0 else [stage],
                tasks=[
                    TaskResult(
                        name="math",
                        version="1",
                        primary_metric="acc",
                        samples_file=str(path.relative_to(root)),
                        metrics={"acc": MetricValue(value=score, n=len(rows))},
                    )
                ],
            ),
            root,
        )
    g = torch.Generator().manual_seed(0)
    names = [
        f"model.layers.{i}.{m}.weight"
        for i in range(4)
        for m in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    ]
    wa = {n: torch.randn(8, 8, generator=g) for n in names}
    for d, ws in (
        ("a", wa),
        (
            "b",
            {
                n: w + (i % 5) * 0.05 * torch.randn(8, 8, generator=g)
                for i, (n, w) in enumerate(wa.items())
            },
        ),
    ):
        (root / d).mkdir()
        save_file(ws, str(root / d / "model.safetensors"))
    diff = compare_weights(root / "a", root / "b")
    diff.meta = {
        "label": "smol/base → smol/distill",
        "model_id": "smol",
        "stage_a": "base",
        "stage_b": "distill",
    }
    write_analysis(root, "weights-test", diff.document())
    return root


@pytest.fixture(scope="module")
def analysis_page(tmp_path_factory) -> Path:
    from harness.analyze import analyze_behavior

    root = _analysis_results(tmp_path_factory.mktemp("analysis"))
    docs = analyze_behavior(root, store=True)  # writes results/analysis/behavior-*.json and ingests
    assert [d.stage for d in docs] == ["base", "distill"]
    assert docs[1].vs_parent.parent == "cell-base"
    out = root / "leaderboard.html"
    out.write_text(render(root / "bench.duckdb", "html"))
    return out


def test_html_has_weight_and_behaviour_panels(analysis_page):
    html = analysis_page.read_text()
    assert 'id="weights"' in html and 'id="behavior"' in html and 'id="passk"' in html
    # the board's own plots (1 task + 1 model), one heatmap, one pass@k plot (distill vs base)
    assert html.count('src="data:image/png;base64,') == 2 + 1 + 1
    body = re.search(r'<table id="behavior">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    assert body.count("<tr>") == 2  # base and distill on math
    # base: sample r of prompt d right when r == d % 4 -> pass@1 = 1/4, pass@4 = 1; truncation 1/4
    base = re.findall(r"<td>([^<]*)</td>", body.split("</tr>")[0])
    assert (
        base[:4] == ["smol", "base", "math", "4"]
        and base[5] == "0.250"
        and base[6] == "1.000"
        and base[9] == "0.250"
    )


@needs_chromium
def test_screenshot_shows_the_analysis_panels(analysis_page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2600", analysis_page.as_uri())
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    panels = img[900:]  # below the board's table and its two plots

    def near(rgb, tol=12) -> int:
        return int((np.abs(panels - np.array(rgb)).max(axis=2) <= tol).sum())

    # the heatmap's colormaps reach their ends (viridis yellow, magma black/cream); the pass@k lines are blue/orange
    assert near((253, 231, 37)) > 50 or near((68, 1, 84)) > 50
    assert near((31, 119, 180), 0) > 100 and near((255, 127, 14), 0) > 100
    dom = chromium(tmp_path, "--dump-dom", analysis_page.as_uri()).stdout
    assert 'data-ready="yes"' in dom and dom.count("<figure>") == 4
