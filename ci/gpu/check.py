"""The checks of ci/gpu/check.sh (run by it, in .venv-gpu): one JSON report per call.

Each check goes through the project's entry points (trainers.train_stage, trainers.model,
harness.api), on models built here from the bundled model's config and tokenizer: ``tiny``
(2 layers, hidden 64: the zoo's tiny-random-llama) and ``small`` (SmolLM2-135M's shape, random
weights). fp16 runs under the rtx2080ti target (Turing's dtype, GradScaler), bf16 under h100.
A check that needs an optional piece (vLLM, flash-attn) is skipped, or checks the fallback.

    python ci/gpu/check.py train|eval --report R.json --model-files DIR [--cpu-rehearsal]

``--cpu-rehearsal`` runs the same plumbing on the CPU target (no CUDA needed; the QLoRA and
vLLM checks then fail or skip as the CPU allows): a way to try a change before GPU time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = (
    "torch transformers peft accelerate trl bitsandbytes datasets lm-eval duckdb pyarrow "
    "flash-attn vllm"
).split()
# what the checks import beyond the machine's torch/transformers/peft/accelerate
NEEDED = {"train": ["trl", "datasets", "bitsandbytes"], "eval": ["lm_eval", "duckdb", "datasets"]}

DISTILL = {
    "levels": "2",
    "n_per_level": 32,
    "max_steps": 4,
    "effective_batch": 4,
    "per_device_batch": 4,
    "max_length": 256,
    "packing": False,
    "save_steps": 100,
    "lora_r": 8,
    "learning_rate": 1e-3,
}
GRPO = {
    "levels": "2",
    "n_prompts": 4,
    "num_generations": 4,
    "max_completion_length": 32,
    "max_steps": 1,
    "effective_batch": 8,
    "per_device_batch": 8,
    "max_length": 256,
    "save_steps": 100,
    "lora_r": 8,
}


class Skip(Exception):
    """An optional piece is absent: the check is skipped, not failed."""


class Checks:
    def __init__(self, work: Path, model_files: Path, rehearsal: bool):
        import torch

        self.torch = torch
        self.work = work
        self.model_files = model_files
        self.cuda = torch.cuda.is_available() and not rehearsal
        self.fp16 = "rtx2080ti" if self.cuda else "cpu"
        self.bf16 = "h100" if self.cuda else "cpu"
        self.results: list[dict] = []
        self._models: dict[str, Path] = {}

    # --- models, built once per run ------------------------------------------------------
    def model(self, name: str) -> Path:
        if name not in self._models:
            out = self.work / "models" / name
            out.mkdir(parents=True)
            if name == "tiny":
                from harness.zoo import build_tiny, get_model

                build_tiny(get_model("tiny-random-llama"), out, self.model_files)
            else:
                from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

                self.torch.manual_seed(0)
                config = AutoConfig.from_pretrained(self.model_files)
                AutoModelForCausalLM.from_config(config, dtype=self.torch.float32).save_pretrained(
                    out
                )
                AutoTokenizer.from_pretrained(self.model_files).save_pretrained(out)
            self._models[name] = out
        return self._models[name]

    # --- running one check ---------------------------------------------------------------
    def run(self, name: str, fn) -> None:
        torch = self.torch
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        entry: dict = {"name": name}
        try:
            entry.update(fn() or {})
            entry["status"] = "pass"
        except Skip as e:
            entry.update(status="skip", reason=str(e))
        except Exception as e:  # recorded, and the next check runs
            entry.update(
                status="fail",
                error=f"{type(e).__name__}: {e}"[:1000],
                traceback=traceback.format_exc()[-4000:],
            )
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        if self.cuda:
            entry["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
        self.results.append(entry)
        print(f"check {name}: {entry['status']} ({entry['seconds']} s)", entry.get("error", ""))

    def train(self, method: str, model: str, target: str, **config) -> dict:
        from trainers import train_stage

        base = {"distill": DISTILL, "grpo": GRPO}[method]
        out = self.work / f"{method}-{model}-{target}-{len(self.results)}"
        manifest = train_stage(
            method,
            {**base, **config},
            base_model=self.model(model),
            parent=None,
            output_dir=out,
            target=target,
        )
        losses = manifest.losses
        if manifest.steps != config.get("max_steps", base["max_steps"]):
            raise AssertionError(f"trained {manifest.steps} steps")
        if not all(math.isfinite(x) for x in losses):
            raise AssertionError(f"non-finite loss: {losses}")
        measured = (
            self.torch.cuda.max_memory_allocated() / 1e9 if self.cuda else None
        )  # this process, this check
        return {
            "target": target,
            "mode": manifest.mode,
            "steps": manifest.steps,
            "losses": [round(x, 4) for x in losses],
            "tokens_per_s": manifest.tokens_per_s,
            "planned_memory_gb": manifest.planned_memory_gb,
            "peak_memory_gb": manifest.peak_memory_gb,
            "measured_peak_allocated_gb": round(measured, 3) if measured is not None else None,
            "stage_dir": str(out),
        }

    # --- the checks ----------------------------------------------------------------------
    def qlora(self, target: str):
        def check():
            got = self.train("distill", "tiny", target, mode="qlora", max_steps=2)
            if not _lora_b_moved(Path(got["stage_dir"])):
                raise AssertionError("the adapter did not move: every lora_B is still zero")
            return got

        return check

    def lora(self, target: str):
        def check():
            got = self.train("distill", "small", target)
            planned, measured = got["planned_memory_gb"], got["measured_peak_allocated_gb"]
            if measured is not None and not (planned and measured <= planned):
                raise AssertionError(f"measured peak {measured} GB above the plan's {planned} GB")
            return got

        return check

    def attention(self):
        from transformers.utils import is_flash_attn_2_available

        from trainers.model import load_model

        model, tok = load_model(self.model("small"), target=self.bf16)
        want = "flash_attention_2" if self.cuda and is_flash_attn_2_available() else "sdpa"
        got = model.config._attn_implementation
        if got != want:
            raise AssertionError(f"attention {got}, expected {want}")
        prompt = tok(["What is 12+35?"] * 8, return_tensors="pt").to(model.device)
        t0 = time.perf_counter()
        out = model.generate(**prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False)
        if self.cuda:
            self.torch.cuda.synchronize()
        new = (out.shape[1] - prompt["input_ids"].shape[1]) * out.shape[0]
        return {
            "attn_implementation": got,
            "dtype": str(model.dtype),
            "generate_tokens_per_s": round(new / (time.perf_counter() - t0), 1),
        }

    def grpo(self, vllm: bool):
        def check():
            if vllm and importlib.util.find_spec("vllm") is None:
                raise Skip("vLLM is not installed")
            return self.train("grpo", "tiny", self.bf16, use_vllm="true" if vllm else "false")

        return check

    def eval(self, model: str, target: str, backend: str = "hf"):
        def check():
            if backend == "vllm" and importlib.util.find_spec("vllm") is None:
                raise Skip("vLLM is not installed")
            return self._eval(model, target, backend)

        return check

    def _eval(self, model: str, target: str, backend: str, limit: int = 8) -> dict:
        from harness.api import eval_model
        from leaderboards.samples import read_samples

        results = self.work / f"results-{backend}-{target}"
        rec = eval_model(
            checkpoint=self.model(model),
            tasks=["math_arith"],
            backend=backend,
            limit=limit,
            max_gen_toks=32,
            target=target,
            results=results,
        )
        task = rec.tasks[0]
        rows = read_samples(results / task.samples_file).to_pylist()
        if len(rows) != limit:
            raise AssertionError(f"{len(rows)} sample rows for limit {limit}")
        return {
            "target": target,
            "backend": backend,
            "dtype": rec.dtype,
            "value": task.metrics[task.primary_metric].value,
            "tokens_per_s": rec.tokens_per_s,
            "completions": {r["doc_id"]: r["completion"] for r in rows},
        }

    def agreement(self):
        if importlib.util.find_spec("vllm") is None:
            raise Skip("vLLM is not installed")
        hf = self._eval("small", self.bf16, "hf")["completions"]
        vl = self._eval("small", self.bf16, "vllm")["completions"]
        same = sum(vl.get(d) == c for d, c in hf.items())
        if same < len(hf) - 2:  # bf16 kernels differ between the engines: a near-tie may flip
            raise AssertionError(f"only {same}/{len(hf)} greedy completions equal")
        return {"equal": same, "of": len(hf)}

    def train_then_vllm_eval(self):
        if importlib.util.find_spec("vllm") is None:
            raise Skip("vLLM is not installed")
        from harness.api import run_grid

        grid = self.work / "gpu-train-eval.yaml"
        grid.write_text(
            json.dumps(
                {
                    "name": "gpu-train-eval",
                    "models": [str(self.model("tiny"))],
                    "recipes": [["distill"]],
                    "steps": {"distill": {**DISTILL, "max_steps": 2}},
                    "tasks": ["math_arith"],
                    "eval": {"backend": "vllm", "limit": 4, "max_gen_toks": 16},
                    "target": self.bf16,
                    "seed": 0,
                }
            )
        )
        plan, outcome = run_grid(str(grid), results=self.work / "results-grid")
        bad = {k: f"{o.status}: {o.detail}" for k, o in outcome.items() if not o.ok}
        if bad or {c.kind for c in plan.todo} != {"train", "eval"}:
            raise AssertionError(f"cells not done: {bad}")
        return {"cells": len(outcome)}


def _lora_b_moved(stage_dir: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(str(next((stage_dir / "adapter").glob("*.safetensors"))))
    return any(v.abs().sum().item() > 0 for k, v in weights.items() if "lora_B" in k)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False}
    props = torch.cuda.get_device_properties(0)
    return {
        "cuda": torch.version.cuda,
        "name": props.name,
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "memory_gb": round(props.total_memory / 2**30, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "eval"])
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--model-files", type=Path, required=True)
    p.add_argument("--cpu-rehearsal", action="store_true")
    args = p.parse_args()
    missing = [m for m in NEEDED[args.mode] if importlib.util.find_spec(m) is None]
    if missing or not (args.model_files / "config.json").exists():
        print(
            f"ci/gpu/check.sh {args.mode}: missing {', '.join(missing) or 'model files'}; "
            "carry every ci/gpu/wheels/partK once with `check.sh install` (ci/gpu/wheels.sh)",
            file=sys.stderr,
        )
        return 2
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    checks = Checks(work, args.model_files, args.cpu_rehearsal)
    if args.mode == "train":
        checks.run("qlora_fp16", checks.qlora(checks.fp16))
        checks.run("qlora_bf16", checks.qlora(checks.bf16))
        checks.run("lora_fp16_plan_vs_peak", checks.lora(checks.fp16))
        checks.run("lora_bf16_plan_vs_peak", checks.lora(checks.bf16))
        checks.run("bf16_attention_generate", checks.attention)
        checks.run("grpo_hf_rollouts_bf16", checks.grpo(vllm=False))
        checks.run("grpo_vllm_colocate_bf16", checks.grpo(vllm=True))
    else:
        checks.run("eval_hf_fp16", checks.eval("tiny", checks.fp16))
        checks.run("eval_hf_bf16", checks.eval("small", checks.bf16))
        checks.run("hf_vs_vllm_greedy_bf16", checks.agreement)
        checks.run("train_then_vllm_eval_one_run", checks.train_then_vllm_eval)
    failed = [c["name"] for c in checks.results if c["status"] == "fail"]
    report = {
        "mode": args.mode,
        "created_at": datetime.now(UTC).isoformat(),
        "ok": not failed,
        "failed": failed,
        "wall_s": round(time.perf_counter() - t0, 1),
        "rehearsal_on_cpu": args.cpu_rehearsal,
        "device": device(),
        "versions": versions(),
        "checks": checks.results,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"ci/gpu/check.sh {args.mode}: {len(checks.results) - len(failed)}/{len(checks.results)}"
        f" not failed, report {args.report}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
