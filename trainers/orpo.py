"""Odds-ratio preference optimisation (trl ``experimental.orpo.ORPOTrainer``).

ORPO trains on dpo's pairs: a file (``dataset=``), or pairs the task verifier ranks among the
starting model's samples (trainers/dpo.py: read_pairs, verifier_pairs, split_pairs; the fields
of :class:`trainers.dpo_config.PairData`). Its loss is one term per pair: the chosen
sequence's NLL minus ``beta`` × log σ(log odds(chosen) − log odds(rejected)), the odds taken
from the policy's mean token log-probability. No reference model: the odds are the policy's
own, so it needs no SFT stage before it and no frozen copy in full mode. trl's NLL term covers
the prompt's tokens as well as the chosen completion's. trl's ORPOTrainer logs no token count,
so the manifest's ``tokens`` is 0 and ``tokens_per_s`` null.
"""

from __future__ import annotations

from trainers._config import cli
from trainers._data import data_identity
from trainers.dpo import read_pairs, split_pairs, verifier_pairs
from trainers.manifest import Manifest
from trainers.orpo_config import ORPOConfig

__all__ = ["ORPOConfig", "main"]


def main(cfg: ORPOConfig) -> Manifest:
    import warnings

    from datasets import Dataset
    from trl.import_utils import TRLExperimentalWarning

    from trainers._stage import Stage

    with warnings.catch_warnings():  # trl 1.16 keeps ORPO under experimental; bench pins trl
        warnings.simplefilter("ignore", TRLExperimentalWarning)
        from trl.experimental import orpo

    if cfg.dataset:  # a bad file fails before the model loads
        rows, source = read_pairs(cfg.dataset), cfg.dataset
    stage = Stage("orpo", cfg)
    model, tokenizer = stage.load()
    if not cfg.dataset:
        rows, source = verifier_pairs(model, tokenizer, cfg, "orpo")
    rows, train, held = split_pairs(rows, tokenizer, cfg)
    args = orpo.ORPOConfig(
        **stage.trainer_args(has_eval=bool(held)),
        max_length=stage.max_length,
        beta=cfg.beta,
    )
    trainer = orpo.ORPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(held) if held else None,
        processing_class=tokenizer,
        peft_config=stage.peft_config(),
        callbacks=stage.callbacks(),
    )
    return stage.train(trainer, data_identity(rows, source))


if __name__ == "__main__":
    raise SystemExit(cli(ORPOConfig, main))
