"""Training throughput (tokens/s) of SFT with and without packing on the bundled model.

A benchmark script, not a test: it prints one line per setting and the speed-up, and writes
them to ci/perf/RESULTS.md.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/train_throughput.py [--steps 5] [--max-length 512]

The data mixes short generated-arithmetic traces with long GSM8K traces (when the local
GSM8K file exists), the case where padding wastes the most: padded batches run to their
longest row, packed ones fill ``max_length`` blocks with no pad tokens (padding-free
batches, position ids reset per sequence). Tokens counted are real (non-pad) tokens.

Three settings at the same effective batch: padded rows; packed rows flattened into one
padding-free row per forward (what flash-attention's varlen kernels want, and what sdpa
pays for with a dense mask over the whole flat row); and one packed row per forward with
gradient accumulation (the trainer's choice without flash-attention).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _rows(n_arith: int, n_gsm8k: int) -> list[dict]:
    from trainers.data import trace_rows

    rows = trace_rows("arithmetic", 7, levels="2,4", n_per_level=n_arith // 2)
    try:
        rows += trace_rows("gsm8k", 7, n_gsm8k=n_gsm8k)
    except (FileNotFoundError, ValueError, ImportError, OSError):
        pass  # offline without the local file: arithmetic only
    return rows


def _train(config: dict, model: Path, output_dir: Path) -> dict:
    from trainers import train_stage

    return train_stage("sft", config, base_model=model, parent=None, output_dir=output_dir)


def main(argv: list[str] | None = None) -> dict[str, float]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--model", default="smollm2-135m-instruct")
    args = p.parse_args(argv)

    from _results import Printed  # ci/perf/_results.py, beside this script

    from harness.zoo import materialize

    out = Printed()
    model = materialize(args.model)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mix.jsonl"
        rows = _rows(n_arith=256, n_gsm8k=64)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        out.say(
            f"model {args.model}  rows {len(rows)}  steps {args.steps}  batch {args.batch}  max_length {args.max_length}"
        )
        settings = {
            "padding": (False, args.batch),
            "packed, flattened": (True, args.batch),
            "packed, 1 row/forward": (True, None),
        }
        for i, (name, (packing, per_device)) in enumerate(settings.items()):
            t0 = time.time()
            # A fresh process per setting: peak RSS is a process-lifetime high-water mark,
            # so settings run in one process would inherit each other's peaks.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                m = pool.submit(
                    _train,
                    {
                        "dataset": str(data),
                        "packing": packing,
                        "max_steps": args.steps,
                        "effective_batch": args.batch,
                        "per_device_batch": per_device,
                        "max_length": args.max_length,
                        "save_steps": 10_000,
                        "learning_rate": 1e-4,
                    },
                    model,
                    Path(tmp) / f"setting-{i}",
                ).result()
            results[name] = m.tokens_per_s
            out.say(
                f"{name:22s} tokens/s {m.tokens_per_s:8.1f}  tokens {m.tokens:7d}  "
                f"final loss {m.final_loss:.3f}  peak RSS {m.peak_memory_gb['after_train']:.2f} GB  "
                f"stage wall {time.time() - t0:.1f} s"
            )
    for name in list(settings)[1:]:
        out.say(f"speed-up over padding, {name}: {results[name] / results['padding']:.2f}x")
    out.record(__file__, argv if argv is not None else sys.argv[1:])
    return results


if __name__ == "__main__":
    main()
