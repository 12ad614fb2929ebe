"""What `make demo` promises, checked on its own results: a trained stage significantly above
the base on held-out items (the board's * mark), and no stage whose completions loop.

    .venv/bin/python ci/demo_check.py [results]

Prints one line per stage (accuracy, p vs base, truncated and looping shares) and exits 1 when
no trained stage is significant at p < 0.05 or any stage has a looping completion.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(results: Path) -> int:
    from leaderboards import leaderboard

    board = json.loads(leaderboard(results, "json"))
    significant, loops = [], []
    for row in board["rows"]:
        for label, cell in row["cells"].items():
            p = cell.get("p_base")
            print(
                f"{row['model']} / {row['stage']:14s} {label:24s} {cell['value']:.3f}"
                f"  p vs base {'-' if p is None else f'{p:.2g}'}"
                f"  truncated {cell.get('truncated') or 0:.0%}  looping {cell.get('looping') or 0:.0%}"
            )
            if row["stage"] != "base" and p is not None and p < 0.05 and cell["delta_base"] > 0:
                significant.append((row["stage"], label))
            if cell.get("looping"):
                loops.append((row["stage"], label))
    if loops:
        print(f"demo check failed: looping completions in {loops}")
    if not significant:
        print("demo check failed: no trained stage is significantly above the base (p < 0.05)")
    return 1 if loops or not significant else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "results")))
