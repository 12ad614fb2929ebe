"""containers/targets.yaml and its loader: the spec the planner, loader and images share."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from containers.targets import get_target, load_targets, target_for_device

TARGET_NAMES = {"h100", "a100", "a100-40g", "rtx2080ti", "cpu"}


def test_shipped_targets_load_with_expected_hardware_facts():
    targets = load_targets()
    assert set(targets) == TARGET_NAMES
    facts = {
        n: (t.dtype, t.attn_implementation, t.gpu_memory_gb, t.compute_capability)
        for n, t in targets.items()
    }
    assert facts == {
        "h100": ("bf16", "flash_attention_2", 80, "9.0"),
        "a100": ("bf16", "flash_attention_2", 80, "8.0"),
        "a100-40g": ("bf16", "flash_attention_2", 40, "8.0"),
        "rtx2080ti": ("fp16", "sdpa", 11, "7.5"),
        "cpu": ("fp32", "sdpa", None, None),
    }
    assert targets["cpu"].quantization == ["bnb-4bit"] and targets["cpu"].cuda is None
    assert targets["h100"].torch_dtype == "bfloat16"
    assert targets["rtx2080ti"].torch_dtype == "float16"
    assert targets["cpu"].image == "bench:cpu"


@pytest.mark.parametrize("name", sorted(TARGET_NAMES))
def test_constraints_file_exists_and_pins_the_spec_torch(name):
    t = get_target(name)
    pins = dict(
        line.split("==", 1)
        for line in t.constraints_path.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["torch"] == t.torch
    for pkg in ("transformers", "trl", "peft", "lm-eval"):
        assert pkg in pins, f"{t.constraints} does not pin {pkg}"
    assert ("flash-attn" in pins) == t.flash_attention
    assert ("bitsandbytes" in pins) == bool(t.quantization)


def test_cpu_constraints_keep_transformers_below_5_20():
    pins = get_target("cpu").constraints_path.read_text()
    assert "torch==2.13.0" in pins
    version = next(x.split("==")[1] for x in pins.splitlines() if x.startswith("transformers=="))
    assert tuple(int(x) for x in version.split(".")[:2]) < (5, 20)


def test_unknown_target_names_file_and_close_matches():
    with pytest.raises(ValueError) as exc:
        get_target("a100_40g")
    msg = str(exc.value)
    assert "\n" not in msg
    assert "containers/targets.yaml" in msg and "'a100_40g'" in msg
    assert "a100-40g" in msg


def test_unknown_target_without_close_match_lists_all():
    with pytest.raises(ValueError, match="known: h100, a100, a100-40g, rtx2080ti, cpu"):
        get_target("zzzzzz")


@pytest.mark.parametrize(
    ("cap", "mem", "expected"),
    [
        ((9, 0), 79.1, "h100"),
        ((8, 0), 79.1, "a100"),
        ((8, 0), 39.4, "a100-40g"),
        ((7, 5), 10.7, "rtx2080ti"),
    ],
)
def test_target_for_device(cap, mem, expected):
    assert target_for_device(*cap, mem) == expected


def test_target_for_unsupported_capability_is_one_line_error():
    with pytest.raises(ValueError, match=r"no target for compute capability 6\.1"):
        target_for_device(6, 1, 11.0)


def test_detect_target_on_this_cpu_machine(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from containers.targets import detect_target

    assert detect_target() == "cpu"


def _write(tmp_path, body):
    p = tmp_path / "targets.yaml"
    p.write_text(textwrap.dedent(body))
    return p


BASE = """\
targets:
  t:
    description: x
    base_image: img
    python: "3.12"
    cuda: "12.6"
    torch: 2.13.0
    torch_index_url: u
    compute_capability: "7.5"
    dtype: {dtype}
    attn_implementation: sdpa
    flash_attention: false
    quantization: [bnb-4bit]
    gpu_memory_gb: 11
    gpus_per_node: 1
    extras: []
    constraints: c.txt
"""


def test_bf16_on_turing_is_rejected_naming_file_and_field(tmp_path):
    p = _write(tmp_path, BASE.format(dtype="bf16"))
    with pytest.raises(ValueError) as exc:
        load_targets(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: targets.t: ") and "bf16 needs compute_capability >= 8.0" in msg


def test_bad_field_value_names_the_field(tmp_path):
    p = _write(tmp_path, BASE.format(dtype="int3"))
    with pytest.raises(ValueError, match=r"targets\.t\.dtype"):
        load_targets(p)


def test_valid_custom_file_loads(tmp_path):
    t = load_targets(_write(tmp_path, BASE.format(dtype="fp16")))["t"]
    assert t.is_gpu and t.pip_packages == []


def test_importing_targets_does_not_import_torch():
    code = "import containers.targets, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_extends_fills_a_delta_and_refuses_unknown_parents_and_cycles(tmp_path):
    from bench_core.errors import BenchError

    base = BASE.format(dtype="fp16")
    targets = load_targets(
        _write(tmp_path, base + "  child:\n    extends: t\n    gpu_memory_gb: 22\n")
    )
    assert targets["child"].gpu_memory_gb == 22
    assert targets["child"].model_dump(exclude={"name", "gpu_memory_gb"}) == targets[
        "t"
    ].model_dump(exclude={"name", "gpu_memory_gb"})
    with pytest.raises(BenchError, match=r"targets\.child\.extends: unknown target 'tt'"):
        load_targets(_write(tmp_path, base + "  child:\n    extends: tt\n"))
    with pytest.raises(BenchError, match=r"cycle through a -> b -> a"):
        load_targets(_write(tmp_path, "targets:\n  a:\n    extends: b\n  b:\n    extends: a\n"))


def test_shipped_gpu_targets_are_deltas():
    import yaml

    from containers.targets import TARGETS_FILE

    raw = yaml.safe_load(TARGETS_FILE.read_text())["targets"]
    assert {name for name, fields in raw.items() if "extends" in fields} == {
        "a100",
        "a100-40g",
        "rtx2080ti",
    }
