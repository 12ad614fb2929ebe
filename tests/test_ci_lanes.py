"""make test's closing line under CI: a deselected group other than gpu fails the run unless
.ci/run names it as a lane that runs next (BENCH_CI_LANES)."""

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")
MARKS_OFF = "not gpu and not vllm and not container"


def _run(tmp_path, **env):
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n  gpu: g\n  vllm: v\n  container: c\n  needs: n\n"
    )
    (tmp_path / "test_groups.py").write_text(
        "import pytest\n\n"
        "def test_plain():\n    pass\n\n"
        "@pytest.mark.gpu\ndef test_gpu():\n    pass\n\n"
        "@pytest.mark.vllm\ndef test_vllm():\n    pass\n\n"
        "@pytest.mark.container\ndef test_container():\n    pass\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "BENCH_CI_LANES")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", MARKS_OFF],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
    )
    return done.returncode, done.stdout.strip().splitlines()


def test_off_ci_the_line_names_every_deselected_group(tmp_path):
    rc, out = _run(tmp_path)
    assert rc == 0
    assert out[-2].startswith("real components not run here: gpu (1 deselected: make test-gpu")
    assert "vllm (1 deselected: make test-vllm)" in out[-2]


def test_on_ci_a_deselected_group_that_is_no_lane_fails_the_run(tmp_path):
    rc, out = _run(tmp_path, CI="true", BENCH_CI_LANES="vllm")
    assert rc == 1
    assert out[-2].startswith("CI=true: container deselected and not named in BENCH_CI_LANES")


def test_on_ci_with_every_lane_named_only_gpu_is_left_and_says_how_it_runs(tmp_path):
    rc, out = _run(tmp_path, CI="true", BENCH_CI_LANES="vllm container")
    assert rc == 0
    assert out[-2] == (
        "real components not run here: gpu (1 deselected: make test-gpu on a CUDA machine, "
        "or ci/gpu/check.sh); run next as lanes of their own: vllm (make test-vllm), "
        "container (make container-test)"
    )
