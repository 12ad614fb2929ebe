"""Reasoning distillation: SFT on ``<think>`` traces, optionally KL-regularized to the start.

Sources (``sources=``, comma-separated, or a file/hub ``dataset=`` of conversations): the
training sources of task families (``tasks.FAMILIES``), each item asked with its task's eval
prompt and answered by the family's teacher, seeded by ``item_seed`` and never a test item
(``direct_fraction`` of them give the answer without the steps, a mix of reasoning and
non-reasoning answers that GRPO can then sort) — ``arithmetic``: generated items (tasks.math,
``levels`` × ``n_per_level``, or per-level counts such as ``levels=2:310,4:10``);
``gsm8k``: GSM8K train solutions rewritten as traces (``n_gsm8k`` rows, local file);
``causal``: Corr2Cause problems (the causal fields of :class:`trainers._data.CausalData`);
and ``openthoughts``, an OpenThoughts-style hub dataset of conversations, when online.

With ``kl_coef > 0`` the loss is ``NLL + kl_coef · KL(π_θ ‖ π_ref)`` averaged over the
trained tokens, where π_ref is the frozen starting model: under LoRA the same network
with its adapter disabled (no second copy); in full mode a second, frozen copy. trl has
no such loss, so :class:`KLSFTTrainer` overrides ``compute_loss`` (full logits are
needed for the KL, so this path skips trl's fused LM head).
"""

from __future__ import annotations

import torch
import trl

from trainers._config import cli
from trainers._data import (
    data_identity,
    openthoughts_row,
    read_rows,
    require_columns,
    source_traces,
)
from trainers.distill_config import DistillConfig
from trainers.manifest import Manifest
from trainers.sft import COLUMNS, build_trainer

__all__ = ["DistillConfig", "main", "distill_rows", "KLSFTTrainer"]

HUB_SOURCE = "openthoughts"  # conversations from the hub (hub_dataset, n_hub): no task family


def distill_rows(cfg: DistillConfig) -> tuple[list[dict], str]:
    """Training conversations and a name for their source."""
    if cfg.dataset:
        rows = read_rows(cfg.dataset)
        if rows and "conversations" in rows[0]:
            rows = [openthoughts_row(r) for r in rows]
        columns = require_columns(rows, COLUMNS, cfg.dataset)
        return [{c: r[c] for c in columns} for r in rows], cfg.dataset
    from tasks import training_sources

    rows, names = [], []
    for source in [s.strip() for s in cfg.sources.split(",") if s.strip()]:
        if source == HUB_SOURCE:
            from trainers._data import sample_rows

            # a seeded sample: the hub set is concatenated by source (domain)
            hub = sample_rows(read_rows(f"hub:{cfg.hub_dataset}"), cfg.n_hub, cfg.item_seed)
            rows += [openthoughts_row(r) for r in hub]
            names.append(f"{cfg.hub_dataset}(n={cfg.n_hub},seed={cfg.item_seed})")
        elif source in training_sources():
            traces, name = source_traces(cfg, source)
            rows += traces
            names.append(name)
        else:
            raise ValueError(
                f"distill config: sources has unknown {source!r}; use "
                f"{', '.join([*training_sources(), HUB_SOURCE])}"
            )
    if not rows:
        raise ValueError("distill config: no rows; set sources (e.g. arithmetic) or dataset=<file>")
    return rows, "+".join(names)


class KLSFTTrainer(trl.SFTTrainer):
    """SFTTrainer whose training loss adds ``kl_coef · KL(π_θ ‖ π_ref)``."""

    kl_coef: float = 0.0
    ref_model = None  # full mode only; LoRA disables the adapter instead

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.kl_coef or not self.model.training or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = {**inputs, "use_cache": False}
        labels = inputs.pop("labels")
        logp = model(**inputs).logits[:, :-1].float().log_softmax(-1)
        target = labels[:, 1:]
        mask = target != -100
        with torch.no_grad():
            ref_logp = self._reference_logits(model, inputs)[:, :-1].float().log_softmax(-1)
        nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        kl = (logp.exp() * (logp - ref_logp)).sum(-1)
        # Normalised like SFTTrainer: by the tokens of the whole accumulated batch
        n = mask.sum() if num_items_in_batch is None else num_items_in_batch
        n = torch.as_tensor(n, device=logp.device).clamp(min=1)
        nll_mean, kl_mean = (nll * mask).sum() / n, (kl * mask).sum() / n
        loss = nll_mean + self.kl_coef * kl_mean
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        # Each micro-batch holds its share of the accumulated batch's mean and the Trainer
        # sums the shares into the logged loss; the metrics are averaged over micro-batches,
        # so scale each share back to the whole batch for nll + kl_coef·kl to equal the loss.
        share = self.args.gradient_accumulation_steps if num_items_in_batch is not None else 1
        self._metrics["train"]["kl"].append(
            self.accelerator.gather_for_metrics(kl_mean.detach() * share).mean().item()
        )
        self._metrics["train"]["nll"].append(
            self.accelerator.gather_for_metrics(nll_mean.detach() * share).mean().item()
        )
        if "attention_mask" in inputs:
            tokens = inputs["attention_mask"].sum()
        else:
            tokens = torch.tensor(inputs["position_ids"].size(1), device=logp.device)
        self._total_train_tokens += self.accelerator.gather_for_metrics(tokens).sum().item()
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss

    def _reference_logits(self, model, inputs):
        if self.ref_model is not None:
            return self.ref_model(**inputs).logits
        peft_model = self.accelerator.unwrap_model(model)
        with peft_model.disable_adapter():
            return peft_model(**inputs).logits


def main(cfg: DistillConfig) -> Manifest:
    from trainers._model import load_model
    from trainers._stage import Stage

    if cfg.kl_coef < 0:
        raise ValueError(f"distill config: kl_coef {cfg.kl_coef} must be >= 0")
    rows, source = distill_rows(cfg)
    stage = Stage("distill", cfg)
    trainer = build_trainer(stage, cfg, rows, trainer_cls=KLSFTTrainer)
    trainer.kl_coef = cfg.kl_coef
    if cfg.kl_coef and cfg.mode == "full":
        ref, _ = load_model(
            stage.weights, target=cfg.target, trust_remote_code=stage.trust_remote_code
        )
        trainer.ref_model = ref.to(trainer.args.device).requires_grad_(False)
    from trainers._data import sample_rows

    return stage.train(trainer, data_identity(sample_rows(rows, cfg.limit, cfg.seed), source))


if __name__ == "__main__":
    raise SystemExit(cli(DistillConfig, main))
