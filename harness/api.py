"""The Python API behind the CLI: each command calls one function here, and tests call them too."""

from __future__ import annotations

from pathlib import Path

from harness.errors import BenchError
from leaderboards.record import RunRecord

__all__ = ["eval_model", "default_target"]


def default_target() -> str:
    from containers.targets import detect_target

    return detect_target()


def eval_model(*, model: str | None = None, checkpoint: Path | None = None, tasks: list[str], backend: str = "hf",
               limit: int | None = None, num_fewshot: int = 0, max_gen_toks: int | None = None,
               batch_size: int = 8, target: str | None = None, chat_template: bool = True, seed: int = 0,
               results: Path = Path("results")) -> RunRecord:
    """``bench eval``: one model or stage checkpoint, all tasks in one lm-eval call."""
    import json

    from harness.evaluate import EvalRequest, run_eval
    from harness.grid import EvalSettings, eval_key
    from harness.taskinfo import resolve_tasks
    from harness.zoo import _dir_fingerprint, get_model, materialize, model_identity

    if (model is None) == (checkpoint is None):
        raise BenchError("bench eval: give exactly one of --model NAME or --checkpoint PATH")
    leaves = tuple((t.name, t.version) for t in resolve_tasks(tasks, where="--tasks"))
    settings = EvalSettings(backend=backend, limit=limit, num_fewshot=num_fewshot, apply_chat_template=chat_template,
                            gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else {}, batch_size=batch_size)
    target = target or default_target()
    stage, model_id, trust, revision, recipe = "base", None, False, None, []
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        manifest = checkpoint / "manifest.json"
        if not manifest.exists() and not (checkpoint / "config.json").exists():
            raise BenchError(f"--checkpoint {checkpoint}: no manifest.json or config.json there; pass a stage or model directory")
        info = json.loads(manifest.read_text()) if manifest.exists() else {}
        stage = info.get("stage", "checkpoint")
        model_id = info.get("model", checkpoint.name)
        recipe = stage.split("+") if stage not in ("base", "checkpoint") else []
        identity = f"checkpoint:{_dir_fingerprint(checkpoint)}:{info.get('data_identity', '')}:{info.get('final_loss', '')}"
        weights = checkpoint
    else:
        spec = get_model(model)
        model_id, trust, revision = spec.name, spec.trust_remote_code, spec.revision
        identity = model_identity(spec)
        weights = materialize(model)
    key = eval_key(identity, None, leaves, settings, seed, target)
    req = EvalRequest(cell_key=key, model_id=model_id, weights=weights, tasks=[t for t, _ in leaves], stage=stage,
                      recipe=recipe, backend=backend, limit=limit, num_fewshot=num_fewshot,
                      apply_chat_template=chat_template, gen_kwargs=settings.gen_kwargs, batch_size=batch_size,
                      target=target, seed=seed, model_revision=revision, trust_remote_code=trust)
    return run_eval(req, results)


def run_grid(grid: str, *, results: Path = Path("results"), executor: str = "local", dry_run: bool = False,
             force: bool = False, only: str | None = None, kind: str | None = None, backend: str | None = None,
             limit: int | None = None, container: str | None = None, partition: str | None = None,
             progress=None, workers: int = 1):
    """``bench train+eval`` (kind=None), ``bench train`` (kind='train'), ``bench eval --grid`` (kind='eval').

    Returns (plan, outcome): outcome maps cell key → done/skipped/failed/blocked; empty on a dry run.
    """
    from harness.runner import plan_grid, run_local

    if executor not in ("local", "slurm"):
        raise BenchError(f"--executor: unknown executor '{executor}'; use local or slurm")
    if container and executor != "slurm":
        raise BenchError("--container: only with --executor slurm (locally, run bench inside the image instead)")
    plan = plan_grid(grid, results, only=only, force=force, kind=kind, backend=backend, limit=limit)
    if dry_run or not plan.todo:
        return plan, {}
    if executor == "slurm":
        from harness.executors.slurm import check_slurm, run_slurm

        check_slurm()  # before anything is submitted: nothing computed is lost on a bad cluster
        return plan, run_slurm(plan, grid, results, backend=backend, limit=limit, force=force,
                               container=container, partition=partition, progress=progress)
    return plan, run_local(plan, grid, results, backend=backend, limit=limit, force=force, progress=progress,
                           workers=workers)


def render_leaderboard(results: Path, *, fmt: str = "terminal", out: Path | None = None, models=None,
                       methods=None, tasks=None) -> str:
    """``bench leaderboard``: ingest (idempotent) then render; ingest warnings go to stderr, one line each."""
    import sys
    import warnings

    from leaderboards import leaderboard

    formats = ("terminal", "md", "markdown", "latex", "csv", "json", "html")
    if fmt not in formats:
        raise BenchError(f"--format: unknown format '{fmt}'; use one of {', '.join(formats)}")
    if not (Path(results) / "records").exists():
        raise BenchError(f"--results {results}: no records/ there; run `bench train+eval --grid smoke` first")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = leaderboard(results, fmt, out, models=models, methods=methods, tasks=tasks)
    for w in caught:
        sys.stderr.write(f"warning: {w.message}\n")
    return text
