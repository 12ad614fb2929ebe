"""Training rows as a tokenizer's chat template needs them, decided by probing the template.

trl renders conversational rows through the tokenizer's chat template. Two kinds of
template cannot train on them as they are:

- a template that drops the reasoning from assistant turns (DeepSeek-R1-Distill renders
  ``content.split('</think>')[-1]``): a ``<think>`` trace would train on the answer only;
- no template at all (gpt2): trl cannot render conversational rows.

For both, rows become plain-text prompt/completion (trl's standard layout, completion-only
loss): the prompt is the template's rendering of the turns with the generation prompt
(without a template: the turns' text, one paragraph each), the completion the raw
assistant text, so the trace is what the model is trained on. When the generation prompt
already opens ``<think>`` (R1), the completion's own opener is dropped, as the model
never emits it there. Templates that keep the reasoning get the rows unchanged.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "KEEPS",
    "STRIPS_REASONING",
    "NO_TEMPLATE",
    "template_kind",
    "template_rows",
    "template_preferences",
]

KEEPS, STRIPS_REASONING, NO_TEMPLATE = "keeps", "strips-reasoning", "no-template"
PROBE = "bench-probe-reasoning-7f3a"  # a text no template adds on its own
OPENER = "<think>"


def template_kind(tokenizer) -> str:
    """How ``tokenizer``'s chat template renders an assistant turn's ``<think>`` reasoning."""
    if not getattr(tokenizer, "chat_template", None):
        return NO_TEMPLATE
    probe = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": f"{OPENER}{PROBE}</think>answer"},
    ]
    text = tokenizer.apply_chat_template(probe, tokenize=False)
    return KEEPS if PROBE in text else STRIPS_REASONING


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # messages: the assistant turns' text
        return "".join(m["content"] for m in content if m.get("role", "assistant") == "assistant")
    raise ValueError(
        f"training row: completion of type {type(content).__name__}; use text or messages"
    )


def _split(row: dict) -> tuple[list[dict] | str, str]:
    """(the turns before the last assistant turn, that turn's text)."""
    if "messages" in row:
        messages = row["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise ValueError(
                "training row: messages without an assistant turn; every row needs one"
            )
        return messages[:last], messages[last]["content"]
    return row["prompt"], _text(row["completion"])


def _after_opener(prompt: str, completion: str) -> str:
    """The completion without the ``<think>`` opener the generation prompt already holds."""
    body = completion.lstrip()
    if prompt.rstrip().endswith(OPENER) and body.startswith(OPENER):
        body = body[len(OPENER) :]
        return body.lstrip("\n") if prompt.endswith("\n") else body
    return completion


def _prompt_text(turns: list[dict], tokenizer, kind: str) -> str:
    if kind == NO_TEMPLATE:
        return "".join(f"{m['content']}\n\n" for m in turns)
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token
    # trl tokenizes a text prompt with the tokenizer's special tokens: a BOS the template
    # rendered would then be doubled
    if (
        bos
        and prompt.startswith(bos)
        and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    ):
        prompt = prompt[len(bos) :]
    return prompt


def template_rows(rows: list[dict], tokenizer) -> tuple[list[dict], str]:
    """``rows`` (trl conversational or standard) as ``tokenizer`` can train on them, and the
    template's kind (:func:`template_kind`)."""
    kind = template_kind(tokenizer)
    if kind == KEEPS:
        return rows, kind
    out = []
    for row in rows:
        turns, completion = _split(row)
        if isinstance(turns, str):  # already plain text: nothing for a template to drop
            out.append({"prompt": turns, "completion": completion})
            continue
        prompt = _prompt_text(turns, tokenizer, kind)
        out.append({"prompt": prompt, "completion": _after_opener(prompt, completion)})
    return out, kind


def template_preferences(rows: list[dict], tokenizer) -> tuple[list[dict], str]:
    """Preference rows (prompt, chosen, rejected) the same way: plain text when the template
    would drop the traces from chosen and rejected, or when there is no template."""
    kind = template_kind(tokenizer)
    if kind == KEEPS:
        return rows, kind
    out = []
    for row in rows:
        if isinstance(row["prompt"], str):
            out.append(row)
            continue
        prompt = _prompt_text(row["prompt"], tokenizer, kind)
        chosen, rejected = (_after_opener(prompt, _text(row[c])) for c in ("chosen", "rejected"))
        out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return out, kind
