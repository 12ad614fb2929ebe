"""The run's console: third-party output goes to a log per cell, the terminal gets one line per event."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import warnings
from dataclasses import dataclass

import pytest
import yaml
from rich.console import Console

from harness._live import LiveView, capture, log_path, report
from harness.runner import Outcome

BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]


@dataclass
class FakeCell:
    kind: str
    key: str
    cell_id: str


def test_capture_sends_prints_warnings_and_library_handlers_to_the_log(tmp_path):
    lib = logging.getLogger(
        "bench-test-lib"
    )  # a library that bound sys.stderr at import, like transformers
    handler = logging.StreamHandler(sys.stderr)
    lib.addHandler(handler)
    lib.propagate = False
    try:
        log = tmp_path / "logs" / "eval-k.log"
        with capture(log):
            print("a print")
            lib.warning("a library warning")
            logging.getLogger("lm_eval.evaluator").warning("lm-eval says")
            warnings.warn("a python warning", stacklevel=1)
        text = log.read_text()
        for line in ("a print", "a library warning", "lm-eval says", "a python warning"):
            assert line in text
        assert handler.stream is sys.stderr  # restored after the cell
    finally:
        lib.removeHandler(handler)


def test_non_tty_prints_one_line_per_event_and_a_failed_cells_log_tail(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    ok, bad = FakeCell("train", "a" * 16, "m/sft"), FakeCell("eval", "b" * 16, "m/sft")
    with LiveView([ok, bad], tmp_path, console) as view:
        view(ok, "start")
        report("training step 1/2  loss 1.000")
        assert view.phase.startswith("training step 1/2")
        print("third-party noise")
        view(ok, Outcome("done"))
        view(bad, "start")
        print("\n".join(f"noise {i}" for i in range(30)))
        print("Traceback: the real reason")
        view(bad, Outcome("failed", "RuntimeError: boom"))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"[1/2] train m/sft [{'a' * 16}] start"
    assert lines[1].startswith(f"[1/2] train m/sft [{'a' * 16}] done")
    assert lines[2] == f"[2/2] eval  m/sft [{'b' * 16}] start"
    assert lines[3].startswith(f"[2/2] eval  m/sft [{'b' * 16}] failed: RuntimeError: boom")
    assert "third-party noise" not in out.getvalue() and "noise 14" not in out.getvalue()
    assert (
        "noise 29" in out.getvalue() and "the real reason" in out.getvalue()
    )  # the log's last lines
    assert "third-party noise" in log_path(tmp_path, ok).read_text()
    assert [(c.key, o.status) for c, o, _ in view.rows] == [
        ("a" * 16, "done"),
        ("b" * 16, "failed"),
    ]


def test_training_reports_step_and_loss(tmp_path, tiny_llama):
    from trainers import train_stage

    seen = []
    train_stage(
        "distill",
        {"levels": "1", "n_per_level": 8, "max_steps": 2, "effective_batch": 2, "logging_steps": 1},
        base_model=tiny_llama,
        parent=None,
        output_dir=tmp_path / "stage",
        progress=lambda step, total, loss: seen.append((step, total, loss)),
    )
    assert seen[-1][:2] == (2, 2) and isinstance(seen[-1][2], float)
    assert [s for s, _, _ in seen] == sorted(s for s, _, _ in seen)


@pytest.mark.slow
def test_cli_run_keeps_the_terminal_to_cell_events(tmp_path, tiny_llama):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "live-test",
                "models": ["tiny-random-llama"],
                "tasks": ["math_arith"],
                "eval": {"limit": 2, "gen_kwargs": {"max_gen_toks": 4}, "batch_size": 2},
            }
        )
    )
    results = tmp_path / "results"
    run = subprocess.run(
        [*BENCH, "train+eval", "--grid", str(grid), "--results", str(results)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    logs = list((results / "logs").glob("eval-*.log"))
    assert (
        len(logs) == 1 and "lm_eval" in logs[0].read_text()
    )  # lm-eval's lines went to the cell's log
    assert "lm_eval" not in run.stdout + run.stderr and "WARNING" not in run.stdout + run.stderr
    assert run.stdout.splitlines()[0].startswith("[1/1] eval  tiny-random-llama/base [")
