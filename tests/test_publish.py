"""bench leaderboard --publish DIR: a static site (HTML, Markdown, LaTeX, CSV, records JSON, provenance)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium, needs_chromium
from typer.testing import CliRunner

from harness.cli import app
from leaderboards._synthetic import write_eval_cell

STAGES = [("base", 0.3), ("sft", 0.6)]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pub")
    for s, (stage, p) in enumerate(STAGES):
        tasks = {
            t: {"version": "1", "scores": [float((d * 7 + k) % 40 < 40 * p) for d in range(40)]}
            for k, t in enumerate(("math_arith", "causal_nli"))
        }
        write_eval_cell(root / "results", "smol", stage, tasks, minutes=s)
    res = CliRunner().invoke(
        app, ["leaderboard", "--results", str(root / "results"), "--publish", str(root / "site")]
    )
    assert res.exit_code == 0, res.output
    assert "wrote 21 files" in res.output  # 13, and a sample page + chunk per board cell
    return root / "site"


def test_site_has_every_view_in_every_format(site):
    views = sorted(p.name for p in (site / "views").iterdir())
    assert views == sorted(
        f"{v}.{ext}"
        for v in ("leaderboard", "math_arith", "causal_nli")
        for ext in ("md", "tex", "csv")
    )
    tex = (site / "views" / "leaderboard.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "% bench " in tex
    md = (site / "views" / "causal_nli.md").read_text()
    assert "causal_nli@v1" in md and "math_arith" not in md.split("\n- ")[0]
    assert "- published " in md


def test_csv_values_equal_the_records(site):
    records = json.loads((site / "records.json").read_text())
    want = {
        (r["stage"], t["name"]): t["metrics"][t["primary_metric"]]["value"]
        for r in records
        for t in r["tasks"]
    }
    rows = list(csv.DictReader(io.StringIO((site / "views" / "leaderboard.csv").read_text())))
    assert rows, "empty csv"
    got = {}
    for row in rows:
        for stage, task in want:
            if row.get("stage") == stage:
                col = next(
                    k
                    for k in row
                    if k.startswith(task) and not k.endswith(("stderr", "n", "delta"))
                )
                got[(stage, task)] = float(row[col])
    assert got == pytest.approx(want)
    assert sorted(p.name for p in (site / "records").iterdir()) == sorted(
        f"eval-{r['cell_key']}.json" for r in records
    )


def test_index_has_the_board_downloads_and_provenance(site):
    page = (site / "index.html").read_text()
    assert page.count("<table") >= 1 and "data:image/png;base64," in page
    assert '<a href="views/leaderboard.tex">' in page and '<a href="records.json">' in page
    assert "published from commit" in page and "container digests:" in page


def test_publish_into_a_file_is_one_line_exit_2(tmp_path):
    from harness.errors import BenchError

    write_eval_cell(tmp_path / "r", "m", "base", {"t": {"version": "1", "scores": [1.0, 0.0]}})
    (tmp_path / "f").write_text("x")
    res = CliRunner().invoke(
        app, ["leaderboard", "--results", str(tmp_path / "r"), "--publish", str(tmp_path / "f")]
    )
    assert isinstance(res.exception, BenchError) and "is a file" in str(res.exception)


@needs_chromium
def test_published_site_renders_in_chromium(site, tmp_path):
    from PIL import Image

    shot = tmp_path / "site.png"
    chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1200,1400", (site / "index.html").as_uri()
    )
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (1400, 1200, 3)
    assert float((img[60:140].sum(axis=2) < 720).mean()) > 0.2  # the dark table header
    assert int((img[300:] == (31, 119, 180)).all(axis=2).sum()) > 2000  # matplotlib's bars
    dom = chromium(tmp_path, "--dump-dom", (site / "index.html").as_uri()).stdout
    assert "Provenance" in dom and "records.json" in dom
    assert dom.count("<tr") >= 3  # header + two rows after the page's script ran
