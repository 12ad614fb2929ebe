"""Perf benchmark (not a test): generation tokens/s of the hf and vllm eval backends on the CPU.

    .venv-vllm/bin/python ci/perf/eval_backends.py [--n 32] [--max-new 64] [--backends hf,vllm]
                                                  [--hf-threads N] [--json OUT]

Each backend is built exactly as ``bench eval`` builds it (``harness.evaluate.build_lm``, cpu target,
bundled SmolLM2-135M-Instruct) and given the same N math_arith prompts through lm-eval's
``generate_until``: chat template, greedy, at most MAX_NEW new tokens, stop at "Question:" or eos.
Load (model, plus vLLM's engine start) is timed apart from generation, after one warm-up prompt.
Tokens are the completions re-tokenized with the model's tokenizer, as run records count them.
Prints one line per backend, the vllm/hf ratio, how many completions agree, and the load average
before and after: on a shared machine the figures are only as steady as that.

Threads: vLLM's CPU worker binds one OpenMP thread per core but keeps one core for its scheduler
(1 thread on a 2-core machine); torch in the HF backend uses every core. When other processes
keep the cores busy, torch's OpenMP threads spin-wait on each other and a 2-thread HF run can be
several times slower than a 1-thread one: --hf-threads 1 compares like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"


def _weights() -> Path:
    try:
        from harness.zoo import materialize

        return materialize(MODEL)
    except Exception:  # the zoo cannot build it here: the converted copy the team shares
        return Path("/tmp/smol/out")


def _questions(n: int) -> list[str]:
    from tasks.math.utils import doc_to_text, load_arith_docs

    docs = load_arith_docs()["test"]  # the task's own generated items, levels interleaved
    return [doc_to_text(docs[i]) for i in range(n)]


def run_backend(backend: str, weights: Path, questions: list[str], max_new: int, hf_threads: int | None = None) -> dict:
    """Load one backend, generate once for warm-up, then time the batch; shut vLLM's engine down."""
    import torch
    from lm_eval.api.instance import Instance

    from harness.evaluate import EvalRequest, build_lm

    req = EvalRequest(cell_key="perf", model_id=MODEL, weights=weights, tasks=[], backend=backend, target="cpu")
    t0 = time.perf_counter()
    lm, dtype = build_lm(req, Path(tempfile.gettempdir()))
    load_s = time.perf_counter() - t0
    if backend == "hf" and hf_threads:
        torch.set_num_threads(hf_threads)
    threads = torch.get_num_threads() if backend == "hf" else None  # vLLM's live in its worker
    gen = {"until": ["Question:"], "do_sample": False, "max_gen_toks": max_new}
    prompts = [lm.apply_chat_template([{"role": "user", "content": q}]) for q in questions]

    def requests(ps):
        return [Instance("generate_until", {}, (p, dict(gen)), 0, ("perf", i, 1)) for i, p in enumerate(ps)]

    lm.generate_until(requests(prompts[:1]), disable_tqdm=True)
    t0 = time.perf_counter()
    completions = lm.generate_until(requests(prompts), disable_tqdm=True)
    gen_s = time.perf_counter() - t0
    tokens = sum(len(lm.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is not None:  # free its processes and KV cache now, not at interpreter exit
        engine.engine_core.shutdown()
    return {"backend": backend, "dtype": dtype, "threads": threads, "load_s": load_s, "gen_s": gen_s, "tokens": tokens,
            "tokens_per_s": tokens / gen_s, "completions": completions}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32, help="prompts (math_arith test docs 0..N-1)")
    ap.add_argument("--max-new", type=int, default=64, help="max new tokens per prompt")
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--hf-threads", type=int, help="torch threads for the hf backend (default: torch's)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    weights, questions = _weights(), _questions(args.n)
    load_before = os.getloadavg()[0]
    runs = {b: run_backend(b, weights, questions, args.max_new, args.hf_threads) for b in args.backends.split(",")}
    load_after = os.getloadavg()[0]
    print(f"\n{args.n} math_arith prompts, greedy, <= {args.max_new} new tokens, {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    for r in runs.values():
        threads = f"{r['threads']} threads" if r["threads"] else "vLLM's threads"
        print(f"{r['backend']:>5} ({threads}): load {r['load_s']:6.1f} s | generate {r['gen_s']:6.1f} s | "
              f"{r['tokens']:5d} tokens | {r['tokens_per_s']:7.1f} tokens/s")
    summary = {"n": args.n, "max_new": args.max_new, "cpus": os.cpu_count(), "loadavg": [load_before, load_after],
               "runs": {b: {k: v for k, v in r.items() if k != "completions"} for b, r in runs.items()}}
    if {"hf", "vllm"} <= runs.keys():
        ratio = runs["vllm"]["tokens_per_s"] / runs["hf"]["tokens_per_s"]
        same = sum(a == b for a, b in zip(runs["hf"]["completions"], runs["vllm"]["completions"], strict=True))
        print(f"vllm/hf tokens/s: {ratio:.2f}x | identical greedy completions: {same}/{args.n}")
        summary.update(ratio=ratio, identical=same)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":  # vLLM's CPU engine starts with the spawn method: the guard is required
    main()
