"""The static HTML leaderboard: self-contained, rendered by headless Chromium, sortable."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from leaderboards import render
from leaderboards._synthetic import write_eval_cell
from leaderboards.store import ingest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium not installed (apt-get install -y chromium; ci installs it)",
)
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


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@needs_chromium
def test_screenshot_shows_table_and_plots(page, tmp_path):
    from PIL import Image  # a matplotlib dependency

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
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
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'data-ready="yes"' in dom  # the script ran to its end
    assert len(_rows(dom)) == len(MODELS) * len(STAGES)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == len(TASKS) + len(
        MODELS
    )


@needs_chromium
def test_sorting_by_a_column(page, tmp_path):
    # column 2 is the first task column; the hash triggers the same sort a header click does
    before = [float(r[1]) for r in _rows(page.read_text())]
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri() + "#sort=2:desc").stdout
    after = [float(r[1]) for r in _rows(dom)]
    assert after == sorted(before, reverse=True) and after != before
    assert 'aria-sort="descending"' in dom
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri() + "#sort=2:asc").stdout
    assert [float(r[1]) for r in _rows(dom)] == sorted(before)
