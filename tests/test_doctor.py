"""``bench doctor``'s GPU checks, with torch's CUDA answers replaced by those of the machines
they describe (a Turing card, a node whose driver predates the image's CUDA, a flash-attn
built against another torch)."""

from __future__ import annotations

import sys
import types

import harness.doctor as doctor


def test_a_turing_card_is_reported_without_bf16(monkeypatch):
    import torch

    asked = []

    def bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation  # sm_75: emulated bf16 only

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA GeForce RTX 2080 Ti")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    cuda = next(c for c in doctor._torch() if c.name == "cuda")
    assert cuda.status == "works" and cuda.detail.endswith(
        "sm_75, CUDA " + str(torch.version.cuda) + ", no bf16"
    )
    assert asked == [False]


def test_a_driver_older_than_the_images_cuda_is_broken_with_the_fix():
    old = doctor._no_cuda("13.0", (12, 4))  # a 550 driver under a cu130 image
    assert old.status == "broken"
    assert "CUDA 13.0" in old.detail and "CUDA 12.4" in old.detail
    assert "driver >= 580" in old.detail and "rtx2080ti" in old.detail
    # within a major version the driver runs newer minor versions: the GPU is just not visible
    assert doctor._no_cuda("12.6", (12, 4)).status == "missing"
    assert "CUDA_VISIBLE_DEVICES" in doctor._no_cuda("12.6", (12, 4)).detail
    assert "no NVIDIA driver" in doctor._no_cuda("13.0", None).detail


def test_the_cuda_check_asks_the_driver_when_torch_sees_no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(doctor, "_driver_cuda", lambda: (12, 8))
    cuda = next(c for c in doctor._torch() if c.name == "cuda")
    assert cuda.status == "broken" and "driver >= 580" in cuda.detail


def test_flash_attn_counts_only_when_its_cuda_extension_imports(monkeypatch):
    import importlib.util

    monkeypatch.setattr(doctor, "_dist_version", lambda *names: "2.8.3")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setitem(sys.modules, "flash_attn_2_cuda", None)  # its import fails
    check = doctor._flash_attn()
    assert check.status == "broken" and "flash_attn_2_cuda" in check.detail
    monkeypatch.setitem(sys.modules, "flash_attn_2_cuda", types.ModuleType("flash_attn_2_cuda"))
    assert doctor._flash_attn().status == "works"


def test_the_loader_takes_flash_attention_only_when_its_extension_imports(monkeypatch):
    import transformers.utils

    from trainers._model import attn_implementation

    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)
    monkeypatch.setitem(sys.modules, "flash_attn_2_cuda", None)  # its import fails
    assert attn_implementation("h100") == "sdpa"
    monkeypatch.setitem(sys.modules, "flash_attn_2_cuda", types.ModuleType("flash_attn_2_cuda"))
    assert attn_implementation("h100") == "flash_attention_2"
    assert attn_implementation("rtx2080ti") == "sdpa"  # the target says sdpa
