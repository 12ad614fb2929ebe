"""Evaluate one model or checkpoint on several tasks in ONE lm-eval call (the model loads once).

Writes the cell's run record (atomic JSON) and one Parquet file of per-sample rows per task.
The lm-eval model comes from the cell's backend (``harness.backends.BACKENDS``).
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.backends import backend
from harness.settings import ResolvedEval
from leaderboards.record import MetricValue, RunRecord, TaskResult, write_record
from leaderboards.samples import samples_path, write_samples

__all__ = ["EvalRequest", "run_eval", "parse_results", "build_lm"]


@dataclass(kw_only=True)
class EvalRequest:
    """One eval cell's work: what to load, which tasks, with which resolved settings."""

    cell_key: str
    model_id: str  # the leaderboard row's model
    weights: Path  # a model directory or a stage directory
    tasks: list[str]
    settings: ResolvedEval
    stage: str = "base"
    grid: str | None = None
    recipe: list[str] = field(default_factory=list)
    batch_size: int | str = 8
    target: str = "cpu"
    seed: int = 0
    model_revision: str | None = None
    trust_remote_code: bool = False
    method_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_key: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    weights_key: str | None = None
    parent_weights: str | None = None
    base_weights: str | None = None
    parent_stage: str | None = None

    @classmethod
    def for_cell(
        cls, cell, grid, weights: Path, revision: str | None, method_configs: dict
    ) -> EvalRequest:
        """The request of a planned eval cell (harness.grid.EvalCell): the one place it is built."""
        return cls(
            cell_key=cell.key,
            model_id=cell.model,
            weights=weights,
            tasks=[t for t, _ in cell.tasks],
            settings=cell.settings,
            stage=cell.stage,
            grid=grid.name,
            recipe=list(cell.recipe),
            batch_size=grid.eval.batch_size,
            target=grid.target,
            seed=grid.seed,
            model_revision=revision,
            trust_remote_code=cell.trust_remote_code,
            method_configs=method_configs,
            parent_key=cell.train_key,
            inputs=cell.inputs,
            weights_key=cell.weights,
            parent_weights=cell.parent_weights,
            base_weights=cell.base_weights,
            parent_stage=cell.parent_stage,
        )


def _task_manager(repeats: int = 1, builtin: bool = False, num_fewshot: int = 0):
    from lm_eval.tasks import TaskManager

    from harness.lmeval_tasks import builtin_manager_class
    from tasks import TASKS_DIR

    base = builtin_manager_class(TaskManager, num_fewshot) if builtin else TaskManager

    class Repeating(base):
        """Sets every loaded task's ``repeats`` (samples per prompt) from the resolved settings."""

        def load(self, *args, **kwargs):
            loaded = super().load(*args, **kwargs)
            if repeats > 1:
                for task in loaded["tasks"].values():
                    task.set_config(key="repeats", value=repeats)
            return loaded

    # lm-eval's ~14k built-in YAMLs only when a cell names one of them: indexing costs ~50 s per
    # process, so the index resolve_tasks already built is reused rather than built a second time.
    tm = Repeating(include_path=str(TASKS_DIR), include_defaults=False)
    if builtin:
        from harness.lmeval_tasks import with_builtin_index

        with_builtin_index(tm)
    return tm


THINK_OPEN = "<think>"


def _keep_prompt_opener(lm) -> None:
    """Reasoning as the model emits it: when the chat template ends the prompt with ``<think>``
    (DeepSeek-R1 distills), the completion continues inside the reasoning block, so the opener
    is put back in front of it before any verifier reads it (not when lm-eval already cut the
    reasoning off at ``think_end_token``)."""
    generate = lm.generate_until

    def generate_until(requests, *args, **kwargs):
        outs = generate(requests, *args, **kwargs)
        if getattr(lm, "think_end_token", None):
            return outs
        return [
            THINK_OPEN + out if _opens_thinking(req.args[0]) and THINK_OPEN not in out else out
            for req, out in zip(requests, outs, strict=True)
        ]

    lm.generate_until = generate_until


def _report_requests(lm) -> None:
    """The live view's "generating j/m requests": m from each generate_until call, j from the
    model's batched generate calls (vLLM answers a call at once, so j jumps to m).

    Each wrapper keeps the wrapped method's signature and forwards its arguments untouched: the HF
    model calls ``_model_generate(context, max_length, stop, ...)``, lm-eval's vLLM model calls
    ``_model_generate(requests=..., generate=..., sampling_params=...)`` with keywords (and with
    ``generate=False`` for log-likelihoods, which are not generation progress)."""
    from harness._live import report

    generate = lm.generate_until
    batched = getattr(lm, "_model_generate", None)
    state = {"done": 0, "total": 0, "active": False}

    @functools.wraps(generate)
    def generate_until(*args, **kwargs):
        n = len(_first_argument(generate, args, kwargs))
        state.update(done=0, total=n, active=True)
        report(f"generating 0/{n} requests")
        try:
            outs = generate(*args, **kwargs)
        finally:
            state["active"] = False
        report(f"generating {n}/{n} requests")
        return outs

    def model_generate(*args, **kwargs):
        out = batched(*args, **kwargs)
        if state["active"]:
            batch = _first_argument(batched, args, kwargs)
            state["done"] = min(state["done"] + len(batch), state["total"])
            report(f"generating {state['done']}/{state['total']} requests")
        return out

    lm.generate_until = generate_until
    if batched is not None:
        lm._model_generate = functools.wraps(batched)(model_generate)


def _first_argument(method, args: tuple, kwargs: dict):
    """The value a call passes for a bound method's first parameter, positional or by keyword."""
    first = next(iter(inspect.signature(method).parameters))
    return args[0] if args else kwargs[first]


def _opens_thinking(context) -> bool:
    text = context if isinstance(context, str) else str(context)
    tail = text.rstrip()
    return tail.endswith(THINK_OPEN) and tail.rfind(THINK_OPEN) > tail.rfind("</think>")


def build_lm(req: EvalRequest):
    """The lm-eval model object, plus the dtype string for the record (harness.backends)."""
    return backend(req.settings.backend).build(req)


def _engine_gpu_bytes(lm, target: str) -> int | None:
    """The GPU memory a vLLM engine was given on each card, for weights, activations and KV
    cache: its ``gpu_memory_utilization`` share of the target's card, claimed at start and
    held to the end (None: no engine, or a CPU target)."""
    from containers.targets import get_target

    share = (getattr(lm, "model_args", None) or {}).get("gpu_memory_utilization")
    card = get_target(target)
    if share is None or not card.is_gpu:
        return None
    return int(share * card.gpu_memory_gb * 2**30)


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
        metrics[label] = MetricValue(
            value=float(value),
            stderr=float(stderr) if isinstance(stderr, int | float) else None,
            n=n,
        )
    config = out.get("configs", {}).get(task, {})
    listed = [
        m["metric"] for m in config.get("metric_list", []) if isinstance(m.get("metric"), str)
    ]
    primary = next((m for m in listed if m in metrics), next(iter(metrics), "none"))
    return metrics, primary


def _meta(doc: dict) -> dict[str, Any]:
    """Small scalar doc fields (kind, num_variables, level, ...) for per-sample breakdowns."""
    return {
        k: v
        for k, v in doc.items()
        if isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 40)
    }


def _choice_logprobs(sample: dict) -> list[float] | None:
    """A multiple-choice doc's loglikelihood per choice (lm-eval's ``resps``: one
    ``[(loglikelihood, is_greedy)]`` per choice); None for a generated sample."""
    resps = sample.get("resps") or []
    pairs = [r[0] if isinstance(r, list | tuple) and len(r) == 1 else None for r in resps]
    if not pairs or not all(
        isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], float) for p in pairs
    ):
        return None
    return [float(p[0]) for p in pairs]


def _completions(sample: dict) -> list[str]:
    """Every repeat's completion of one doc (lm-eval keeps them all in ``resps``)."""
    resps = sample.get("resps") or []
    if len(resps) == 1 and isinstance(resps[0], list):  # one request per doc, its repeats inside
        resps = resps[0]
    texts = [r if isinstance(r, str) else (r[0] if r else "") for r in resps]
    if len(texts) <= 1:  # one sample per prompt: what the metric saw, after the task's filters
        resp = sample.get("filtered_resps") or resps or [""]
        texts = [resp[0] if isinstance(resp[0], str) else (resp[0][0] if resp[0] else "")]
    return texts


def _sample_rows(
    cell_key: str, task: str, samples: list[dict], primary: str, fields_hook
) -> list[dict]:
    """One row per doc and repeat. Repeat 0 carries the metric's score; the other repeats are
    scored by the task's ``sample_fields`` (the same verifier, remembered per completion)."""
    rows = []
    metric, _, filt = primary.partition("/")
    if filt:  # a task with several filters (lm-eval's gsm8k) lists each doc once per filter: the primary's
        samples, primary = [s for s in samples if s.get("filter", filt) == filt], metric
    for s in samples:
        choices = _choice_logprobs(s)
        if choices is not None:  # multiple choice: the model's pick (acc's argmax) is its answer
            pick = max(range(len(choices)), key=choices.__getitem__)
            args = s.get("arguments") or []
            rows.append(
                {
                    "cell_key": cell_key,
                    "task": task,
                    "doc_id": int(s["doc_id"]),
                    "repeat": 0,
                    "target": str(s.get("target", "")),
                    "completion": str(args[pick][1]) if pick < len(args) else "",
                    "answer": str(pick),
                    "logprob": choices[pick],
                    "choice_logprobs": choices,
                    "prompt": json.dumps(args[0][0] if args else None, default=str)[:20000],
                    "meta": _meta(s.get("doc", {})),
                    "score": min(max(float(s.get(primary) or 0.0), 0.0), 1.0),
                }
            )
            continue
        for repeat, completion in enumerate(_completions(s)):
            score = s.get(primary) if repeat == 0 else None
            row = {
                "cell_key": cell_key,
                "task": task,
                "doc_id": int(s["doc_id"]),
                "repeat": repeat,
                "target": str(s.get("target", "")),
                "completion": completion,
                "prompt": json.dumps(s.get("arguments"), default=str)[:20000],
                "meta": _meta(s.get("doc", {})),
            }
            if fields_hook is not None:
                extra = dict(fields_hook(s.get("doc", {}), completion))
                hook_score = extra.pop("score", None)
                score = hook_score if score is None else score
                for key in ("answer", "correct", "target", "logprob"):
                    if key in extra:
                        row[key] = extra.pop(key)
                row["meta"].update(
                    extra
                )  # anything else a task reports stays with the doc metadata
            score = float(score) if isinstance(score, int | float) else 0.0
            row["score"] = min(max(score, 0.0), 1.0)
            rows.append(row)
    return rows


def _fields_hook(task: str):
    """The ``sample_fields(doc, completion) -> {answer, correct, score, meta...}`` of the task's
    family (``tasks.FAMILIES``: its folder under tasks/), if it is one of bench's."""
    from harness.taskinfo import task_family
    from tasks import family

    name = task_family(task)
    return family(name).sample_fields if name else None


def _budgets(out: dict, leaves: list[str], settings: ResolvedEval) -> dict[str, int | None]:
    """The generation cap each task ran with: the resolved budget, else the task's own."""
    own = {
        t: ((out.get("configs", {}).get(t) or {}).get("generation_kwargs") or {}).get(
            "max_gen_toks"
        )
        for t in leaves
    }
    return {t: settings.max_gen_toks or own[t] for t in leaves}


def _count_tokens(rows: list[dict], tok, budget: int | None) -> None:
    """Per sample: tokens generated and whether the cap was hit (a cut-off answer is no answer)."""
    if tok is None:
        return
    for r in rows:
        if r.get("choice_logprobs") is not None:  # scored, not generated
            continue
        r["gen_tokens"] = len(tok(r["completion"], add_special_tokens=False)["input_ids"])
        r["truncated"] = (
            bool(budget) and r["gen_tokens"] >= budget - 1
        )  # re-tokenizing may merge one token


def _looping(rows: list[dict]) -> float | None:
    from leaderboards.behavior import looping

    return sum(looping(r["completion"]) for r in rows) / len(rows) if rows else None


def _truncation(rows: list[dict]) -> tuple[float | None, float | None]:
    """(share of samples that hit the cap, mean score over the others)."""
    if not rows or rows[0].get("truncated") is None:
        return None, None
    done = [r["score"] for r in rows if not r["truncated"]]
    return 1 - len(done) / len(rows), (sum(done) / len(done) if done else None)


def _with_mean_of_repeats(metrics: dict, primary: str, rows: list[dict], repeats: int) -> dict:
    from leaderboards.stats import stderr_mean

    per_doc: dict[int, list[float]] = {}
    for r in rows:
        per_doc.setdefault(r["doc_id"], []).append(r["score"])
    means = [
        sum(v) / len(v) for v in per_doc.values()
    ]  # clustered by prompt: the stderr is over docs
    return {
        **metrics,
        f"{primary}@mean{repeats}": MetricValue(
            value=sum(means) / len(means) if means else 0.0,
            stderr=stderr_mean(means) if len(means) > 1 else None,
            n=len(means),
        ),
    }


def _lm_eval_calls(leaves: list[str], s: ResolvedEval) -> list[tuple[list[str], str | None]]:
    """The lm-eval calls of one cell, as (tasks, think_end_token): one call, the completion whole,
    unless a thinking model meets lm-eval's own tasks. Those score the text after its reasoning
    (lm-eval cuts it at ``think_end_token``), while bench's tasks read the reasoning on purpose,
    so they run first in a call of their own; the model loads once for both."""
    if s.think_end_token is None:
        return [(leaves, None)]
    from harness.taskinfo import task_index

    own = [t for t in leaves if t in task_index()]
    builtin = [t for t in leaves if t not in own]
    return [(tasks, end) for tasks, end in ((own, None), (builtin, s.think_end_token)) if tasks]


def _simple_evaluate(lm, tasks: list[str], req: EvalRequest, tm) -> dict[str, Any]:
    import lm_eval

    s = req.settings
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        num_fewshot=s.num_fewshot,
        limit=s.limit,
        log_samples=True,
        apply_chat_template=s.apply_chat_template,
        gen_kwargs=s.generation_kwargs(),
        task_manager=tm,
        random_seed=req.seed,
        numpy_random_seed=req.seed,
        torch_random_seed=req.seed,
        fewshot_random_seed=req.seed,
        bootstrap_iters=1000,
        verbosity="WARNING",
    )


def _merged(out: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Two lm-eval outputs as one: their per-task tables (results, samples, configs, ...) joined."""
    merged = dict(out)
    for name, value in more.items():
        if isinstance(out.get(name), dict) and isinstance(value, dict):
            merged[name] = {**out[name], **value}
        else:  # run-wide facts (date, git hash, ...): the first call's
            merged.setdefault(name, value)
    return merged


def run_eval(req: EvalRequest, results_dir: str | Path) -> RunRecord:
    from bench_core.memory import MemorySpan

    with MemorySpan() as memory:  # the cell's own peaks, not an earlier cell's in this process
        return _run_eval(req, Path(results_dir), memory)


def _run_eval(req: EvalRequest, results_dir: Path, memory) -> RunRecord:
    from harness.lmeval_tasks import quiet_git_hash
    from harness.provenance import provenance
    from harness.taskinfo import resolve_tasks

    s = req.settings
    leaves = [t.name for t in resolve_tasks(req.tasks, where="--tasks")]
    started, t0 = datetime.now(UTC), time.perf_counter()
    lm, dtype = build_lm(req)
    _keep_prompt_opener(lm)
    _report_requests(lm)
    load_s = time.perf_counter() - t0
    from harness.taskinfo import task_index

    tm = _task_manager(
        s.repeats, builtin=any(t not in task_index() for t in leaves), num_fewshot=s.num_fewshot
    )
    quiet_git_hash()
    out: dict[str, Any] = {}
    engine_rss = None
    try:
        for tasks, think_end in _lm_eval_calls(leaves, s):
            lm.think_end_token = think_end  # read by lm-eval's HFLM and VLLM at each generation
            out = _merged(out, _simple_evaluate(lm, tasks, req, tm))
        wall = time.perf_counter() - t0
    finally:
        engine_rss = backend(req.settings.backend).stop(lm)
    stripped = {t for tasks, end in _lm_eval_calls(leaves, s) if end for t in tasks}
    tok = getattr(lm, "tokenizer", None)
    budgets = _budgets(out, leaves, s)
    results, generated = [], 0
    for task in leaves:
        metrics, primary = parse_results(out, task)
        rows = _sample_rows(
            req.cell_key, task, out["samples"].get(task, []), primary, _fields_hook(task)
        )
        _count_tokens(rows, tok, budgets[task])
        generated += sum(r.get("gen_tokens") or 0 for r in rows)
        truncated, completed = _truncation(rows)
        if (
            s.repeats > 1
        ):  # lm-eval's metric saw the first sample of each doc; pass@1 is the mean of all
            metrics = _with_mean_of_repeats(metrics, primary, rows, s.repeats)
            primary = f"{primary}@mean{s.repeats}"
        # The first sample per doc is what lm-eval's metric and the paired tests see; with repeats, every
        # sample goes to a second file for pass@k and self-consistency (bench analyze behavior).
        path = write_samples(
            [r for r in rows if r["repeat"] == 0], samples_path(results_dir, req.cell_key, task)
        )
        every = None
        if s.repeats > 1:
            every = write_samples(rows, samples_path(results_dir, req.cell_key, f"{task}.repeats"))
        hib = out.get("higher_is_better", {}).get(task, {}).get(primary, True)
        results.append(
            TaskResult(
                name=task,
                version=str(out.get("versions", {}).get(task, "0")),
                primary_metric=primary,
                higher_is_better=bool(hib),
                metrics=metrics,
                n_shot=s.num_fewshot,
                chat_template=s.apply_chat_template,
                limit=s.limit,
                settings=s.tag(after_thinking=task in stripped),
                samples_file=str(path.relative_to(results_dir)),
                truncated=truncated,
                score_completed=completed,
                looping=_looping(rows),
                repeats_file=str(every.relative_to(results_dir)) if every else None,
            )
        )
    gen_s = wall - load_s
    record = RunRecord(
        kind="eval",
        cell_key=req.cell_key,
        grid=req.grid,
        model_id=req.model_id,
        model_revision=req.model_revision,
        recipe=req.recipe,
        stage=req.stage,
        parent_key=req.parent_key,
        method_configs=req.method_configs,
        inputs=req.inputs,
        weights_key=req.weights_key,
        parent_weights=req.parent_weights,
        base_weights=req.base_weights,
        parent_stage=req.parent_stage,
        checkpoint=str(req.weights),
        tasks=results,
        backend=s.backend,
        dtype=dtype,
        target=req.target,
        seed=req.seed,
        wall_s=wall,
        load_s=load_s,
        tokens_per_s=generated / gen_s if gen_s > 0 else None,
        peak_rss_bytes=memory.peak().rss_bytes,
        peak_cuda_bytes=memory.peak().cuda_bytes,
        engine_peak_rss_bytes=engine_rss,
        engine_gpu_bytes=_engine_gpu_bytes(lm, req.target),
        provenance=provenance(),
        started_at=started,
        finished_at=datetime.now(UTC),
    )
    write_record(record, results_dir)
    return record
