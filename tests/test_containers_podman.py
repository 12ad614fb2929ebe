"""The real test: build the CPU image with podman and run bench inside it.

Slow (minutes) and needs root for apt/debootstrap: runs only when selected with
``-m container`` (``make container-test``), never in the default test run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from containers.targets import REPO_ROOT

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _only_when_selected(request):
    if "container" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("builds a container image: run with -m container (make container-test)")
    if shutil.which("podman") is None and os.geteuid() != 0:
        pytest.skip("podman missing and not root to install it")


def test_cpu_image_builds_and_runs_bench():
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "ci" / "container_test.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # bench doctor inside the image reports the baked target; imports resolve the pins
    assert "torch 2.13.0+cpu transformers 5.19.0" in out
    assert re.search(r"container.*target cpu", out), out[-4000:]
    size_mb = int(re.search(r"image size: (\d+) MB", out).group(1))
    assert 500 < size_mb < 4000, f"CPU image is {size_mb} MB"
    assert Path(REPO_ROOT / "containers" / "cpu.Dockerfile").exists()
