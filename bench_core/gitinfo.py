"""Git commit and dirty flag of the checkout this code runs from (stamped into records and manifests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["git_state", "REPO"]

REPO = Path(__file__).resolve().parents[1]


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of ``repo`` (this checkout by default); (None, None) outside git.

    Dirty means a tracked file differs from HEAD: untracked files (results/, caches) do not
    change what the code computes.
    """
    repo = repo or REPO
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)
