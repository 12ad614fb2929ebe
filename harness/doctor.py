"""``bench doctor``: what this machine can run, each check as works / missing / broken and why."""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from bench_core.offline import hub_offline
from bench_core.packages import CORE_PACKAGES
from harness.backends import BACKENDS

__all__ = ["Check", "run_checks", "CORE"]

# Check names (dist names, lm_eval's check is "lm-eval"): a failing one makes doctor exit non-zero.
CORE = ("python", *(name.replace("_", "-") for name in CORE_PACKAGES))


@dataclass
class Check:
    name: str
    status: str  # works | missing | broken
    detail: str

    def to_dict(self) -> dict:
        return asdict(self)


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _package(name: str, dist: str, module: str, why: str) -> Check:
    version = _dist_version(*dist.split("|"))
    if version is None or importlib.util.find_spec(module) is None:
        return Check(name, "missing", why)
    return Check(name, "works", version)


def _torch() -> list[Check]:
    try:
        import torch
    except Exception as e:  # a broken install is a finding, not a crash
        return [
            Check(
                "torch", "broken" if _dist_version("torch") else "missing", str(e).splitlines()[0]
            ),
            Check("cuda", "missing", "needs torch"),
        ]
    checks = [Check("torch", "works", torch.__version__)]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        cap = torch.cuda.get_device_capability(0)
        name = torch.cuda.get_device_name(0)
        # native bf16 only: the default counts emulation, which a Turing card "supports"
        bf16 = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "no bf16"
        checks.append(
            Check(
                "cuda",
                "works",
                f"{n}x {name}, sm_{cap[0]}{cap[1]}, CUDA {torch.version.cuda}, {bf16}",
            )
        )
    elif torch.version.cuda is None:
        checks.append(Check("cuda", "missing", "CPU build of torch"))
    else:
        checks.append(_no_cuda(torch.version.cuda, _driver_cuda()))
    return checks


# The oldest driver each CUDA major version runs on (CUDA's minor-version compatibility).
MIN_DRIVER = {"12": "525", "13": "580"}


def _driver_cuda() -> tuple[int, int] | None:
    """The CUDA version the installed driver supports, None without a driver."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0 or not version.value:
            return None
    except (OSError, AttributeError):
        return None
    return version.value // 1000, version.value % 1000 // 10


def _no_cuda(torch_cuda: str, driver: tuple[int, int] | None) -> Check:
    """A CUDA build of torch that sees no GPU: too old a driver, no driver, or none visible."""
    major = torch_cuda.split(".")[0]
    need = f"driver >= {MIN_DRIVER[major]}" if major in MIN_DRIVER else "a newer driver"
    if driver is None:
        return Check(
            "cuda", "missing", f"no NVIDIA driver found (torch is built for CUDA {torch_cuda})"
        )
    if driver[0] < int(major):  # minor versions are compatible within a major one
        return Check(
            "cuda",
            "broken",
            f"torch is built for CUDA {torch_cuda}, the driver supports CUDA {driver[0]}.{driver[1]}: "
            f"install {need}, or use an image built for CUDA {driver[0]} (target rtx2080ti: cu126)",
        )
    return Check("cuda", "missing", "no GPU visible (CUDA_VISIBLE_DEVICES?)")


def _flash_attn() -> Check:
    """flash-attn counts as working only if its CUDA extension imports: a build against another
    torch ABI installs fine and fails when a model loads."""
    check = _package(
        "flash-attn",
        "flash_attn|flash-attn",
        "flash_attn",
        "optional, Ampere+: pip install 'bench[flash]'; sdpa is used otherwise",
    )
    if check.status != "works":
        return check
    try:
        importlib.import_module("flash_attn_2_cuda")
    except Exception as e:  # ImportError, or OSError on an undefined symbol
        return Check(
            "flash-attn", "broken", f"{check.detail}: {str(e).splitlines()[0]}; sdpa is used"
        )
    return check


def _backends() -> list[Check]:
    """One check per eval backend (harness.backends.BACKENDS), named as ``--backend`` names it."""
    checks = []
    for name, entry in BACKENDS.items():
        need = entry.doctor
        check = _package(name, need.dists, need.module, need.missing)
        if check.status == "works":
            check.detail = f"eval backend ({check.detail})"
        checks.append(check)
    return checks


def _binary(name: str, why: str) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, "missing", why)
    try:
        out = subprocess.run([name, "--version"], capture_output=True, text=True, timeout=10)
        line = (out.stdout or out.stderr).strip().splitlines()
        return Check(name, "works", line[0] if line else path)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Check(name, "broken", str(e))


def _docker() -> Check:
    check = _binary("docker", "Docker images unavailable")
    if check.status == "works":
        try:
            info = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            info = None
        if info is None or info.returncode != 0 or not info.stdout.strip():
            return Check(
                "docker", "broken", f"{check.detail}: client only, no Docker engine reachable"
            )
    return check


def _hf_cache() -> list[Check]:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    offline = hub_offline()
    writable = os.access(
        cache if cache.exists() else cache.parent if cache.parent.exists() else Path.home(), os.W_OK
    )
    return [
        Check(
            "hf-cache",
            "works" if writable else "broken",
            f"{cache}{'' if writable else ' (not writable)'}",
        ),
        Check(
            "hf-offline",
            "works",
            "HF_HUB_OFFLINE=1: hub never contacted" if offline else "online: hub downloads allowed",
        ),
    ]


def _bench_cache() -> Check:
    from harness.zoo import cache_dir, is_materialized

    state = (
        "cached"
        if is_materialized("smollm2-135m-instruct")
        else "not built yet (bench models fetch smollm2-135m-instruct)"
    )
    return Check("bundled-model", "works", f"{cache_dir()}: smollm2-135m-instruct {state}")


def _container() -> Check:
    target = os.environ.get("BENCH_TARGET")
    if not target:
        return Check("container", "missing", "not inside a bench image")
    return Check(
        "container", "works", f"target {target}, image {os.environ.get('BENCH_IMAGE', '?')}"
    )


def run_checks() -> list[Check]:
    checks = [
        Check(
            "python",
            "works" if sys.version_info >= (3, 11) else "broken",
            f"{platform.python_version()} ({sys.executable})",
        )
    ]
    checks += _torch()
    checks += [
        _package("transformers", "transformers", "transformers", "pip install transformers"),
        _package("trl", "trl", "trl", "pip install trl"),
        _package("peft", "peft", "peft", "pip install peft"),
        _package("lm-eval", "lm_eval|lm-eval", "lm_eval", "pip install lm-eval"),
        *_backends(),
        _package(
            "bitsandbytes",
            "bitsandbytes",
            "bitsandbytes",
            "optional, QLoRA (mode=qlora, CUDA or CPU): pip install bitsandbytes",
        ),
        _flash_attn(),
    ]
    checks += _hf_cache()
    checks.append(_bench_cache())
    checks += [
        _binary("sbatch", "SLURM executor unavailable (install slurm-wlm or run on a login node)"),
        _binary("apptainer", "Apptainer images unavailable"),
        _binary("podman", "podman images unavailable"),
        _docker(),
    ]
    checks.append(_container())
    return checks
