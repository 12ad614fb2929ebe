"""What every method does around its trl trainer: one stage, start to manifest.

A method module builds its data and its trl trainer; :class:`Stage` does the rest —
seeding, the parent's merged weights, the memory plan, the model load, the shared
TrainingArguments, the callbacks (divergence guard, early stopping, run statistics),
resume from the newest complete checkpoint, saving adapter/merged weights/tokenizer and
writing ``config.yaml`` and ``manifest.json``.

Stage directory layout::

    config.yaml         the resolved config
    checkpoints/        trainer checkpoints (resume); the newest ones are kept
    adapter/            LoRA adapter + tokenizer (lora/qlora)
    merged/             full weights + tokenizer (full mode, merge=true, or a child needed them)
    log_history.json    every logged step (loss, grad norm, method metrics)
    train_rows.jsonl.gz the text of every row the trainer trained on, one JSON string a line
                        (what the leaderboard's contamination check reads)
    manifest.json       written last: its presence means the stage finished
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from bench_core.memory import MemorySpan
from trainers._config import TrainConfig, config_dict, save_config
from trainers._model import (
    ADAPTER,
    MANIFEST,
    MERGED,
    ensure_merged,
    load_model,
    lora_config,
    merge_into,
    sharded_launch,
)
from trainers.manifest import (
    Manifest,
    git_state,
    package_versions,
    read_manifest,
    stage_relative,
    write_manifest,
)

__all__ = ["Stage", "TrainingDiverged", "last_checkpoint", "model_context"]

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
TRAIN_ROWS = "train_rows.jsonl.gz"
CONFIG = "config.yaml"  # the resolved config, also what a resume is checked against
# In every checkpoint: tokens and seconds the run had cost when it was saved. trl's token
# counter restarts at 0 on a resume and the wall clock does, so a resumed stage adds these.
RUN_COST = "bench_run_cost.json"
# Fields a resumed run may change: how long it runs and how it logs, saves and stops.
RESUMABLE = {
    "resume",
    "max_steps",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "eval_steps",
    "early_stopping_patience",
    "divergence_factor",
}


class TrainingDiverged(ValueError):
    """The loss went NaN/inf or exploded; the last good checkpoint is kept on disk."""


# Paths on this machine: a results folder spelled another way, moved or copied to another
# cluster resumes its checkpoints (the cell key, equal by then, covers what they hold).
MACHINE_PATHS = {"model", "parent", "output_dir"}


def last_checkpoint(directory: Path) -> Path | None:
    """The newest ``checkpoint-N`` whose trainer_state.json (written last of the trainer's
    state) reads as JSON: a kill in the middle of that write leaves the checkpoint before it."""
    if not directory.is_dir():
        return None
    done = [p for p in directory.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    for p in sorted(done, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        state = p / "trainer_state.json"
        if not state.exists():
            continue
        try:
            ok = isinstance(json.loads(state.read_text()).get("global_step"), int)
        except (OSError, ValueError, AttributeError):
            ok = False
        if ok:
            return p
        log.warning("%s: unreadable (cut off mid-write?); resuming from an earlier one", state)
    return None


def model_context(weights: Path) -> int | None:
    """The longest sequence the model's config allows (max_position_embeddings; gpt2's
    n_positions), None when its config states none."""
    file = Path(weights) / "config.json"
    if not file.is_file():
        return None
    cfg = json.loads(file.read_text())
    cfg = cfg.get("text_config", cfg)
    return cfg.get("max_position_embeddings") or cfg.get("n_positions")


# Consecutive fp16 steps the GradScaler may skip (non-finite gradients, finite loss) before the
# divergence guard stops the run.
MAX_SKIPPED_STEPS = 8


class DivergenceGuard(TrainerCallback):
    """Stop at a NaN/inf loss or grad norm, or |loss| > factor × max(|first loss|, 1).

    Runs in ``on_log``, before the Trainer's save of that step, and cancels the save:
    the weights after a diverged step are not worth keeping.
    """

    def __init__(self, factor: float, max_skipped: int = MAX_SKIPPED_STEPS):
        self.factor, self.first, self.diverged = factor, None, None
        self.max_skipped, self.skipped = max_skipped, 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        if loss is None:
            return
        bad = not math.isfinite(loss)
        if not bad and grad_norm is not None and not math.isfinite(grad_norm):
            # Under fp16 the GradScaler skips a step whose gradients overflowed and lowers
            # its scale (its warm-up from 2^16 does so a few times): not divergence, unless
            # it keeps happening.
            self.skipped += 1
            bad = not args.fp16 or self.skipped > self.max_skipped
        elif not bad:
            self.skipped = 0
        if not bad and self.first is None:
            self.first = abs(loss)
        elif not bad and abs(loss) > self.factor * max(self.first, 1.0):
            bad = True
        if bad:
            self.diverged = (state.global_step, loss, grad_norm)
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False


class RunStats(TrainerCallback):
    """Losses, token counts and wall time of this process's part of the run."""

    def __init__(self):
        self.losses, self.tokens, self.tokens_start, self.t0, self.t1 = [], 0, 0, None, None
        self.earlier = {"tokens": 0, "train_s": 0.0, "wall_s": 0.0}  # parts before a resume
        self.t_start = time.time()  # the Stage's start (set by it): wall time of this part

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.time()
        self.tokens_start = self.tokens = int(state.num_input_tokens_seen or 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.losses.append(float(logs["loss"]))
        if "num_tokens" in logs:
            self.tokens = int(logs["num_tokens"])

    def on_train_end(self, args, state, control, **kwargs):
        self.t1 = time.time()

    def cost(self) -> dict[str, float]:
        """What the whole run has cost so far: the earlier parts plus this one."""
        now = time.time()
        return {
            "tokens": self.earlier["tokens"] + self.tokens - self.tokens_start,
            "train_s": self.earlier["train_s"] + (self.t1 or now) - (self.t0 or now),
            "wall_s": self.earlier["wall_s"] + now - self.t_start,
        }

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and ckpt.is_dir():
            (ckpt / RUN_COST).write_text(json.dumps(self.cost()))


# Whoever runs the stage may watch it: a plain callable (step, max_steps, loss | None) set by
# trainers.train_stage(progress=...) for the stage in flight (a ContextVar, so no method
# module has to pass it along; the harness's live view is one such caller).
STEP_PROGRESS: ContextVar[Callable[[int, int, float | None], None] | None] = ContextVar(
    "step_progress", default=None
)


class StepProgress(TrainerCallback):
    """Reports (step, max_steps, last logged loss) to a watcher (``STEP_PROGRESS``)."""

    def __init__(self, progress: Callable[[int, int, float | None], None]):
        self.progress, self.loss = progress, None

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.loss = (logs or {}).get("loss", self.loss)
        self.progress(state.global_step, state.max_steps, self.loss)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress(state.global_step, state.max_steps, self.loss)


def stage_plan(cfg: TrainConfig, weights: Path, max_length: int, world_size: int):
    """The stage's plan (trainers.planner.plan_for) at its clipped max_length over its
    processes; a GPU plan that does not fit is refused before anything loads."""
    import dataclasses

    from containers.targets import get_target
    from trainers.planner import plan_for

    if max_length != cfg.max_length:
        cfg = dataclasses.replace(cfg, max_length=max_length)
    plan = plan_for(cfg, weights, gpus=world_size)
    if not plan.fits and get_target(cfg.target).is_gpu:
        raise ValueError(plan.refusal())
    if not plan.fits:  # a CPU plan sizes host memory by half of it: an estimate, not a wall
        log.warning("%s", plan.refusal())
    return plan


class Stage:
    """One training stage of ``method`` under ``cfg``; see the module docstring."""

    def __init__(self, method: str, cfg: TrainConfig):
        import torch
        from transformers import set_seed

        from trainers._host import cpu_stage_memory

        self.method, self.cfg, self.t_start = method, cfg, time.time()
        self.out = Path(cfg.output_dir)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.is_main = int(os.environ.get("RANK", "0")) == 0
        if cfg.mode not in ("lora", "qlora", "full"):
            raise ValueError(f"{method} config: mode {cfg.mode!r}; use lora, qlora or full")
        if not cfg.model and not cfg.parent:
            raise ValueError(
                f"{method} config: set model (a model directory) or parent (a stage directory)"
            )
        set_seed(cfg.seed)
        if not torch.cuda.is_available():  # trains on the CPU: RSS is what the plan sizes
            cpu_stage_memory()
        if cfg.parent:
            parent = read_manifest(cfg.parent)
            self.base_model = parent.base_model
            self.weights = ensure_merged(cfg.parent)
            self.trust_remote_code = cfg.trust_remote_code or parent.trust_remote_code
        else:
            self.base_model, self.weights = str(cfg.model), Path(cfg.model)
            self.trust_remote_code = cfg.trust_remote_code

        # sequences past the model's positions would index off its position table: clip them
        self.max_length, context = cfg.max_length, model_context(self.weights)
        if context and cfg.max_length > context:
            log.warning(
                "%s: max_length %d exceeds %s's context %d; clipped to %d",
                method,
                cfg.max_length,
                self.weights.name,
                context,
                context,
            )
            self.max_length = context

        self.plan = stage_plan(cfg, self.weights, self.max_length, self.world_size)
        self.per_rank = max(1, cfg.effective_batch // self.world_size)
        self.set_per_device_batch(
            cfg.per_device_batch or min(self.plan.per_device_batch, self.per_rank)
        )
        self._check_resumable()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / MANIFEST).unlink(missing_ok=True)  # a rerun invalidates the old result
            save_config(cfg, self.out / CONFIG)
        self.guard, self.stats = DivergenceGuard(cfg.divergence_factor), RunStats()
        self.peak: dict[str, float] = {}
        self.memory = MemorySpan().start()  # this stage's own peaks, not the process's

    def _check_resumable(self) -> None:
        """Refuse to resume checkpoints that another config wrote (a changed seed, data or
        learning rate would silently continue the old run)."""
        import yaml

        saved_file = self.out / CONFIG
        if not (
            self.cfg.resume and saved_file.is_file() and last_checkpoint(self.out / CHECKPOINTS)
        ):
            return
        saved = yaml.safe_load(saved_file.read_text()) or {}
        now = yaml.safe_load(yaml.safe_dump(config_dict(self.cfg)))
        changed = [
            k
            for k in now
            if k in saved and k not in RESUMABLE | MACHINE_PATHS and saved[k] != now[k]
        ]
        if changed:
            k = changed[0]
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            raise ValueError(
                f"{self.method}: {self.out / CHECKPOINTS} holds checkpoints of another config "
                f"({k}: {saved[k]!r} there, {now[k]!r} now{more}); use a new output_dir, "
                "delete the checkpoints, or set resume=false"
            )

    def set_per_device_batch(self, n: int) -> None:
        """Rows per forward; gradient accumulation (unless configured) reaches the effective batch."""
        self.per_device_batch = n
        self.grad_accum = self.cfg.grad_accum or max(1, math.ceil(self.per_rank / n))

    def load(self):
        """(model, tokenizer) of the weights this stage starts from, on the stage's target.

        Full fine-tuning loads fp32 weights: AdamW on bf16 weights rounds most small updates
        away, and fp16 weights cannot be unscaled by the GradScaler; autocast computes in the
        target's dtype. Under FSDP/ZeRO-3 the process group (and ZeRO-3's config) exists before
        the load, so transformers loads on rank 0 and the others wait for their shards.
        """
        import torch

        if sharded_launch():
            from transformers import TrainingArguments

            self._early_args = TrainingArguments(**self.trainer_args())
        model, tok = load_model(
            self.weights,
            target=self.cfg.target,
            for_training=True,
            quantization="bnb-4bit" if self.cfg.mode == "qlora" else None,
            trust_remote_code=self.trust_remote_code,
            dtype=torch.float32 if self.cfg.mode == "full" else None,
        )
        self.peak["after_load"] = round(self.memory.peak().gb, 3)
        return model, tok

    def peft_config(self):
        c = self.cfg
        return (
            None
            if c.mode == "full"
            else lora_config(c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_target)
        )

    def trainer_args(self, has_eval: bool = False) -> dict[str, Any]:
        """TrainingArguments shared by every method (trl's XConfig takes them all)."""
        import torch

        from containers.targets import get_target

        c, cuda = self.cfg, torch.cuda.is_available()
        dtype = get_target(c.target).dtype
        precision = c.mixed_precision if c.mixed_precision != "auto" else (dtype if cuda else "no")
        if precision == "fp16" and not cuda:
            raise ValueError(
                f"{self.method} config: mixed_precision fp16 needs CUDA; on CPU use bf16 or no"
            )
        ckpt = (
            self.plan.gradient_checkpointing
            if c.gradient_checkpointing is None
            else c.gradient_checkpointing
        )
        if self.plan.topology == "fsdp":  # FSDP checkpoints activations itself (trainers/launch.py)
            ckpt = False
        args: dict[str, Any] = dict(
            output_dir=str(self.out / CHECKPOINTS),
            max_steps=c.max_steps,
            per_device_train_batch_size=self.per_device_batch,
            per_device_eval_batch_size=self.per_device_batch,
            gradient_accumulation_steps=self.grad_accum,
            learning_rate=c.learning_rate,
            lr_scheduler_type=c.lr_scheduler_type,
            warmup_steps=c.warmup_steps,
            weight_decay=c.weight_decay,
            max_grad_norm=c.max_grad_norm,
            logging_steps=c.logging_steps,
            logging_nan_inf_filter=False,  # the guard must see a NaN, not the window's mean
            save_strategy="steps",
            save_steps=c.save_steps,
            save_total_limit=c.save_total_limit,
            seed=c.seed,
            data_seed=c.seed,
            report_to=[],
            disable_tqdm=True,
            use_cpu=not cuda,
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            gradient_checkpointing=bool(ckpt),
            dataloader_num_workers=0,
        )
        if self.world_size > 1 and not cuda:
            args["ddp_backend"] = "gloo"
        if self.world_size > 1 and c.mode != "full":
            # a PeftModel is not a PreTrainedModel, so the Trainer would search the graph for
            # unused parameters every step; every adapter is used
            args["ddp_find_unused_parameters"] = False
        if has_eval:
            args.update(eval_strategy="steps", eval_steps=c.eval_steps)
        if c.early_stopping_patience:
            args.update(
                save_steps=c.eval_steps,  # load_best_model_at_end needs saves on eval steps
                load_best_model_at_end=True,
                metric_for_best_model="eval_loss",
                greater_is_better=False,
            )
        return args

    def callbacks(self) -> list:
        cbs = [self.guard, self.stats]
        if STEP_PROGRESS.get() is not None:
            cbs.append(StepProgress(STEP_PROGRESS.get()))
        if self.cfg.early_stopping_patience:
            from transformers import EarlyStoppingCallback

            cbs.append(
                EarlyStoppingCallback(early_stopping_patience=self.cfg.early_stopping_patience)
            )
        return cbs

    def ready(self, trainer) -> None:
        """Put right what the trl trainer set up that the target cannot train with.

        trl casts a quantized model's adapters to bf16; on an fp16 target the CUDA GradScaler
        has no bf16 unscale kernel and the first optimizer step fails. There the trainable
        parameters go back to fp32 (the compute stays in the target's dtype).
        """
        import torch

        from containers.targets import get_target

        if trainer.args.fp16 or get_target(self.cfg.target).dtype == "fp16":
            for p in trainer.model.parameters():
                if p.requires_grad and p.dtype != torch.float32:
                    p.data = p.data.float()

    def train(
        self, trainer, data: dict[str, Any], machine: dict[str, Any] | None = None
    ) -> Manifest:
        """Run (or resume) ``trainer``, save the outputs and write the manifest (``machine``: the
        settings this machine resolved, trainers.machine_settings)."""
        self.ready(trainer)
        resume = last_checkpoint(self.out / CHECKPOINTS) if self.cfg.resume else None
        self.stats.t_start = self.t_start
        if resume and (resume / RUN_COST).is_file():  # the record covers the whole run
            try:
                self.stats.earlier = {
                    **self.stats.earlier,
                    **json.loads((resume / RUN_COST).read_text()),
                }
            except ValueError:
                log.warning(
                    "%s: unreadable; the resumed stage counts only its own part", resume / RUN_COST
                )
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        step = trainer.state.global_step
        if self.guard.diverged:
            at, loss, grad_norm = self.guard.diverged
            good = last_checkpoint(self.out / CHECKPOINTS)
            raise TrainingDiverged(
                f"{self.method}: training diverged at step {at} (loss {loss}, grad_norm {grad_norm}); stopped. "
                f"Last good checkpoint: {good or 'none'}; lower learning_rate or max_grad_norm and rerun"
            )
        peak = self.memory.stop()
        self.peak["after_train"] = round(peak.gb, 3)
        adapter = merged = None
        if self.cfg.mode == "full":
            trainer.save_model(str(self.out / MERGED))
            merged = MERGED
        else:
            trainer.save_model(str(self.out / ADAPTER))
            adapter = ADAPTER
        if self.is_main:
            trainer.processing_class.save_pretrained(str(self.out / (adapter or merged)))
            if adapter and self.cfg.merge:
                merge_into(
                    self.weights, self.out / ADAPTER, self.out / MERGED, self.trust_remote_code
                )
                merged = MERGED
        cost = self.stats.cost()  # the whole run's, a resumed one's included
        wall, train_s, tokens = cost["wall_s"], cost["train_s"], int(cost["tokens"])
        commit, dirty = git_state()
        manifest = Manifest(
            method=self.method,
            base_model=self.base_model,
            base_weights=stage_relative(self.weights, self.out),
            parent=stage_relative(self.cfg.parent, self.out) if self.cfg.parent else None,
            # where it was written (absolute); the paths that are read back are stage-relative
            output_dir=str(self.out.resolve()),
            mode=self.cfg.mode,
            adapter=adapter,
            merged=merged,
            data=data,
            steps=step,
            final_loss=self.stats.losses[-1] if self.stats.losses else None,
            losses=self.stats.losses,
            tokens=tokens,
            tokens_per_s=round(tokens / train_s, 2) if tokens and train_s > 0 else None,
            peak_memory_gb=self.peak,
            peak_rss_bytes=peak.rss_bytes,
            peak_cuda_bytes=peak.cuda_bytes,
            planned_memory_gb=round(self.plan.total_gb, 3),
            plan=self.plan.to_dict(),
            wall_s=round(wall, 2),
            seed=self.cfg.seed,
            target=self.cfg.target,
            world_size=self.world_size,
            resumed_from=str(resume) if resume else None,
            resumed_cost=dict(self.stats.earlier) if resume else None,
            stopped_early=step < self.cfg.max_steps,
            packages=package_versions(),
            git_commit=commit,
            git_dirty=dirty,
            trust_remote_code=self.trust_remote_code,
            machine_settings=dict(machine or {}),
        )
        if self.is_main:
            (self.out / "log_history.json").write_text(
                json.dumps(trainer.state.log_history, indent=1)
            )
            write_train_rows(trainer, self.out / TRAIN_ROWS)
            write_manifest(manifest, self.out)
        return manifest


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def write_train_rows(trainer, path: Path) -> None:
    """The text of each row of ``trainer.train_dataset`` (held-out rows are not in it): its
    strings (messages, prompt, completion, chosen, rejected, reward columns) and, where trl
    tokenized the row, its ``*input_ids`` decoded, so what is written is what the model saw."""
    dataset, tok = trainer.train_dataset, trainer.processing_class
    tok = getattr(tok, "tokenizer", tok)  # a processor wraps its tokenizer
    tmp = path.with_name(f".{path.name}.tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for row in dataset if dataset is not None else ():
            parts = _strings({k: v for k, v in row.items() if not k.endswith("input_ids")})
            for k, v in row.items():
                if k.endswith("input_ids") and v:
                    parts.append(tok.decode(v, skip_special_tokens=True))
            f.write(json.dumps("\n".join(parts), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
