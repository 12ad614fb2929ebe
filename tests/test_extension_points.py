"""Backends and executors are named tables: a new one is an entry (a backend) or a module and a
line (an executor), and every place that needs its facts reads them from the table. Cells and
run specs are built with keywords only."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

import pytest

from harness.backends import BACKENDS, Backend, Requirement
from harness.errors import BenchError
from harness.executors import EXECUTORS


def test_every_backend_has_a_build_key_packages_and_a_doctor_check_that_doctor_reports():
    from harness.doctor import run_checks

    reported = {c.name: c for c in run_checks()}
    for name, entry in BACKENDS.items():
        assert callable(entry.build), name
        assert isinstance(entry.key_packages, tuple), name
        assert entry.doctor.dists and entry.doctor.module and entry.doctor.missing, name
        assert name in reported, name
    # transformers is installed wherever the tests run: the hf backend works, with its version
    from importlib.metadata import version

    assert reported["hf"].status == "works"
    assert reported["hf"].detail == f"eval backend ({version('transformers')})"
    assert BACKENDS["hf"].key_packages == () and BACKENDS["vllm"].key_packages == ("vllm",)


@pytest.fixture
def sglang(monkeypatch):
    """A third backend as one BACKENDS entry, as SGLang would be (its package is not installed)."""
    built = []

    def build(req):
        built.append(req.cell_key)
        return "an lm", "bfloat16"

    entry = Backend(
        build=build,
        key_packages=("sglang",),
        doctor=Requirement(dists="sglang", module="sglang", missing="pip install 'sglang[all]'"),
        image_package="sglang",
    )
    monkeypatch.setitem(BACKENDS, "sglang", entry)
    return built


def test_a_new_backend_is_one_entry_read_by_settings_keys_doctor_image_check_and_build(
    sglang, monkeypatch, tmp_path
):
    import harness.keys as keys
    from harness.doctor import run_checks
    from harness.evaluate import EvalRequest, build_lm
    from harness.grid import GridSpec, expand, load_grid
    from harness.settings import EvalSettings

    grid = GridSpec(
        name="g",
        models=["tiny-random-llama"],
        tasks=["math_arith"],
        eval=EvalSettings(backend="sglang", limit=2),
    )
    monkeypatch.setattr(keys, "package_versions", lambda names: dict.fromkeys(names, "1"))
    (cell,) = expand(grid).eval
    assert cell.inputs["packages"] == dict.fromkeys(
        ("torch", "transformers", "lm_eval", "sglang"), "1"
    )
    hf = expand(grid.model_copy(update={"eval": EvalSettings(limit=2)})).eval[0]
    assert "sglang" not in hf.inputs["packages"] and hf.key != cell.key

    check = next(c for c in run_checks() if c.name == "sglang")
    assert (check.status, check.detail) == ("missing", "pip install 'sglang[all]'")

    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nmodels: [qwen2.5-0.5b]\ntasks: [math_arith]\ntarget: rtx2080ti\n"
        "eval: {backend: sglang}\n"
    )
    with pytest.raises(BenchError, match=r"'eval.backend': sglang is not in target rtx2080ti"):
        load_grid(str(path))

    req = EvalRequest(
        cell_key="k", model_id="m", weights=tmp_path, tasks=[], settings=cell.settings
    )
    assert build_lm(req) == ("an lm", "bfloat16") and sglang == ["k"]


def test_an_unknown_backend_names_the_known_ones():
    from pydantic import ValidationError

    from harness.backends import backend
    from harness.settings import EvalSettings

    with pytest.raises(ValidationError, match="must be hf or vllm"):
        EvalSettings(backend="onnx")
    with pytest.raises(BenchError, match=r"--backend vlm: unknown backend \(did you mean: vllm"):
        backend("vlm")


def test_importing_the_harness_and_planning_a_local_run_loads_no_slurm_code():
    code = textwrap.dedent(
        """
        import sys
        import harness.api, harness.cli, harness.executors
        from harness.api import RunSpec
        spec = RunSpec.of(grid="smoke", workers=2)
        print(spec.options, "harness.executors.slurm" in sys.modules, "submitit" in sys.modules)
        from harness.executors import executor
        executor("slurm")
        print("harness.executors.slurm" in sys.modules, "submitit" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["Options(workers=2) False False", "True True"]
    assert set(EXECUTORS) == {"local", "slurm"} and all(
        isinstance(v, str) for v in EXECUTORS.values()
    )


def test_a_new_executor_is_one_module_and_one_line(tmp_path, monkeypatch):
    """Ray's shape: a module with Options and run(), one EXECUTORS line; its option is a flag."""
    (tmp_path / "inline_executor.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from harness.runner import Outcome

            calls = []

            @dataclass(frozen=True, kw_only=True)
            class Options:
                address: str = "auto"

            def run(plan, results_dir, options, *, force=False, progress=None):
                calls.append((options.address, force, [c.cell_id for c in plan.todo]))
                return {c.key: Outcome("done") for c in plan.todo}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(EXECUTORS, "inline", "inline_executor")
    from harness.api import run_grid

    results = tmp_path / "results"
    plan, outcome = run_grid(
        "smoke", results=results, kind="eval", executor="inline", address="ray://head:10001"
    )
    import inline_executor

    assert inline_executor.calls == [("ray://head:10001", False, [c.cell_id for c in plan.todo])]
    assert len(plan.todo) == 3 and {o.status for o in outcome.values()} == {"done"}
    with pytest.raises(BenchError, match=r"^--address: only with --executor inline, not with"):
        run_grid("smoke", results=results, executor="local", address="x", dry_run=True)
    with pytest.raises(BenchError, match=r"^--workers: only with --executor local, not with"):
        run_grid("smoke", results=results, executor="inline", workers=2, dry_run=True)


def test_cells_requests_checks_and_run_specs_refuse_positional_construction():
    from harness.api import RunSpec
    from harness.evaluate import EvalRequest
    from harness.grid import EvalCell, TrainCell, eval_cell
    from harness.regression import TaskCheck

    for cls in (TrainCell, EvalCell, EvalRequest, TaskCheck, RunSpec):
        n = sum(f.init and f.default is dataclasses.MISSING for f in dataclasses.fields(cls))
        with pytest.raises(TypeError, match="positional"):
            cls(*range(max(n, 1)))
    with pytest.raises(TypeError, match="positional"):
        eval_cell(None, (), None, "m", "base", (), "m", None, "w", None, None, None)
