"""Perf benchmark (not a test): GRPO rollout generation tokens/s on the CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/grpo_rollouts.py [--grid smoke] [--steps 3]
        [--rollout-dtype auto|bf16|fp32|train[,...]] [--threads N] [--json OUT]

Trains the grid's ``grpo`` step (smoke: 16 rollouts of up to 64 tokens per step, 2-digit
arithmetic prompts) from the bundled base model for ``--steps`` steps, in-process, as
``bench train`` runs it, once per ``--rollout-dtype`` setting, and times every rollout call
(``_generate_single_turn``): ``train`` is trl's own HF path (``generate`` on the training
model, fp32, LoRA unmerged, train mode); ``auto`` on a CPU with bf16 matmuls is the merged
bf16 copy re-synced after each step (trainers/_rollout.py). Tokens are the completion ids
trl keeps (up to and including the first EOS), as ``completions/mean_length`` counts them;
the step's other phases (log-probs, backward) are the rest of the stage's wall time.
Rollouts are sampled, so the settings' completions differ draw by draw; the copy's weights
equal the policy's merged ones after every step (tests/test_trainer.py). Each run writes what
it prints to ci/perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_stage(config: dict, base: Path) -> dict:
    """Train one grpo stage in-process and time every rollout generation call."""
    import trl

    from trainers import train_stage

    # (seconds, CPU seconds of the process (all threads), completion tokens, completions)
    calls: list[tuple[float, float, int, int]] = []
    train = trl.GRPOTrainer.train

    def timed_train(self, *a, **kw):
        generate = self._generate_single_turn  # trl's, or the copy trainer's override

        def timed(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            out = generate(*args, **kwargs)
            ids = out[0]
            calls.append(
                (time.perf_counter() - t, time.process_time() - c, sum(map(len, ids)), len(ids))
            )
            return out

        self._generate_single_turn = timed  # the instance attribute trl's _generate calls
        return train(self, *a, **kw)

    trl.GRPOTrainer.train = timed_train
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-grpo-rollouts-") as out:
            manifest = train_stage(
                "grpo", config, base_model=base, parent=None, output_dir=Path(out)
            )
    finally:
        trl.GRPOTrainer.train = train
    wall, cpu, load1 = time.perf_counter() - t0, time.process_time() - c0, os.getloadavg()[0]
    seconds, cpu_seconds = sum(c[0] for c in calls), sum(c[1] for c in calls)
    tokens = sum(c[2] for c in calls)
    return {
        "rollout_dtype": config["rollout_dtype"],
        "steps": manifest.steps,
        "calls": [
            {"seconds": s, "cpu_seconds": c, "tokens": n, "rollouts": k} for s, c, n, k in calls
        ],
        "tokens": tokens,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "tokens_per_s": tokens / seconds,
        "tokens_per_cpu_s": tokens / cpu_seconds,
        "stage_seconds": wall,
        "stage_cpu_seconds": cpu,
        "load_average": [load0, load1],
    }


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="smoke")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--rollout-dtype",
        default="auto",
        help="grpo rollout_dtype, or a comma list run back to back in this process "
        "(train: trl's own generation, the old path; auto: the merged copy)",
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from harness.grid import load_grid
    from harness.zoo import materialize

    if args.threads:
        torch.set_num_threads(args.threads)
    grid = load_grid(args.grid)
    base = materialize(grid.models[0])
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    runs = []
    for setting in args.rollout_dtype.split(","):
        config = {**grid.steps["grpo"], "max_steps": args.steps, "save_steps": 10_000}
        r = run_stage({**config, "rollout_dtype": setting.strip()}, base)
        runs.append(r)
        out.say(
            f"grid {args.grid} grpo, rollout_dtype {r['rollout_dtype']}, {r['steps']} steps, "
            f"torch threads {torch.get_num_threads()}"
        )
        out.say(
            f"{'call':>4s} {'rollouts':>8s} {'tokens':>7s} {'seconds':>8s} {'cpu-s':>7s} {'tok/s':>7s} {'tok/cpu-s':>9s}"
        )
        for i, c in enumerate(r["calls"]):
            n, s, cs = c["tokens"], c["seconds"], c["cpu_seconds"]
            out.say(
                f"{i:4d} {c['rollouts']:8d} {n:7d} {s:8.2f} {cs:7.2f} {n / s:7.1f} {n / cs:9.1f}"
            )
        out.say(
            f"rollouts: {r['tokens']} tokens in {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} CPU-s) = "
            f"{r['tokens_per_s']:.1f} tok/s, {r['tokens_per_cpu_s']:.1f} tok/CPU-s; whole stage "
            f"{r['stage_seconds']:.1f} s, {r['stage_cpu_seconds']:.1f} CPU-s (generation "
            f"{r['seconds'] / r['stage_seconds']:.0%}); load average {r['load_average'][0]:.2f} at "
            f"start, {r['load_average'][1]:.2f} at end"
        )
    out.record(__file__, argv if argv is not None else sys.argv[1:])
    if args.json:
        doc = {"grid": args.grid, "threads": torch.get_num_threads(), "runs": runs}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
