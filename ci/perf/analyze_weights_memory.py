"""Perf benchmark (not a test): peak RSS of `bench analyze weights` against the streaming bound.

    .venv/bin/python ci/perf/analyze_weights_memory.py [--gb 2] [--tensors 8] [--dir DIR]

Writes two synthetic bf16 checkpoints of --gb GB each (--tensors equal tensors, one shard
per tensor with model.safetensors.index.json; B changes a seeded 10 % of A's elements),
then analyses them in a fresh process and prints its peak RSS (ru_maxrss) against the
goal: the two largest tensors + 1.5 GB. Writer and analyser are separate processes, so
the figure is the analysis's own high-water mark.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GB = 1024**3

_WRITE = """
import json, sys, torch
from pathlib import Path
from safetensors.torch import save_file
root, n, numel = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
g = torch.Generator().manual_seed(0)
rows = 4096
for side in ("a", "b"):
    (root / side).mkdir(parents=True, exist_ok=True)
weight_map = {}
for i in range(n):
    name = f"model.layers.{i}.mlp.down_proj.weight"
    w = torch.randn(rows, numel // rows, generator=g).to(torch.bfloat16)
    f = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
    save_file({name: w}, str(root / "a" / f))
    mask = torch.rand(w.shape, generator=g) < 0.1
    w += mask.to(torch.bfloat16) * 0.01  # a sparse update, visible in bf16 at this scale
    save_file({name: w}, str(root / "b" / f))
    weight_map[name] = f
    del w, mask
for side in ("a", "b"):
    (root / side / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
"""

_ANALYSE = """
import json, resource, sys, time
from leaderboards.weights import compare_weights
t0 = time.perf_counter()
d = compare_weights(sys.argv[1], sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "summary": d.summary()}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0, help="size of each checkpoint")
    p.add_argument("--tensors", type=int, default=8)
    p.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir, removed)"
    )
    args = p.parse_args()
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-analyze-mem-"))
    numel = int(args.gb * GB / 2 / args.tensors) // 4096 * 4096
    try:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _WRITE, str(root), str(args.tensors), str(numel)], check=True
        )
        written = time.perf_counter() - t0
        out = subprocess.run(
            [sys.executable, "-c", _ANALYSE, str(root / "a"), str(root / "b")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        res = json.loads(out.strip().splitlines()[-1])
        largest = 2 * numel * 2  # two bf16 tensors
        bound = largest + 1.5 * GB
        peak = res["peak_rss_kb"] * 1024
        out.say(
            f"checkpoints: 2 x {args.tensors} x {numel * 2 / GB:.3f} GB bf16 = 2 x {args.tensors * numel * 2 / GB:.2f} GB "
            f"(written in {written:.0f}s)"
        )
        out.say(
            f"analysis: {res['seconds']:.1f}s, {2 * args.tensors * numel * 2 / GB / res['seconds']:.2f} GB/s read"
        )
        out.say(
            f"sparsity@0 = {res['summary']['sparsity']['0']:.4f} (expected ~0.90), rel_norm = {res['summary']['rel_norm']:.5f}"
        )
        out.say(
            f"peak RSS {peak / GB:.2f} GB vs bound {bound / GB:.2f} GB (two largest tensors {largest / GB:.2f} GB + 1.5 GB): "
            f"{'within' if peak <= bound else 'OVER'}"
        )
        out.record(__file__, sys.argv[1:])
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
