"""Perf benchmark (not a test): the cost of bench's multiple-choice (loglikelihood) path against
lm-eval's own CLI on the same requests; the goal is a ratio <= 1.05 in wall and CPU time.

    HF_HUB_OFFLINE=1 .venv/bin/python ci/perf/mc_cost.py [--limit 100] [--rounds 1]

Both commands score ARC-Easy (test split from the data mirror, no chat template, batch 32, the
bundled smollm2-135m-instruct in float32), each in a fresh process, start to exit: model load,
lm-eval's task index (one ~14k-YAML index in each) and the loglikelihood requests. lm_eval reads
the mirror's files through arc_easy's own YAML (an include_path), as bench does offline. Each
round runs bench then lm_eval then lm_eval then bench (ABBA), so a machine whose load drifts
charges both sides alike. CPU time is the children's user+system time (getrusage). Each run
writes what it prints to ci/perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"


def _include(folder: Path, mirror: Path) -> Path:
    import lm_eval

    easy = mirror / "allenai" / "ai2_arc" / "ARC-Easy"
    builtin = Path(lm_eval.__file__).parent / "tasks" / "arc" / "arc_easy.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arc_easy_mirror.yaml").write_text(
        f"include: {builtin}\ntask: arc_easy_mirror\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {easy / 'test.jsonl'}\n"
        f"    validation: {easy / 'validation.jsonl'}\ntraining_split: null\n"
    )
    return folder


def _timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{cmd[2]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    from _results import Printed  # ci/perf/_results.py, beside this script

    from bench_core.mirror import data_dir
    from harness.zoo import materialize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=100, help="ARC-Easy questions (x4 requests)")
    ap.add_argument("--rounds", type=int, default=1, help="ABBA rounds")
    args = ap.parse_args()
    mirror = data_dir()
    if mirror is None or not (mirror / "allenai/ai2_arc/ARC-Easy/test.jsonl").is_file():
        sys.exit("no ARC-Easy in the data mirror: set BENCH_DATA_DIR (bench data pull arc_easy)")
    weights = materialize(MODEL)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mc-cost-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_DATA_DIR": str(mirror)}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    limit, batch = str(args.limit), "32"
    bench = [sys.executable, "-m", "harness.cli", "eval", "--model", MODEL, "--tasks", "arc_easy"]
    bench += ["--limit", limit, "--batch-size", batch, "--no-chat-template"]
    lm = [sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--tasks", "arc_easy_mirror"]
    lm += ["--model_args", f"pretrained={weights},dtype=float32", "--num_fewshot", "0"]
    lm += ["--include_path", str(_include(tmp / "tasks", mirror)), "--limit", limit]
    lm += ["--batch_size", batch, "--output_path", str(tmp / "lm_eval")]
    totals = {"bench": [0.0, 0.0], "lm_eval": [0.0, 0.0]}
    out = Printed()
    n = 0
    for _ in range(args.rounds):
        for name in ("bench", "lm_eval", "lm_eval", "bench"):
            n += 1
            cmd = bench + ["--results", str(tmp / f"bench{n}")] if name == "bench" else lm
            wall, cpu = _timed(cmd, env, ROOT)
            totals[name][0] += wall
            totals[name][1] += cpu
            out.say(f"{name:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s")
    (bw, bc), (lw, lc) = totals["bench"], totals["lm_eval"]
    out.say(
        f"ARC-Easy, {args.limit} questions ({4 * args.limit} requests, ~4 per question), "
        f"{args.rounds} ABBA round(s)"
    )
    out.say(f"bench / lm_eval: wall {bw / lw:.3f}, cpu {bc / lc:.3f} (goal <= 1.05)")
    out.record(__file__, sys.argv[1:])


if __name__ == "__main__":
    main()
