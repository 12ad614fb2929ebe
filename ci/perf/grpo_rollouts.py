"""Perf benchmark (not a test): GRPO rollout generation tokens/s on the CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/grpo_rollouts.py [--grid smoke] [--steps 3]
                                                               [--threads N] [--json OUT]

Trains the grid's ``grpo`` step (smoke: 16 rollouts of up to 64 tokens per step, 2-digit
arithmetic prompts) from the bundled base model for ``--steps`` steps, in-process, as
``bench train`` runs it, and times trl's rollout generation: every call of
``GRPOTrainer._generate_single_turn`` (HF ``generate`` under ``torch.no_grad`` on the
training model, LoRA adapter attached, sampling at the step's temperature). Tokens are
the completion ids trl keeps (up to and including the first EOS), as the trainer's
``completions/mean_length`` counts them. The step's other phases (reference and policy
log-probs, the backward pass) are the rest of the step's wall time, printed beside it.

Measured (2026-12-02, idle 2 cores, torch 2.13 CPU, smoke grid, 3 steps from the base model):
3 calls of 16 rollouts, 2,107 tokens in 78.6 s = **26.8 tok/s** (25.5 / 27.8 / 27.1 per call);
the stage took 172.3 s, 46 % of it generating. Below the 100 tok/s goal. For scale, plain HF
``generate`` of the same 16 x 64-token sampling outside trl: fp32 53.4 tok/s, fp32 with the
unmerged LoRA adapter 43.7 tok/s; the eval path reaches 131.8 tok/s at batch 20
(``eval_backends.py``). So trl's rollout call costs about 1.6x a plain generate of the same
adapter model on top of fp32 + unmerged LoRA; candidates: generate from a merged bf16 copy
synced each step (vLLM colocate's pattern), or trl's ``generation_kwargs``/``cache_implementation``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="smoke")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch
    import trl

    from harness.grid import load_grid
    from harness.zoo import materialize
    from trainers import train_stage

    if args.threads:
        torch.set_num_threads(args.threads)
    grid = load_grid(args.grid)
    config = {**grid.steps["grpo"], "max_steps": args.steps, "save_steps": 10_000}
    base = materialize(grid.models[0])

    calls: list[tuple[float, int, int]] = []  # (seconds, completion tokens, completions)
    original = trl.GRPOTrainer._generate_single_turn

    def timed(self, *a, **kw):
        t = time.perf_counter()
        out = original(self, *a, **kw)
        ids = out[0]
        calls.append((time.perf_counter() - t, sum(len(c) for c in ids), len(ids)))
        return out

    trl.GRPOTrainer._generate_single_turn = timed
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-grpo-rollouts-") as out:
        manifest = train_stage("grpo", config, base_model=base, parent=None, output_dir=Path(out))
    wall = time.perf_counter() - t0
    trl.GRPOTrainer._generate_single_turn = original

    seconds = sum(c[0] for c in calls)
    tokens = sum(c[1] for c in calls)
    print(f"grid {args.grid} grpo, {manifest['steps']} steps, torch threads {torch.get_num_threads()}")
    print(f"{'call':>4s} {'rollouts':>8s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>7s}")
    for i, (s, n, k) in enumerate(calls):
        print(f"{i:4d} {k:8d} {n:7d} {s:8.2f} {n / s:7.1f}")
    print(
        f"rollouts: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tok/s; "
        f"whole stage {wall:.1f} s (generation {seconds / wall:.0%})"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "grid": args.grid,
                    "steps": manifest["steps"],
                    "threads": torch.get_num_threads(),
                    "calls": [{"seconds": s, "tokens": n, "rollouts": k} for s, n, k in calls],
                    "tokens_per_s": tokens / seconds,
                    "stage_seconds": wall,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
