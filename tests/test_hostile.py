"""Hostile input and faults through the real CLI (issue 29): nothing lost, nothing escapes,
nothing hangs. Each data-loss, path-escape and hang case of the sweep has a test here; the
one-line cases are in tests/bad_input_cases.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from bad_input_cases import BENCH

from leaderboards._synthetic import write_eval_cell
from leaderboards.sidecar import read_failure


def bench(*args, cwd: Path, env: dict | None = None, timeout: float = 120):
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
    full.pop("BENCH_MODELS", None) if "BENCH_MODELS" not in (env or {}) else None
    return subprocess.run(
        [*BENCH, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=timeout,
    )


def _results(root: Path) -> Path:
    results = root / "results"
    for i, stage in enumerate(("base", "sft")):
        scores = [1.0, 0.0, 1.0, float(i)]
        write_eval_cell(results, "m", stage, {"math_arith": {"version": "1", "scores": scores}})
    return results


def _records(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((results / "records").iterdir())}


# --- data loss: --publish never deletes what it did not make ---------------------------------


@pytest.mark.parametrize("where", ["results", "parent", "dot-inside"])
def test_publish_refuses_the_results_folder_and_loses_no_record(tmp_path, where):
    results = _results(tmp_path)
    before = _records(results)
    if where == "results":
        r = bench("leaderboard", "--results", results, "--publish", results, cwd=tmp_path)
    elif where == "parent":
        r = bench("leaderboard", "--results", results, "--publish", tmp_path, cwd=tmp_path)
    else:  # `--results . --publish .` run inside the results folder
        r = bench("leaderboard", "--results", ".", "--publish", ".", cwd=results)
    assert r.returncode == 2, r.stderr
    assert "holds the results folder" in r.stderr and "Traceback" not in r.stderr
    assert _records(results) == before
    assert not (results / "views").exists()


def test_publish_refuses_a_non_empty_folder_it_did_not_make(tmp_path):
    results = _results(tmp_path)
    site = tmp_path / "mine"
    (site / "records").mkdir(parents=True)
    (site / "records" / "notes.json").write_text("my own file")
    (site / "views").mkdir()
    (site / "views" / "draft.md").write_text("draft")
    r = bench("leaderboard", "--results", results, "--publish", site, cwd=tmp_path)
    assert r.returncode == 2 and "not made by `bench leaderboard --publish`" in r.stderr
    assert (site / "records" / "notes.json").read_text() == "my own file"
    assert (site / "views" / "draft.md").read_text() == "draft"


def test_publish_refreshes_a_folder_it_made(tmp_path):
    results = _results(tmp_path)
    site = tmp_path / "site"
    assert (
        bench("leaderboard", "--results", results, "--publish", site, cwd=tmp_path).returncode == 0
    )
    (site / "views" / "stale.md").write_text("old view")
    r = bench("leaderboard", "--results", results, "--publish", site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (site / ".bench-site").is_file() and not (site / "views" / "stale.md").exists()


# --- paths that escape, markup that is injected ------------------------------------------------


def _hostile_record(results: Path, file: str, **task) -> Path:
    good = json.loads(next((results / "records").glob("eval-*.json")).read_text())
    bad = dict(good, cell_key="badbad01")
    bad["tasks"] = [dict(good["tasks"][0], **task)]
    path = results / "records" / f"{file}.json"
    path.write_text(json.dumps(bad))
    return path


@pytest.mark.parametrize("task", ["../../../../X", "/tmp/abs-X", "a/b", ".hidden", "x\ny"])
def test_a_task_name_that_is_a_path_writes_nothing_outside_the_site(tmp_path, task):
    results = _results(tmp_path)
    _hostile_record(results, "eval-badbad01", name=task)
    site = tmp_path / "deep" / "er" / "site"
    r = bench("leaderboard", "--results", results, "--publish", site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "eval-badbad01.json: record skipped: field 'tasks.0.name'" in r.stderr
    assert not Path("/tmp/abs-X.md").exists()
    inside = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("X*")}
    assert inside == set(), inside
    assert sorted(p.name for p in (site / "views").iterdir())[0] == "leaderboard.csv"
    out = bench("analyze", "behavior", "--results", results, "--store", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not list(tmp_path.rglob("X*.json"))


@pytest.mark.parametrize("rel", ["../../../etc/passwd", "/etc/passwd", "samples/../../outside"])
def test_a_samples_file_outside_the_results_folder_is_never_opened(tmp_path, rel):
    results = _results(tmp_path)
    (tmp_path / "outside").write_text("secret")
    _hostile_record(results, "eval-badbad01", samples_file=rel)
    r = bench("leaderboard", "--results", results, "--format", "md", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "record skipped: field 'tasks.0.samples_file'" in r.stderr
    assert "root:" not in r.stdout + r.stderr
    rescored = bench("rescore", "--results", results, "--dry-run", cwd=tmp_path)
    assert "Traceback" not in rescored.stderr and "root:" not in rescored.stdout


@pytest.mark.parametrize("text", ["{}", "[]", "null", '"x"', "[" * 100_000 + "]" * 100_000])
def test_one_edited_record_does_not_take_the_board_down(tmp_path, text):
    results = _results(tmp_path)
    (results / "records" / "eval-edited.json").write_text(text)
    for args in (["--format", "md"], ["--publish", tmp_path / "site"]):
        r = bench("leaderboard", "--results", results, *args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "eval-edited.json: record skipped" in r.stderr and "Traceback" not in r.stderr
    r = bench("leaderboard", "--results", results, "--format", "md", cwd=tmp_path)
    assert "| m " in r.stdout


def test_a_v1_record_without_model_id_is_skipped_with_one_line(tmp_path):
    results = _results(tmp_path)
    (results / "records" / "eval-old.json").write_text(
        json.dumps({"schema_version": 1, "kind": "eval", "cell_key": "0123"})
    )
    r = bench("leaderboard", "--results", results, "--format", "md", cwd=tmp_path)
    assert r.returncode == 0 and "eval-old.json: record skipped: field 'model_id'" in r.stderr


def test_markdown_and_html_carry_names_as_text(tmp_path):
    results = tmp_path / "results"
    model = "[click](http://evil.example) ![img](http://evil.example/x.png) `code`"
    write_eval_cell(results, model, "base", {"math_arith": {"version": "1", "scores": [1.0, 0.0]}})
    md = bench("leaderboard", "--results", results, "--format", "md", cwd=tmp_path).stdout
    assert not re.search(r"(?<!\\)\]\(", md) and "\\[click\\]" in md and "\\`code\\`" in md
    site = tmp_path / "site"
    assert (
        bench("leaderboard", "--results", results, "--publish", site, cwd=tmp_path).returncode == 0
    )
    assert not re.search(r"(?<!\\)\]\(", (site / "views" / "leaderboard.md").read_text())


# --- faults: a concurrent render, a read-only results folder --------------------------------


def test_a_render_waits_for_a_concurrent_one_instead_of_losing_its_board(tmp_path):
    """The grid's final board used to fail with 'locked' while a user's `bench leaderboard`
    held the store; it now waits for the lock and renders."""
    import sys
    import time

    results = _results(tmp_path)
    db = results / "bench.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); "
            "time.sleep(4); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        t0 = time.monotonic()
        r = bench("leaderboard", "--results", results, "--format", "md", cwd=tmp_path, timeout=90)
        assert r.returncode == 0, r.stderr
        assert "| m " in r.stdout and time.monotonic() - t0 >= 2
    finally:
        holder.kill()
        holder.wait()


def test_leaderboard_renders_from_a_read_only_results_folder(tmp_path):
    import shutil
    import stat
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="bench-ro-", dir="/tmp"))
    try:
        results = _results(top)
        assert bench("leaderboard", "--results", results, cwd=top).returncode == 0  # a store
        before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
        prefix = []
        if os.geteuid() == 0:  # root writes anywhere: run as nobody, as a colleague would
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for p in [top, *top.rglob("*")]:
            mode = p.stat().st_mode
            p.chmod(
                (mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH) & ~0o222
                | (0o111 if p.is_dir() else 0)
            )
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "HOME": "/tmp"}
        r = subprocess.run(
            [*prefix, *BENCH, "leaderboard", "--results", str(results), "--format", "md"],
            capture_output=True,
            text=True,
            env=env,
            cwd="/tmp",
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert "| m " in r.stdout and "Traceback" not in r.stderr
        assert {p: p.stat().st_mtime_ns for p in results.rglob("*")} == before
    finally:
        for p in [top, *top.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("room", ["none", "for a short file"])
def test_disk_full_in_a_cell_says_so_and_the_next_cells_still_run(tmp_path, monkeypatch, room):
    """ENOSPC used to leave a 0-byte failure file, a chained traceback and the rest of the grid
    not attempted. Now: the failure file is whole or absent, its line says 'disk full', and
    every cell is attempted."""
    import errno

    import yaml

    from harness import runner
    from harness.grid import load_grid
    from harness.runner import plan_grid, run_cell

    grid = tmp_path / "g.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "name": "full",
                "models": ["tiny-random-llama", "tiny-random-qwen2"],
                "tasks": ["math_arith"],
                "eval": {"limit": 1},
            }
        )
    )
    results = tmp_path / "results"
    plan = plan_grid(load_grid(str(grid)), results)
    attempted = []

    def full(cell, exp, results_dir):
        attempted.append(cell.key)
        raise OSError(errno.ENOSPC, "No space left on device", str(results_dir / "samples"))

    real_write = Path.write_text

    def write_text(self, text, *a, **k):
        if self.name.endswith(".tmp") and (room == "none" or '"traceback"' in text):
            real_write(self, text[: len(text) // 3])  # what fits, then the error
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, text, *a, **k)

    monkeypatch.setattr(runner, "_eval", full)
    monkeypatch.setattr(Path, "write_text", write_text)
    outcomes = [run_cell(c, plan.expansion, results) for c in plan.todo]
    assert attempted == [c.key for c in plan.todo] and len(attempted) == 2
    assert all(o.status == "failed" and o.detail.startswith("disk full") for o in outcomes)
    failures = sorted((results / "failures").glob("*")) if (results / "failures").exists() else []
    for f in failures:  # never a 0-byte or cut-off file
        assert read_failure(f).error.startswith("disk full writing")
    assert len(failures) == (0 if room == "none" else 2)


@pytest.mark.slow
def test_an_eval_outside_a_checkout_prints_no_git_error(tmp_path, tiny_llama):
    """lm-eval ran `git describe` in the working directory: 'fatal: not a git repository'."""
    r = bench(
        "eval",
        "--model",
        "tiny-random-llama",
        "--limit",
        "1",
        "--max-gen-toks",
        "4",
        "--results",
        tmp_path / "results",
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not a git repository" not in r.stdout + r.stderr


@pytest.mark.slow
def test_analyze_weights_refuses_two_unrelated_architectures(tmp_path, tiny_llama):
    """llama and qwen2 share tensor names: the headline was a Δ over truncated vectors."""
    r = bench(
        "analyze", "weights", "tiny-random-llama", "tiny-random-qwen2", cwd=tmp_path, timeout=600
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "error: A (llama) and B (qwen2) are different architectures; compare a stage with its "
        "parent or its base model"
    ]
