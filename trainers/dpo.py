"""Direct preference optimisation (trl ``DPOTrainer``).

Pairs come from a file (``dataset=``: prompt/chosen/rejected, conversational or plain)
or are built by a task family's verifier: for the ``n_prompts`` first prompts of a family's
training source (``sources=``, see ``tasks.FAMILIES``: e.g. ``arithmetic`` at ``levels``,
judged by tasks.math.verify; or ``causal``, Corr2Cause problems from the fields of
:class:`trainers._data.CausalData`, judged by tasks.causal_nli.verify) the starting model
samples ``samples_per_prompt`` completions; chosen is one the verifier accepts, rejected one
it refuses. When no sample is correct, the family's teacher trace (correct by construction)
is chosen if ``teacher_fallback``; a prompt whose samples are all correct gives no pair.
Under LoRA the reference model is the adapter-disabled network (trl).

:func:`read_pairs`, :func:`verifier_pairs` and :func:`split_pairs` build the rows of every
pair method (orpo trains on the same pairs: trainers/orpo.py); the fields they read are
:class:`trainers.dpo_config.PairData`'s.
"""

from __future__ import annotations

from trainers._config import TrainConfig, cli
from trainers._data import (
    data_identity,
    read_rows,
    require_columns,
    sample_rows,
    source_fields,
    source_name,
    source_prompts,
    split_eval,
)
from trainers.dpo_config import DPOConfig, PairData
from trainers.manifest import Manifest

__all__ = [
    "DPOConfig",
    "main",
    "read_pairs",
    "verifier_pairs",
    "split_pairs",
    "build_pairs",
    "task_prompts",
    "preference_rows",
    "COLUMNS",
]

# (prompt, chosen, rejected) strings or messages; or conversational chosen/rejected that
# hold the prompt themselves (then a prompt column beside them is dropped: preference_rows)
COLUMNS = (("prompt", "chosen", "rejected"), ("chosen", "rejected"))


def task_prompts(cfg: PairData) -> tuple[list[dict], str, str]:
    """Prompts with ``prompt`` (messages), ``reference`` and ``teacher`` (a correct trace),
    the task family that judges them, and a name for the source."""
    from tasks import family

    fields = source_fields(cfg, cfg.sources)
    task, items = source_prompts(cfg.sources, cfg.item_seed, cfg.n_prompts, **fields)
    teacher = family(task).teacher
    rows = [
        {"prompt": it["prompt"], "reference": it["reference"], "teacher": teacher(it)}
        for it in items
    ]
    return (
        rows,
        task,
        f"{source_name(cfg.sources, cfg.item_seed, **fields)} n_prompts={cfg.n_prompts}",
    )


def preference_rows(rows: list[dict], source: str) -> list[dict]:
    """Rows as (prompt, chosen, rejected), the prompt stated once.

    Conversational ``chosen``/``rejected`` that hold the prompt (the Tulu 3 preference
    mixture; it also keeps the user turn as a string ``prompt`` beside them) become the
    turns both share as ``prompt`` and the rest as chosen/rejected, as trl's extract_prompt
    does; trl itself keeps a ``prompt`` column as it is, and would render it twice.
    """
    out = []
    for k, row in enumerate(rows):
        prompt, chosen, rejected = row.get("prompt"), row["chosen"], row["rejected"]
        if isinstance(chosen, list) and isinstance(rejected, list):
            if (
                isinstance(prompt, list)
                and chosen[: len(prompt)] == prompt == rejected[: len(prompt)]
            ):
                chosen, rejected = chosen[len(prompt) :], rejected[len(prompt) :]  # both repeat it
            elif not isinstance(prompt, list):  # a string prompt (or none) beside conversations
                shared = 0
                while (
                    shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]
                ):
                    shared += 1
                if shared:
                    prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
                elif isinstance(prompt, str):  # assistant-only lists: the string is the user turn
                    prompt = [{"role": "user", "content": prompt}]
            if not prompt or not chosen or not rejected:
                raise ValueError(
                    f"dataset {source}: row {k}: chosen and rejected share no prompt turns or differ in "
                    "none; give a prompt column, or messages that start with the same user turn"
                )
        elif not all(isinstance(x, str) for x in (prompt, chosen, rejected)):
            raise ValueError(
                f"dataset {source}: row {k}: prompt, chosen and rejected must be all strings or "
                "chosen/rejected message lists; convert the row to one layout"
            )
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return out


def build_pairs(
    model, tokenizer, items: list[dict], cfg: PairData, task: str = "math"
) -> list[dict]:
    """Preference rows from sampled completions judged by task family ``task``'s verifier."""
    from tasks import family
    from trainers._generate import generate_completions

    verify = family(task).verify
    samples = generate_completions(
        model,
        tokenizer,
        [it["prompt"] for it in items],
        max_new_tokens=cfg.sample_max_new_tokens,
        temperature=cfg.sample_temperature,
        num_return_sequences=cfg.samples_per_prompt,
        seed=cfg.seed,
    )
    rows = []
    for item, completions in zip(items, samples, strict=True):
        right = [c for c in completions if verify(c, item["reference"]).value == 1.0]
        wrong = [c for c in completions if verify(c, item["reference"]).value < 1.0]
        if not wrong:
            continue
        if not right and not cfg.teacher_fallback:
            continue
        chosen = right[0] if right else item["teacher"]
        rows.append(
            {
                "prompt": item["prompt"],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": wrong[0]}],
            }
        )
    return rows


def read_pairs(spec: str) -> list[dict]:
    """The rows of a preference file (``dataset=``) as (prompt, chosen, rejected)."""
    rows = read_rows(spec)
    require_columns(rows, COLUMNS, spec)
    return preference_rows(rows, spec)


def verifier_pairs(model, tokenizer, cfg: PairData, method: str) -> tuple[list[dict], str]:
    """Pairs the task verifier ranks among ``model``'s samples of the config's prompts, and
    a name for their source."""
    items, task, name = task_prompts(cfg)
    rows = build_pairs(model, tokenizer, items, cfg, task)
    if not rows:
        raise ValueError(
            f"{method}: every sampled completion was correct, no preference pairs; ask harder "
            f"{cfg.sources} prompts (e.g. raise levels or num_variables)"
        )
    return rows, f"pairs({task} verifier, {name})"


def split_pairs(
    rows: list[dict], tokenizer, cfg: TrainConfig
) -> tuple[list[dict], list[dict], list[dict]]:
    """(the rows trained on: a seeded ``limit`` sample, the train split, the held-out split),
    the splits rendered as ``tokenizer``'s chat template needs them."""
    from trainers._templates import template_preferences

    rows = sample_rows(rows, cfg.limit, cfg.seed)
    train, held = split_eval(template_preferences(rows, tokenizer)[0], cfg.eval_fraction, cfg.seed)
    return rows, train, held


def main(cfg: DPOConfig) -> Manifest:
    import trl
    from datasets import Dataset

    from trainers._stage import Stage

    if cfg.dataset:  # a bad file fails before the model loads
        rows, source = read_pairs(cfg.dataset), cfg.dataset
    stage = Stage("dpo", cfg)
    model, tokenizer = stage.load()
    if not cfg.dataset:
        rows, source = verifier_pairs(model, tokenizer, cfg, "dpo")
    rows, train, held = split_pairs(rows, tokenizer, cfg)
    args = trl.DPOConfig(
        **stage.trainer_args(has_eval=bool(held)),
        max_length=stage.max_length,
        beta=cfg.beta,
        loss_type=[cfg.loss_type],
    )
    trainer = trl.DPOTrainer(
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
    raise SystemExit(cli(DPOConfig, main))
