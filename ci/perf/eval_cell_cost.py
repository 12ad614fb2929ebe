"""Perf benchmark (not a test): a whole eval cell's cost against raw batched ``model.generate``.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/eval_cell_cost.py [--grid smoke] [--json OUT]

Cell: ``harness.evaluate.run_eval`` on the grid's base eval cell, as ``bench`` runs it; its cost is
the record's ``wall_s - load_s`` (lm-eval's task building, generation, scoring, the samples files).
Raw: the same prompts (the cell's own ``generate_until`` requests, recorded as in eval_backends.py),
in the same batches (per stop-string group, longest prompt first, the cell's batch size), through
``model.generate`` alone: left padding, greedy, the cell's token budget, stopping at the same
strings (transformers' ``stop_strings``) or eos. Raw runs first, then the cell, back to back in one
process; CPU seconds are the process's. Goal (issue 18): cell cost <= 1.10 x raw + 5 s.
Each run writes what it prints to ci/perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as eval_backends.py

from eval_backends import base_request, cell_requests  # noqa: E402 (this script's directory)


def raw_generate(model, tok, requests: list, batch_size: int, budget: int) -> list[str]:
    """Completions of ``requests`` by plain batched ``model.generate`` (see the module docstring)."""
    import torch

    groups: dict[tuple, list[str]] = {}
    for r in requests:
        context, gen = r.args
        groups.setdefault(tuple(gen.get("until") or ()), []).append(context)
    side, tok.padding_side = tok.padding_side, "left"
    out = []
    try:
        for until, contexts in groups.items():
            contexts.sort(key=lambda c: -len(tok(c, add_special_tokens=False)["input_ids"]))
            for i in range(0, len(contexts), batch_size):
                enc = tok(
                    contexts[i : i + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                with torch.no_grad():
                    ids = model.generate(
                        **enc,
                        max_new_tokens=budget,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        stop_strings=list(until) or None,
                        tokenizer=tok,
                        pad_token_id=tok.pad_token_id,
                    )
                out += tok.batch_decode(
                    ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
                )
    finally:
        tok.padding_side = side
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="smoke", help="grid whose base eval cell is measured")
    ap.add_argument("--tasks", help="comma list replacing the grid's tasks")
    ap.add_argument("--limit", type=int, help="replaces the grid's eval limit")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import harness.evaluate as evaluate

    req = base_request(args.grid, args.tasks, args.limit)
    lm, _ = evaluate.build_lm(req)
    requests = cell_requests(lm, req)
    budget = req.settings.max_gen_toks
    batch = lm.batch_size  # what build_lm chose for this cell
    raw_generate(
        lm.model, lm.tokenizer, requests[:1], 1, budget
    )  # warm-up, as the cell's first batch is not
    t0, c0 = time.perf_counter(), time.process_time()
    completions = raw_generate(lm.model, lm.tokenizer, requests, batch, budget)
    raw_s, raw_cpu = time.perf_counter() - t0, time.process_time() - c0
    raw_tokens = sum(
        len(lm.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions
    )
    del lm

    load_cpu = {}
    build = evaluate.build_lm

    def timed_build(*a, **k):  # the cell's load, in CPU seconds too
        c = time.process_time()
        try:
            return build(*a, **k)
        finally:
            load_cpu["s"] = time.process_time() - c

    evaluate.build_lm = timed_build
    with tempfile.TemporaryDirectory() as results:
        c0 = time.process_time()
        record = evaluate.run_eval(req, results)
        cell_cpu = time.process_time() - c0 - load_cpu["s"]
    evaluate.build_lm = build
    cost = record.wall_s - record.load_s
    ratio, goal = cost / raw_s, 1.10 * raw_s + 5
    from _results import Printed  # ci/perf/_results.py, beside this script

    out = Printed()
    out.say(
        f"\n{args.grid} base cell: {len(requests)} requests ({', '.join(req.tasks)}, {req.settings.tag()}), "
        f"batch {batch}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    out.say(
        f"raw model.generate: {raw_s:6.1f} s wall {raw_cpu:6.1f} s cpu | {raw_tokens} tokens | "
        f"{raw_tokens / raw_s:.1f} tok/s"
    )
    out.say(
        f"eval cell (wall - load): {cost:6.1f} s wall {cell_cpu:6.1f} s cpu | load {record.load_s:.1f} s | "
        f"record {record.tokens_per_s:.1f} tok/s"
    )
    out.say(
        f"cell / raw: {ratio:.2f}x wall, {cell_cpu / raw_cpu:.2f}x cpu | goal cost <= 1.10 x raw + 5 s = {goal:.1f} s: "
        f"{'met' if cost <= goal else 'MISSED'}"
    )
    out.record(__file__, argv if argv is not None else sys.argv[1:])
    summary = {
        "grid": args.grid,
        "requests": len(requests),
        "batch_size": batch,
        "raw_s": raw_s,
        "raw_cpu_s": raw_cpu,
        "raw_tokens": raw_tokens,
        "cell_s": cost,
        "cell_cpu_s": cell_cpu,
        "load_s": record.load_s,
        "record_tokens_per_s": record.tokens_per_s,
        "ratio": ratio,
        "goal_s": goal,
        "met": cost <= goal,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
