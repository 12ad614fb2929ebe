"""Provenance stamped into every record: git state, package versions, container image."""

from __future__ import annotations

import socket
from functools import cache

from bench_core.gitinfo import git_state
from bench_core.packages import PROVENANCE_PACKAGES, installed_versions
from harness.backends import backend_packages
from leaderboards.record import Provenance

__all__ = ["provenance"]


@cache
def provenance() -> Provenance:
    commit, dirty = git_state()
    image = digest = None
    try:
        from containers.provenance import image_info

        info = image_info() or {}
        image, digest = info.get("image"), info.get("digest")
    except ImportError:
        pass
    return Provenance(
        git_commit=commit,
        git_dirty=dirty,
        packages=installed_versions(tuple(dict.fromkeys(PROVENANCE_PACKAGES + backend_packages()))),
        container_image=image,
        container_digest=digest,
        hostname=socket.gethostname(),
    )
