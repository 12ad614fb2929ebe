"""Planned against measured peak memory of every method on the bundled model (CPU).

A benchmark, not a test: one line per method (sft, distill, dpo, grpo) and one for an eval
cell, each run in a fresh spawned process whose peak RSS (``VmHWM``) is the measurement. The
plan is ``trainers.planner.plan_config`` for target ``cpu`` on the stage's resolved config
(what ``bench plan`` shows, at the batch the stage runs); the eval line's is :func:`_plan_eval`.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/plan_vs_measured.py [--steps 2] [--only grpo]

distill and grpo take the smoke grid's settings (``harness/grids/smoke.yaml``), the eval
cell the smoke grid's eval of the base model; sft and dpo the same sequence length and
batch on generated arithmetic. Goal: measured within 25 % of planned, every smoke stage
under 3 GB. Memory figures do not depend on the machine's load; times do. Each run writes
its table to ci/perf/RESULTS.md.
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

MODEL = "smollm2-135m-instruct"
GOAL_RATIO = 0.25
GOAL_GB = 3.0


def _peak_rss_gb() -> float:
    from bench_core.memory import peak_rss_bytes

    return peak_rss_bytes() / 1e9


def _configs(tmp: Path, steps: int) -> dict[str, dict]:
    import yaml

    from trainers.data import trace_rows

    smoke = yaml.safe_load(Path("harness/grids/smoke.yaml").read_text())["steps"]
    data = tmp / "sft.jsonl"
    rows = trace_rows("arithmetic", 1, levels="2", n_per_level=64)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    short = {"max_steps": steps, "save_steps": 10_000}
    return {
        "sft": {
            "dataset": str(data),
            "packing": False,
            "max_length": 256,
            "effective_batch": 8,
            **short,
        },
        "distill": {**smoke["distill"], **short},
        "dpo": {
            "levels": "2",
            "n_prompts": 8,
            "samples_per_prompt": 2,
            "sample_max_new_tokens": 32,
            "max_length": 256,
            "effective_batch": 8,
            **short,
        },
        "grpo": {**smoke["grpo"], **short},
    }


def _train(method: str, config: dict, out: str) -> dict:
    from harness.zoo import materialize
    from trainers import resolved_config, train_stage
    from trainers.planner import plan_config

    t0 = time.perf_counter()
    model = materialize(MODEL)
    planned = plan_config(model, method, "cpu", resolved_config(method, config))
    train_stage(method, config, base_model=model, parent=None, output_dir=out)
    return {
        "planned_gb": planned.total_gb,
        "measured_gb": _peak_rss_gb(),
        "batch": f"{planned.per_device_batch}x{planned.grad_accum}",
        "s": time.perf_counter() - t0,
    }


def _plan_eval(model: Path, batch: int, seq: int) -> float:
    """An HF eval cell (fp32 on CPU): the process (the train plans' host overhead), the weights,
    the KV cache of a generation batch at ``seq`` tokens, and the prefill's activations of one
    layer and its last-position logits."""
    from trainers.planner import HOST_OVERHEAD_GB, model_facts

    f, b = model_facts(model), 4
    kv = 2 * f.num_layers * f.hidden_size * f.kv_ratio * seq * batch * b
    layer = batch * seq * b * (4 * f.hidden_size + 2 * f.mlp_size)
    logits = batch * (f.vocab_size or 32000) * 4
    return HOST_OVERHEAD_GB + (f.params * b + kv + layer + logits) / 1e9


def _longest_prompt(samples: Path, model: Path) -> int:
    """Tokens of the cell's longest prompt (lm-eval pads a generation batch to its longest
    context): the eval's KV cache is sized from it, as a planner that sees the prompts would."""
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    def context(arguments: str) -> str:  # the samples' prompt: lm-eval's request arguments
        value = json.loads(arguments)
        while isinstance(value, list):  # generate_until: [[context, gen_kwargs]]
            value = value[0]
        return value

    tok = AutoTokenizer.from_pretrained(model)
    prompts = [p for f in samples.glob("*.parquet") for p in pq.read_table(f)["prompt"].to_pylist()]
    return max(len(tok(context(p), add_special_tokens=False)["input_ids"]) for p in prompts)


def _eval(results: str) -> dict:
    from harness.runner import plan_grid, run_cell
    from harness.zoo import materialize

    t0 = time.perf_counter()
    plan = plan_grid("smoke", Path(results), kind="eval", only="*/base")
    (cell,) = plan.todo
    outcome = run_cell(cell, plan.expansion, results, reraise=True)
    assert outcome.ok, outcome
    ev = plan.grid.eval
    prompt = _longest_prompt(Path(results) / "samples" / cell.key, materialize(MODEL))
    planned = _plan_eval(materialize(MODEL), ev.batch_size, prompt + ev.max_gen_toks)
    return {
        "planned_gb": planned,
        "measured_gb": _peak_rss_gb(),
        "batch": str(ev.batch_size),
        "s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> dict[str, dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--only", default="", help="comma-separated: sft,distill,dpo,grpo,eval")
    args = p.parse_args(argv)
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    rows: dict[str, dict] = {}
    out.say(
        f"{'cell':8s} {'batch':>6s} {'planned GB':>10s} {'measured GB':>11s} {'ratio':>6s}  goal"
    )
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            m: (_train, (m, c, f"{tmp}/{m}")) for m, c in _configs(Path(tmp), args.steps).items()
        }
        jobs["eval"] = (_eval, (f"{tmp}/results",))
        for name, (fn, fn_args) in jobs.items():
            if args.only and name not in args.only.split(","):
                continue
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:  # a fresh process: its own peak
                r = pool.submit(fn, *fn_args).result()
            r["ratio"] = r["measured_gb"] / r["planned_gb"]
            ok = abs(r["ratio"] - 1) <= GOAL_RATIO and r["measured_gb"] < GOAL_GB
            rows[name] = r
            out.say(
                f"{name:8s} {r['batch']:>6s} {r['planned_gb']:10.2f} {r['measured_gb']:11.2f} "
                f"{r['ratio']:6.2f}  {'ok' if ok else 'MISSED'}  ({r['s']:.0f} s)"
            )
    out.record(__file__, argv if argv is not None else sys.argv[1:])
    return rows


if __name__ == "__main__":
    main()
