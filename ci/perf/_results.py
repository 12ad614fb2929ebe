"""ci/perf/RESULTS.md: each benchmark's latest measured figures, written by the benchmark itself.

A script calls :func:`record` with what it printed; its section (``## <script>``) is replaced,
the others are kept, so the file always holds the last run of every benchmark with the machine
and commit it ran on. Figures live here, not in docstrings, where they would go stale.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Each section is rewritten by its script (`ci/perf/<script>.py`) when it runs; the machine, "
    "the commit and the command are those of that run. Wall times on a shared machine are "
    "inflated by other work: CPU times and ratios are given where they matter.\n"
)


def _commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def record(script: str, body: str, *, command: str, path: Path | None = None) -> Path:
    """Replace ``script``'s section of RESULTS.md with ``body`` (Markdown) and a line naming the
    date, commit, machine and ``command``; returns the file written."""
    path = path or RESULTS
    name = Path(script).name
    stamp = (
        f"_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit "
        f"{_commit(path.parent)}, {os.cpu_count()} CPUs ({platform.machine()}), "
        f"`{command}`_"
    )
    section = f"## {name}\n\n{stamp}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
    return path


class Printed(list):
    """The lines a benchmark prints, kept for its section: ``say`` prints a line and keeps it,
    ``record`` writes them as one block with the command the script ran under."""

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.append(line)

    def record(
        self, script: str, argv: list[str], *, section: str = "", path: Path | None = None
    ) -> Path:
        """Write the lines as ``section``'s block (default: the script's name, no suffix)."""
        body = "```\n" + "\n".join(self).strip("\n") + "\n```"
        command = " ".join([f"python ci/perf/{Path(script).name}", *argv])
        return record(section or Path(script).stem, body, command=command, path=path)
