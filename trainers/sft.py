"""Supervised fine-tuning on conversations (trl ``SFTTrainer``).

Data: a file (``dataset=``) of trl conversational rows — ``messages`` — or
prompt/completion rows; the tokenizer's chat template renders them. Without a file,
``sources`` names training sources of task families (``tasks.FAMILIES``), e.g. ``causal``
(Corr2Cause problems from the fields of :class:`trainers._data.CausalData`: a Corr2Cause
CSV, the hub dataset, or the oracle's generator seeded by ``item_seed``); each item is
asked with its task's eval prompt, and answered by the family's teacher: the answer
alone, or with ``direct_fraction < 1`` the teacher's ``<think>`` trace for a seeded share
of the items. Sequences are
packed (best-fit decreasing, padding-free batches with per-sequence position ids, so
packed examples never attend to each other under sdpa or flash-attention). ``limit`` is
a seeded sample (``seed``), not the first rows. A template that strips the reasoning from
assistant turns, or a tokenizer without one, trains on plain prompt/completion text
(:mod:`trainers._templates`), so ``<think>`` traces are kept.

Padding-free batches flatten every packed row of a batch into one long row. Flash-
attention's varlen kernels then attend within each sequence; sdpa builds a dense mask
over the whole flat row instead (8 rows of 512 on the bundled model: 0.92x the padded
speed at 1.5x its memory, ``ci/perf/train_throughput.py``). So without flash-attention a
packed stage runs one packed row per forward and accumulates gradients to the same
effective batch (1.66x the padded speed at a third of its memory), unless
``per_device_batch`` is set.

    python -m trainers.sft --config sft.yaml model=/path/to/model dataset=data.jsonl
"""

from __future__ import annotations

import logging

from trainers._config import cli
from trainers._data import (
    data_identity,
    read_rows,
    require_columns,
    source_traces,
    split_eval,
)
from trainers.manifest import Manifest
from trainers.sft_config import SFTConfig

__all__ = ["SFTConfig", "main", "COLUMNS"]

COLUMNS = (("messages",), ("prompt", "completion"))

log = logging.getLogger(__name__)


def load_sft_rows(cfg: SFTConfig) -> tuple[list[dict], str]:
    if not cfg.dataset:
        if not cfg.sources.strip():
            raise ValueError(
                "sft config: dataset is empty; set dataset=<file with messages or prompt+completion> "
                "or sources=causal"
            )
        return source_traces(cfg, cfg.sources)
    rows = read_rows(cfg.dataset)
    columns = require_columns(rows, COLUMNS, cfg.dataset)
    return [{c: r[c] for c in columns} for r in rows], cfg.dataset


def build_trainer(stage, cfg: SFTConfig, rows: list[dict], trainer_cls=None):
    """trl's SFTTrainer (or a subclass) over ``rows`` with the stage's shared settings."""
    import trl
    from datasets import Dataset

    from trainers._data import sample_rows
    from trainers._templates import KEEPS, template_rows

    model, tokenizer = stage.load()
    rows, kind = template_rows(sample_rows(rows, cfg.limit, cfg.seed), tokenizer)
    if kind != KEEPS:
        log.info(
            "%s: chat template is %s: training on the prompt it renders + the raw completion",
            stage.method,
            kind,
        )
    train, held = split_eval(rows, cfg.eval_fraction, cfg.seed)
    flash = getattr(model.config, "_attn_implementation", None) == "flash_attention_2"
    if cfg.packing and not flash and not cfg.per_device_batch:
        stage.set_per_device_batch(1)
    args = trl.SFTConfig(
        **stage.trainer_args(has_eval=bool(held)),
        max_length=stage.max_length,
        packing=cfg.packing,
        padding_free=cfg.padding_free,
        completion_only_loss=cfg.completion_only_loss,
        assistant_only_loss=cfg.assistant_only_loss,
        shuffle_dataset=True,
    )
    return (trainer_cls or trl.SFTTrainer)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(held) if held else None,
        processing_class=tokenizer,
        peft_config=stage.peft_config(),
        callbacks=stage.callbacks(),
    )


def main(cfg: SFTConfig) -> Manifest:
    from trainers._stage import Stage

    rows, source = load_sft_rows(cfg)
    stage = Stage("sft", cfg)
    trainer = build_trainer(stage, cfg, rows)
    from trainers._data import sample_rows

    return stage.train(trainer, data_identity(sample_rows(rows, cfg.limit, cfg.seed), source))


if __name__ == "__main__":
    raise SystemExit(cli(SFTConfig, main))
