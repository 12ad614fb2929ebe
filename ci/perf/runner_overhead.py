"""Harness overhead: (1) a second run of a finished grid runs zero cells, timed; (2) the
harness's eval wall time vs calling lm-eval directly on the same model, tasks and limit.

    python ci/perf/runner_overhead.py [--grid smoke] [--limit 10] [--repeats 2]

Each eval runs in a fresh process (imports and model load included on both sides), in
alternating order; the ratio of medians is printed (goal: <= 1.10). Each run writes what it
prints to ci/perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]

DIRECT = """
import sys, time
t0 = time.perf_counter()
import lm_eval
from lm_eval.tasks import TaskManager
from harness.zoo import materialize
from tasks import TASKS_DIR
path = materialize(sys.argv[1])
tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={path},dtype=float32,device=cpu", tasks=sys.argv[2].split(","),
                        limit=int(sys.argv[3]), apply_chat_template=True, log_samples=True, task_manager=tm,
                        gen_kwargs={"max_gen_toks": int(sys.argv[4])}, batch_size=8)
print(time.perf_counter() - t0)
"""

HARNESS = """
import sys, time, pathlib
t0 = time.perf_counter()
from harness.api import eval_model
eval_model(model=sys.argv[1], tasks=sys.argv[2].split(","), limit=int(sys.argv[3]), max_gen_toks=int(sys.argv[4]),
           batch_size=8, target="cpu", results=pathlib.Path(sys.argv[5]))
print(time.perf_counter() - t0)
"""


def timed(code: str, *args: str) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="smoke")
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", default="math_arith,causal_nli")
    ap.add_argument("--limit", default="10")
    ap.add_argument("--max-gen-toks", default="64")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-grid", action="store_true")
    args = ap.parse_args()
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    if not args.skip_grid:
        subprocess.run(
            [*BENCH, "train+eval", "--grid", args.grid, "--results", args.results], check=True
        )
        t0 = time.perf_counter()
        out = subprocess.run(
            [*BENCH, "train+eval", "--grid", args.grid, "--results", args.results],
            capture_output=True,
            text=True,
            check=True,
        )
        second = time.perf_counter() - t0
        ran = "ran 0 cells" if "ran 0 cells" in out.stdout else "UNEXPECTED: cells ran"
        out.say(
            f"second run of finished grid '{args.grid}': {second:.2f}s wall ({ran}; includes the leaderboard render)"
        )

    direct, harness = [], []
    for i in range(args.repeats):
        order = [("direct", DIRECT), ("harness", HARNESS)][:: 1 if i % 2 == 0 else -1]
        for name, code in order:
            with tempfile.TemporaryDirectory() as tmp:
                t = timed(code, args.model, args.tasks, args.limit, args.max_gen_toks, tmp)
            (direct if name == "direct" else harness).append(t)
            out.say(f"  run {i} {name:8}: {t:.1f}s")
    d, h = statistics.median(direct), statistics.median(harness)
    out.say(
        f"eval wall: lm-eval direct {d:.1f}s, harness {h:.1f}s, ratio {h / d:.3f} (goal <= 1.10)"
    )
    out.record(__file__, sys.argv[1:])


if __name__ == "__main__":
    main()
