"""The board's sample pages in headless Chromium: every cell links to one, the flipped filter
shows both completions of a flipped doc, and a 10,000-doc page loads in under 2 s."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium, needs_chromium
from test_lineage_views import lineage

from leaderboards.lineage_samples import DocSamples, StageSample, TaskSamples
from leaderboards.sample_page import sample_page_name, write_page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from leaderboards.api import leaderboard

    root = tmp_path_factory.mktemp("samples")
    lineage(root / "results")
    leaderboard(root / "results", "html", root / "site" / "leaderboard.html")
    return root / "site"


def test_every_board_cell_links_to_its_sample_page(site):
    board = (site / "leaderboard.html").read_text()
    links = re.findall(r'href="(samples/[^"]+)"', board)
    assert sorted(links) == sorted(
        f"samples/{sample_page_name(k, 't')}" for k in ("e-base", "e-distill", "e-distill-grpo")
    )
    assert all((site / link).is_file() for link in links)
    assert "<h2>Training curves</h2>" in board and 'data-metric="reward"' in board


@needs_chromium
def test_flipped_docs_show_both_completions_in_chromium(site, tmp_path):
    from PIL import Image

    page = (site / "samples" / sample_page_name("e-distill-grpo", "t")).as_uri()
    shot = tmp_path / "flipped.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", page + "#flipped")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (900, 1200, 3)
    # the verdict borders: green (#13795b) for right, red (#b42318) for wrong, both on screen
    assert int((img == (19, 121, 91)).all(axis=2).sum()) > 100
    assert int((img == (180, 35, 24)).all(axis=2).sum()) > 100

    dom = chromium(tmp_path, "--dump-dom", page + "#flipped").stdout
    docs = re.findall(r'<section class="doc" data-doc="(\d+)" data-flip="([^"]+)">', dom)
    # the McNemar table's discordant pairs: distill -> distill+grpo, 2 wins and 3 losses
    assert sorted(docs) == [
        ("1", "right → wrong"),
        ("14", "wrong → right"),
        ("15", "wrong → right"),
        ("2", "right → wrong"),
        ("3", "right → wrong"),
    ]
    one = dom[dom.index('data-doc="15"') :].split("</section>")[0]
    assert "distill says 15: The answer is 0." in one  # the parent's completion, wrong
    assert "distill+grpo says 15: The answer is 1." in one  # the cell's, right
    assert "✗ wrong" in one and "✓ right" in one
    assert 'id="flips" data-wins="2" data-losses="3"' in dom


def big_page(n: int = 10_000) -> TaskSamples:
    stages = [("base", "k0"), ("sft", "k1"), ("sft+grpo", "k2")]
    ts = TaskSamples("k2", "math", stages)
    text = "Let me think step by step. " * 12
    for d in range(n):
        ok = [(d * 7 + i) % 3 != 0 for i in range(3)]
        by = [
            StageSample(
                f"{text}The answer is {d + i}.",
                str(d + i),
                ok[i],
                float(ok[i]),
                i == 2 and d % 50 == 0,
                False,
                90,
            )
            for i in range(3)
        ]
        flip = None if ok[2] == ok[1] else ("wrong → right" if ok[2] else "right → wrong")
        ts.wins += flip == "wrong → right"
        ts.losses += flip == "right → wrong"
        ts.docs.append(DocSamples(d, f"Question {d}: what is {d} + {d}?", str(2 * d), by, flip))
    ts.docs[0].by_stage[2].completion = "</script><img src=x onerror=alert(1)> & <!--"
    return ts


@needs_chromium
def test_a_10000_doc_page_loads_in_under_2_s(tmp_path):
    page = write_page(big_page(), tmp_path / "site", "big.html")[0]
    size = sum(f.stat().st_size for f in (tmp_path / "site").rglob("*") if f.is_file())
    t0 = time.perf_counter()
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    wall = time.perf_counter() - t0
    load_ms = float(re.search(r'data-load-ms="([\d.]+)"', dom).group(1))
    print(
        f"10,000-doc sample page: {page.stat().st_size / 1e6:.2f} MB + chunks {size / 1e6:.1f} MB, load {load_ms:.0f} ms "
        f"in the page, chromium --dump-dom {wall:.2f} s"
    )
    assert load_ms < 2000
    assert dom.count('<section class="doc"') == 50  # one page of docs rendered, not 10,000
    assert "10000 doc(s); page 1 of 200" in dom
    # a completion is text, never markup
    assert "<img" not in dom and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom
    # a later page of the flipped filter loads the chunks holding its docs
    dom = chromium(tmp_path, "--dump-dom", page.as_uri() + "#losses&page=20").stdout
    shown = [int(d) for d in re.findall(r'data-doc="(\d+)" data-flip="right → wrong"', dom)]
    losses = [d.doc_id for d in big_page().docs if d.flip == "right → wrong"]
    assert shown == losses[1000:1050]
