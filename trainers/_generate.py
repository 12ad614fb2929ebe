"""Batched HF generation from chat prompts (left padding), for DPO pair building and the
learning benchmark. The chat template comes from the tokenizer."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["generate_completions"]


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[list[dict[str, str]]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    num_return_sequences: int = 1,
    batch_size: int = 16,
    seed: int = 0,
) -> list[list[str]]:
    """For each conversation prompt, ``num_return_sequences`` completions (greedy at 0.0)."""
    import torch

    torch.manual_seed(seed)
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    device = next(model.parameters()).device
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [
                tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                for p in prompts[start : start + batch_size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
                device
            )
            sampling = (
                dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
                if temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            )
            with torch.no_grad():
                ids = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=num_return_sequences,
                    pad_token_id=tokenizer.pad_token_id,
                    **sampling,
                )
            new = ids[:, enc["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i in range(0, len(decoded), num_return_sequences):
                out.append([d.strip() for d in decoded[i : i + num_return_sequences]])
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out
