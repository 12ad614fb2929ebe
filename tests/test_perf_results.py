"""ci/perf/RESULTS.md: a benchmark rewrites its own section and keeps the others."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _results_module():
    spec = importlib.util.spec_from_file_location("perf_results", ROOT / "ci/perf/_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_replaces_its_section_and_keeps_the_others(tmp_path):
    results = _results_module()
    path = tmp_path / "RESULTS.md"
    results.record("ci/perf/a.py", "| x | 1 |", command="python a.py", path=path)
    results.record("ci/perf/b.py", "b's figure: 2.0", command="python b.py", path=path)
    results.record("ci/perf/a.py", "| x | 3 |", command="python a.py --n 5", path=path)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert text.count("## a.py") == 1 and text.count("## b.py") == 1
    assert "| x | 3 |" in text and "| x | 1 |" not in text
    assert "b's figure: 2.0" in text
    assert "`python a.py --n 5`" in text and "`python a.py`_" not in text
    # sections keep the order they were first written in
    assert text.index("## a.py") < text.index("## b.py")


def test_printed_lines_are_the_section_and_the_command_names_the_script(tmp_path, capsys):
    results = _results_module()
    path = tmp_path / "RESULTS.md"
    out = results.Printed()
    out.say("peak RSS 1.20 GB vs bound 2.00 GB: within")
    out.say("ratio 1.031 (goal <= 1.10)")
    out.record("/anywhere/ci/perf/mem.py", ["--gb", "2"], path=path)
    assert capsys.readouterr().out.splitlines() == [
        "peak RSS 1.20 GB vs bound 2.00 GB: within",
        "ratio 1.031 (goal <= 1.10)",
    ]
    section = path.read_text().split("## mem\n", 1)[1]
    assert "`python ci/perf/mem.py --gb 2`" in section
    assert section.endswith(
        "_\n\n```\npeak RSS 1.20 GB vs bound 2.00 GB: within\nratio 1.031 (goal <= 1.10)\n```\n"
    )  # the stamp line, then the printed lines as one block
