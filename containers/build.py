"""Build and run the per-target images with apptainer, docker or podman.

Library functions return the command line (a list) so tests check it without an engine;
``execute=True`` runs it. ``bench containers list|build|run`` is a thin layer over these.
``python -m containers.build`` is the same for CI scripts that run before the CLI exists.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from bench_core.errors import BenchError
from containers.generate import def_path, dockerfile_path
from containers.targets import REPO_ROOT, Target, get_target, load_targets

__all__ = [
    "ENGINES",
    "PODMAN_FLAGS",
    "PODMAN_RUN_FLAGS",
    "list_targets",
    "stage_context",
    "build_command",
    "run_command",
    "image_digest",
    "build",
    "run",
    "main",
]

Engine = Literal["apptainer", "docker", "podman"]
ENGINES: tuple[str, ...] = ("apptainer", "docker", "podman")
# Debian's podman: crun fails on this kind of host's cgroups, runc works; the default
# ulimits of a rootful container are refused there, explicit ones are not.
PODMAN_FLAGS = ["--runtime", "runc"]
PODMAN_RUN_FLAGS = [*PODMAN_FLAGS, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BUILD_DIR = REPO_ROOT / "build" / "container"  # git-ignored; see containers/generate.py
HF_CACHE = Path.home() / ".cache" / "huggingface"


def list_targets() -> list[Target]:
    return list(load_targets().values())


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise BenchError(f"unknown container engine {engine!r}; use one of {', '.join(ENGINES)}")


def sif_path(t: Target) -> Path:
    return REPO_ROOT / "containers" / f"{t.name}.sif"


def _pip_setting(key: str) -> str | None:
    """A value of the host's pip configuration (env var first, then pip's config files)."""
    env = os.environ.get(f"PIP_{key.upper().replace('-', '_')}")
    if env:
        return env
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", f"global.{key}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def stage_context(
    t: Target,
    build_dir: Path = BUILD_DIR,
    find_links: list[str] | None = None,
    cert: str | None = None,
) -> Path:
    """Fill ``build/container/`` (wheels/, pip.conf) for a build of ``t``.

    A local torch wheel matching the target (``torch-<version>+<cpu|cuXYZ>-cp<py>``) is
    copied from pip's find-links, so machines without a route to the PyTorch index build
    anyway; the host's CA bundle rides along for pip behind TLS-intercepting proxies.
    """
    wheels = build_dir / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    (wheels / ".keep").write_text("")
    if find_links is None:
        links = _pip_setting("find-links")
        find_links = links.split() if links else []
    flavour = "cpu" if t.cuda is None else "cu" + t.cuda.replace(".", "")
    py = "cp" + t.python.replace(".", "")
    pattern = f"torch-{t.torch}+{flavour}-{py}-{py}-*linux*x86_64.whl"
    for link in find_links:
        link = link.removeprefix("file://")
        for wheel in sorted(glob.glob(os.path.join(link, pattern)))[:1]:
            shutil.copy2(wheel, wheels / Path(wheel).name)
            break
    cert = cert if cert is not None else _pip_setting("cert")
    conf = build_dir / "pip.conf"
    conf.unlink(missing_ok=True)
    (build_dir / "ca-bundle.crt").unlink(missing_ok=True)
    if cert and Path(cert).is_file():
        shutil.copy2(cert, build_dir / "ca-bundle.crt")
        conf.write_text("[global]\ncert = /opt/bench/build/ca-bundle.crt\n")
    return build_dir


def build_command(
    target: str, engine: Engine = "apptainer", tag: str | None = None, base_image: str | None = None
) -> list[str]:
    """The command line that builds ``target``'s image (run from the repo root)."""
    _check_engine(engine)
    t = get_target(target)
    if engine == "apptainer":
        if base_image:
            raise BenchError(
                "--base-image applies to docker/podman; edit From: in the .def for apptainer"
            )
        return ["apptainer", "build", "--force", tag or str(sif_path(t)), str(def_path(t))]
    cmd = [engine, "build"]
    if engine == "podman":
        cmd += PODMAN_FLAGS
    if base_image:
        cmd += ["--build-arg", f"BASE_IMAGE={base_image}"]
    return [*cmd, "-f", str(dockerfile_path(t)), "-t", tag or t.image, str(REPO_ROOT)]


def image_digest(image: str, engine: Engine) -> str | None:
    """The local image id of a docker/podman image, for BENCH_IMAGE_DIGEST; None if unknown."""
    if engine == "apptainer":
        return None  # a SIF has no id short of hashing gigabytes; labels carry the versions
    try:
        out = subprocess.run(
            [engine, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    ident = out.stdout.strip()
    if out.returncode != 0 or not ident:
        return None
    return ident if ":" in ident else f"sha256:{ident}"


def run_command(
    target: str,
    args: list[str],
    engine: Engine = "apptainer",
    tag: str | None = None,
    results: Path | str = "results",
    hf_home: Path | str = HF_CACHE,
    entrypoint: str | None = None,
    digest: str | None = None,
) -> list[str]:
    """The command line that runs ``bench ARGS`` in ``target``'s image, results bound to the host."""
    _check_engine(engine)
    t = get_target(target)
    results = Path(results).resolve()
    binds = [(results, "/results")]
    if Path(hf_home).is_dir():
        binds.append((Path(hf_home).resolve(), "/hf"))
    if engine == "apptainer":
        cmd = ["apptainer", "exec" if entrypoint else "run"]
        if t.is_gpu:
            cmd.append("--nv")
        for host, inside in binds:
            cmd += ["--bind", f"{host}:{inside}"]
        if digest:
            cmd += ["--env", f"BENCH_IMAGE_DIGEST={digest}"]
        image = tag or str(sif_path(t))
        return [*cmd, image, *([entrypoint] if entrypoint else []), *args]
    cmd = [engine, "run", "--rm"]
    if engine == "podman":
        cmd += PODMAN_RUN_FLAGS
    if t.is_gpu:
        # docker: the NVIDIA container toolkit; podman: its CDI spec (nvidia-ctk cdi generate).
        cmd += ["--gpus", "all"] if engine == "docker" else ["--device", "nvidia.com/gpu=all"]
    for host, inside in binds:
        cmd += ["-v", f"{host}:{inside}"]
    # Passed through when set on the host (apptainer passes the whole environment itself).
    cmd += ["-e", "HF_HUB_OFFLINE", "-e", "OMP_NUM_THREADS"]
    if digest:
        cmd += ["-e", f"BENCH_IMAGE_DIGEST={digest}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return [*cmd, tag or t.image, *args]


def _require_engine(engine: str) -> None:
    if shutil.which(engine) is None:
        raise BenchError(
            f"container engine {engine!r} not found on PATH; install it or pick another --engine"
        )


def build(
    target: str,
    engine: Engine = "apptainer",
    tag: str | None = None,
    base_image: str | None = None,
    execute: bool = True,
) -> list[str]:
    """Stage the build context and build ``target``; returns the command line."""
    cmd = build_command(target, engine, tag, base_image)
    if execute:
        _require_engine(engine)
        stage_context(get_target(target))
        subprocess.run(cmd, check=True, cwd=REPO_ROOT)
    return cmd


def run(
    target: str,
    args: list[str],
    engine: Engine = "apptainer",
    tag: str | None = None,
    results: Path | str = "results",
    execute: bool = True,
    entrypoint: str | None = None,
    hf_home: Path | str = HF_CACHE,
) -> list[str]:
    """Run ``bench ARGS`` in the image; returns the command line."""
    if not execute:
        return run_command(target, args, engine, tag, results, hf_home, entrypoint)
    _require_engine(engine)
    # The digest exists only once the image does: ask the engine, then stamp it in.
    digest = image_digest(tag or get_target(target).image, engine)
    cmd = run_command(target, args, engine, tag, results, hf_home, entrypoint, digest)
    Path(results).mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True)
    return cmd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m containers.build")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    b = sub.add_parser("build")
    b.add_argument("target")
    b.add_argument("--engine", default="apptainer", choices=ENGINES)
    b.add_argument("--tag")
    b.add_argument("--base-image")
    b.add_argument("--dry-run", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("target")
    r.add_argument("--engine", default="apptainer", choices=ENGINES)
    r.add_argument("--tag")
    r.add_argument("--results", default="results")
    r.add_argument("--entrypoint")
    r.add_argument("--dry-run", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` goes to bench inside the image, untouched by this parser.
    split = argv.index("--") if "--" in argv else len(argv)
    argv, inner = argv[:split], argv[split + 1 :]
    ns = p.parse_args(argv)
    try:
        if ns.cmd == "list":
            for t in list_targets():
                print(f"{t.name:<10} {t.dtype:<5} {t.image:<16} {t.description}")
        elif ns.cmd == "build":
            cmd = build(ns.target, ns.engine, ns.tag, ns.base_image, execute=not ns.dry_run)
        else:
            cmd = run(
                ns.target, inner, ns.engine, ns.tag, ns.results, not ns.dry_run, ns.entrypoint
            )
        if ns.cmd != "list" and ns.dry_run:
            print(shlex.join(cmd))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(
            f"error: {e.filename} is not installed; install it or pick another --engine",
            file=sys.stderr,
        )
        return 2
    except subprocess.CalledProcessError as e:
        return e.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
