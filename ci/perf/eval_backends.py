"""Perf benchmark (not a test): generation tokens/s of eval backends and HF settings on the CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/eval_backends.py [--grid smoke] [--runs SPEC,...]
                                                               [--hf-threads N] [--json OUT]

The prompts are the grid's base eval cell's own requests: lm-eval builds them for the cell's tasks
and resolved settings (smoke: math_arith, causal_nli, think_quality at limit 10, chat template,
greedy, max_gen_toks 64) and they are answered through lm-eval's ``generate_until``, as a cell
answers them. Each run loads its backend as ``bench eval`` does (``harness.evaluate.build_lm``) and
may override HF settings: ``hf:bs=8:threads=2`` (batch size, torch threads), ``hf`` alone is the
code path as it stands, ``vllm`` the vLLM CPU engine (``make setup-vllm``, run with .venv-vllm).
Load is timed apart from generation, after one warm-up request. Tokens are the completions
re-tokenized with the model's tokenizer, as run records count them. CPU seconds are the process's
(all its threads): on a shared, loaded machine tokens per CPU second is the steadier figure, and
runs are compared as ratios of runs done back to back in one process. Every run's completions are
compared with the first run's (the reference): identical greedy completions / total.

Threads: vLLM's CPU worker binds one OpenMP thread per core but keeps one core for its scheduler.
OMP_WAIT_POLICY=PASSIVE is set before torch loads (``bench`` itself does not yet): spinning OpenMP workers
waiting on descheduled peers slow a loaded machine several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# the previous default (batch 8, torch's own thread count), then the code path as it stands
DEFAULT_RUNS = "hf:bs=8:threads=default,hf"


def parse_run(spec: str) -> dict:
    """``hf:bs=8:threads=2`` -> {"backend": "hf", "bs": 8, "threads": 2}; ``bs=auto`` stays a string,
    ``threads=default`` is torch's own count (one per core)."""
    backend, *opts = spec.split(":")
    run: dict = {"backend": backend, "spec": spec}
    for opt in opts:
        key, _, value = opt.partition("=")
        if key not in ("bs", "threads"):
            raise SystemExit(f"--runs {spec}: unknown option '{key}'; use bs=N|auto or threads=N")
        if value not in ("auto", "default") and not value.isdigit():
            raise SystemExit(f"--runs {spec}: {key}={value} is not a number; use {key}=N")
        run[key] = value if value in ("auto", "default") else int(value)
    return run


def base_request(grid_name: str, tasks: str | None = None, limit: int | None = None):
    """The grid's base eval cell as ``bench`` runs it (weights materialized from the zoo), with
    the grid's tasks and limit replaced when given."""
    from harness.evaluate import EvalRequest
    from harness.grid import expand, load_grid
    from harness.zoo import materialize

    grid = load_grid(grid_name, **({"limit": limit} if limit else {}))
    if tasks:
        grid = grid.model_copy(update={"tasks": tasks.split(",")})
    cell = next(c for c in expand(grid).eval if c.stage == "base")
    return EvalRequest.for_cell(cell, grid, materialize(cell.load), None, {})


def cell_requests(lm, req) -> list:
    """The ``generate_until`` requests lm-eval makes for ``req``'s tasks and settings, recorded by
    running ``simple_evaluate`` with generation replaced by empty answers."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from harness.taskinfo import resolve_tasks
    from tasks import TASKS_DIR

    s, seen = req.settings, []

    def record(requests, *args, **kwargs):
        seen.extend(requests)
        return [""] * len(requests)

    lm.generate_until = record
    try:
        lm_eval.simple_evaluate(
            model=lm,
            tasks=[t.name for t in resolve_tasks(req.tasks)],
            num_fewshot=s.num_fewshot,
            limit=s.limit,
            apply_chat_template=s.apply_chat_template,
            gen_kwargs=s.generation_kwargs(),
            task_manager=TaskManager(include_path=str(TASKS_DIR)),
            random_seed=req.seed,
            numpy_random_seed=req.seed,
            torch_random_seed=req.seed,
            fewshot_random_seed=req.seed,
            bootstrap_iters=0,
            verbosity="ERROR",
        )
    finally:
        del lm.generate_until  # the instance attribute: the class's method again
    return seen


def run_backend(run: dict, req, requests: list | None, torch_threads: int) -> dict:
    """Load one backend, answer one request for warm-up, then time all of them; stop vLLM's engine."""
    import dataclasses

    import torch

    from harness.evaluate import build_lm
    from harness.settings import ResolvedEval

    settings = ResolvedEval(**{**req.settings.model_dump(), "backend": run["backend"]})
    req = dataclasses.replace(
        req, settings=settings, **({"batch_size": run["bs"]} if "bs" in run else {})
    )
    torch.set_num_threads(torch_threads)  # what the previous run set does not carry over
    t0 = time.perf_counter()
    lm, dtype = build_lm(req)
    load_s = time.perf_counter() - t0
    if run["backend"] == "hf" and "threads" in run:
        torch.set_num_threads(torch_threads if run["threads"] == "default" else run["threads"])
    threads = (
        torch.get_num_threads() if run["backend"] == "hf" else None
    )  # vLLM's live in its worker
    requests = requests if requests is not None else cell_requests(lm, req)
    lm.generate_until(requests[:1], disable_tqdm=True)
    t0, c0 = time.perf_counter(), time.process_time()
    completions = lm.generate_until(requests, disable_tqdm=True)
    gen_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    tokens = sum(len(lm.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is not None:  # free its processes and KV cache now, not at interpreter exit
        engine.engine_core.shutdown()
    return {
        "spec": run["spec"],
        "dtype": dtype,
        "threads": threads,
        "batch_size": getattr(lm, "batch_size", None),
        "load_s": load_s,
        "gen_s": gen_s,
        "cpu_s": cpu_s,
        "tokens": tokens,
        "tokens_per_s": tokens / gen_s,
        "tokens_per_cpu_s": tokens / cpu_s,
        "completions": completions,
        "requests": requests,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--grid", default="smoke", help="grid whose base eval cell gives the prompts and settings"
    )
    ap.add_argument(
        "--tasks",
        help="comma list replacing the grid's tasks (issue 18: math_arith,causal_nli,think_quality)",
    )
    ap.add_argument("--limit", type=int, help="replaces the grid's eval limit")
    ap.add_argument(
        "--runs",
        default=DEFAULT_RUNS,
        help=f"comma list of backend[:bs=N|auto][:threads=N] (default {DEFAULT_RUNS})",
    )
    ap.add_argument(
        "--backends", help="comma list of backends as they stand (overrides --runs): hf,vllm"
    )
    ap.add_argument(
        "--hf-threads", type=int, help="torch threads for every hf run that does not set its own"
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from _results import Printed  # ci/perf/_results.py, beside this script

    runs = [parse_run(s) for s in (args.backends or args.runs).split(",")]
    for r in runs:
        if args.hf_threads and r["backend"] == "hf":
            r.setdefault("threads", args.hf_threads)
    import torch

    torch_threads = torch.get_num_threads()  # before build_lm may choose its own
    req = base_request(args.grid, args.tasks, args.limit)
    load_before = os.getloadavg()[0]
    done, requests = [], None
    lines = []
    for run in runs:
        r = run_backend(run, req, requests, torch_threads)
        done.append(r)
        requests, ref = (
            done[0]["requests"],
            done[0]["completions"],
        )  # every run answers the very same Instances
        r["identical"] = sum(a == b for a, b in zip(ref, r["completions"], strict=True))
        threads = f"{r['threads']} thr" if r["threads"] else "vLLM thr"
        lines.append(
            f"{r['spec']:>20} ({threads}, bs {r['batch_size']}): load {r['load_s']:5.1f} s | generate {r['gen_s']:6.1f} s"
            f" wall {r['cpu_s']:6.1f} s cpu | {r['tokens']:5d} tokens | {r['tokens_per_s']:6.1f} tok/s wall"
            f" {r['tokens_per_cpu_s']:6.1f} tok/cpu-s | x{r['tokens_per_s'] / done[0]['tokens_per_s']:.2f} wall"
            f" x{r['tokens_per_cpu_s'] / done[0]['tokens_per_cpu_s']:.2f} cpu | identical {r['identical']}/{len(ref)}"
        )
        print(lines[-1], flush=True)  # as it ends: a slow run's figures are not lost to a later one
    load_after = os.getloadavg()[0]
    s = req.settings
    out = Printed()
    out.say(
        f"\n{args.grid} base cell: {len(ref)} requests ({', '.join(req.tasks)}, limit {s.limit}, "
        f"{s.tag()}), {os.cpu_count()} CPUs, load average {load_before:.1f} -> {load_after:.1f}"
    )
    out.say("\n".join(lines))
    out.record(__file__, argv if argv is not None else sys.argv[1:])
    summary = {
        "grid": args.grid,
        "requests": len(ref),
        "cpus": os.cpu_count(),
        "loadavg": [load_before, load_after],
        "runs": [
            {k: v for k, v in r.items() if k not in ("completions", "requests")} for r in done
        ],
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":  # vLLM's CPU engine starts with the spawn method: the guard is required
    main()
