"""Every bad input is one clear line (issue 15): each case of tests/bad_input_cases.py through the real CLI,
plus the hostile zoo names that must never build or delete outside the model cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from bad_input_cases import BENCH, CASES, build_workspace, run_case


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input") / "ws"
    build_workspace(root)
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_is_one_clear_line(case, ws):
    r = run_case(case, ws)
    out = r.stdout + r.stderr
    needle = case.needle.format(ws=ws)
    assert r.rc == case.rc, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
    assert needle in (r.stdout if case.stdout else r.stderr), out[-2000:]
    if case.absent:
        assert case.absent not in out
    if case.rc == 2:  # a user mistake: exactly one line, the error
        assert r.stderr.strip().splitlines() == [r.line], r.stderr


@pytest.mark.parametrize(
    "name", ["../../../victim", "../victim", "a/../../victim", "<script>x</script>", "Big Name"]
)
def test_a_hostile_zoo_name_never_touches_outside_the_cache(tmp_path, name):
    """A $BENCH_MODELS entry named with path parts is refused at zoo load; the directory the
    name would point at (it used to be deleted by the atomic build) is untouched."""
    cache = tmp_path / "a" / "b" / "c"
    would_be = Path(os.path.normpath(cache / "models" / name))  # where the build used to go
    victim = would_be if not would_be.is_relative_to(cache) else tmp_path / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(
        yaml.safe_dump({"models": {name: {"source": "tiny", "architecture": "LlamaForCausalLM"}}})
    )
    env = {
        "BENCH_MODELS": str(zoo),
        "BENCH_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [*BENCH, "models", "fetch", name], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 2 and "a model name is lowercase letters" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (victim / "keep.txt").read_text() == "mine" and sorted(
        p.name for p in victim.iterdir()
    ) == ["keep.txt"]
    assert not (cache / "models").exists() or not any((cache / "models").iterdir())


def test_atomic_build_refuses_a_target_outside_its_root(tmp_path):
    """Defence in depth below the name check: the build itself resolves its target."""
    from harness._build import atomic_build
    from harness.errors import BenchError

    root = tmp_path / "cache" / "models"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    built = []
    for target in (root / ".." / ".." / "victim", root / "x" / "y", root):
        with pytest.raises(BenchError, match="refusing to build or delete"):
            atomic_build(target, built.append, ".done", root=root)
    assert built == [] and (victim / "keep.txt").read_text() == "mine"
    atomic_build(root / "ok", lambda tmp: (tmp / "w").write_text("1"), ".done", root=root)
    assert (root / "ok" / "w").read_text() == "1" and (root / "ok" / ".done").exists()


def test_step_ranges_are_checked_where_configs_are_built():
    """trainers' own configs refuse out-of-range values (the python -m trainers.<method> path too)."""
    from trainers import METHODS, FieldError, resolved_config

    for method, delta, field in [
        ("sft", {"max_steps": 0}, "max_steps"),
        ("dpo", {"beta": 0}, "beta"),
        ("dpo", {"samples_per_prompt": 1}, "samples_per_prompt"),
        ("orpo", {"beta": 0}, "beta"),
        ("orpo", {"samples_per_prompt": 1}, "samples_per_prompt"),
        ("distill", {"direct_fraction": 1.2}, "direct_fraction"),
        ("grpo", {"vllm_gpu_memory_utilization": 0}, "vllm_gpu_memory_utilization"),
        ("sft", {"lr_scheduler_type": "cosin"}, "lr_scheduler_type"),
    ]:
        with pytest.raises(FieldError) as err:
            resolved_config(method, delta)
        assert err.value.field == field
    for method in METHODS:  # every default is in range
        assert resolved_config(method, {})["max_steps"] >= 1


def test_every_shipped_grid_still_loads():
    from harness.grid import list_grids, load_grid

    for name in list_grids():
        load_grid(name)
