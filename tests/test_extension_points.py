"""Backends are a named table: a new one is an entry, and every place that needs its facts
reads them from the table."""

from __future__ import annotations

import pytest

from harness.backends import BACKENDS, Backend, Requirement
from harness.errors import BenchError


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
    assert build_lm(req, tmp_path) == ("an lm", "bfloat16") and sglang == ["k"]


def test_an_unknown_backend_names_the_known_ones():
    from pydantic import ValidationError

    from harness.backends import backend
    from harness.settings import EvalSettings

    with pytest.raises(ValidationError, match="must be hf or vllm"):
        EvalSettings(backend="onnx")
    with pytest.raises(BenchError, match=r"--backend vlm: unknown backend \(did you mean: vllm"):
        backend("vlm")
