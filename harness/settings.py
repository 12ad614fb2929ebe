"""Eval settings: what a grid (or the CLI) asks for, and what a model actually gets.

A grid states deltas (``EvalSettings``); :func:`resolve_eval` fills every field from the
model's zoo entry, so the key and the record hold the effective values: whether the chat
template is used, the generation budget, the context, the sampling and the number of
samples per prompt. Zoo → grid → CLI: a value the grid or CLI sets wins over the zoo's.

A thinking model's reasoning is scored as emitted by bench's own tasks (their verifiers read the
``<think>`` block on purpose), while lm-eval's own generative tasks (gsm8k, ...) score the text
after its end tag (lm-eval's ``think_end_token``): ``think_end_token`` is set, and so in the key,
only for a thinking model's cell with such a task, the one cell whose scores it changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

from harness.backends import BACKENDS, names

__all__ = ["EvalSettings", "ResolvedEval", "resolve_eval", "THINKING_GEN_TOKS", "THINK_END"]

THINKING_GEN_TOKS = 32768  # reasoning models' authors' budget, bounded by the context
DEFAULT_CONTEXT = 4096  # when the zoo does not know a model's context
THINK_END = "</think>"  # closes the reasoning of the zoo's thinking models (DeepSeek-R1 distills)


class EvalSettings(BaseModel):
    """A grid's ``eval:`` block. ``None`` means: the zoo decides for each model."""

    model_config = ConfigDict(extra="forbid")
    backend: str = "hf"  # a harness.backends.BACKENDS name
    limit: int | None = Field(default=None, ge=1)
    num_fewshot: int | None = Field(default=None, ge=0)
    apply_chat_template: bool | None = None
    max_gen_toks: int | None = Field(default=None, ge=1)
    max_model_len: int | None = Field(default=None, ge=16)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    repeats: int | None = Field(default=None, ge=1)
    gen_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = (
        8  # a speed knob: not part of the cell key
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(f"must be {names()}")
        return v

    @field_validator("gen_kwargs")
    @classmethod
    def _plain_kwargs(cls, v: dict[str, Any]) -> dict[str, Any]:
        # lm-eval's generation kwargs are flat: numbers, strings, booleans, lists of strings
        for key, value in v.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"key {key!r}: must be a keyword name such as until")
            items = value if isinstance(value, list) else [value]
            if isinstance(value, list) and len(value) > 64:
                raise ValueError(f"{key}: at most 64 entries")
            for x in items:
                if not isinstance(x, str | int | float | bool) and x is not None:
                    raise ValueError(f"{key}: must be a number, string, true/false or a list")
                if isinstance(x, float) and not math.isfinite(x):
                    raise ValueError(f"{key}: must be a finite number")
                if isinstance(x, str) and len(x) > 1000:
                    raise ValueError(f"{key}: a string of at most 1000 characters")
        return v


class ResolvedEval(BaseModel):
    """Every setting with its effective value for one model: part of the eval cell's key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: str
    limit: int | None
    num_fewshot: int
    apply_chat_template: bool
    max_gen_toks: int | None  # None: each task's own budget (its version covers it)
    max_model_len: int
    temperature: float
    top_p: float
    repeats: int
    gen_kwargs: dict[str, Any]
    # lm-eval's own generative tasks score the text after this tag; None: every task sees it all
    think_end_token: str | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict[str, Any]:
        # absent where it is None: the payload, and so the key, of every other cell stays as it was
        data = handler(self)
        if data.get("think_end_token") is None:
            data.pop("think_end_token", None)
        return data

    def generation_kwargs(self) -> dict[str, Any]:
        """lm-eval ``gen_kwargs``: the budget and the sampling, over the grid's extra kwargs."""
        sampling = {"do_sample": self.temperature > 0}
        if self.temperature > 0:
            sampling |= {"temperature": self.temperature, "top_p": self.top_p}
        budget = {"max_gen_toks": self.max_gen_toks} if self.max_gen_toks else {}
        return {**self.gen_kwargs, **budget, **sampling}

    def tag(self, after_thinking: bool = False) -> str:
        """A short label of what a board column was measured with (limit, shots, template, sampling);
        ``after_thinking``: the task scored the text after ``think_end_token``."""
        parts = [
            f"n≤{self.limit}" if self.limit else "full",
            f"{self.num_fewshot}-shot",
            "chat" if self.apply_chat_template else "plain",
        ]
        if self.max_gen_toks:
            parts.append(f"{self.max_gen_toks}tok")
        if self.temperature > 0:
            parts.append(f"T{self.temperature:g}×{self.repeats}")
        if after_thinking and self.think_end_token:
            parts.append(f"after {self.think_end_token}")
        return " ".join(parts)


def resolve_eval(spec, settings: EvalSettings, tasks: Sequence[str] = ()) -> ResolvedEval:
    """Zoo entry ``spec`` (a harness.zoo.ModelSpec) + grid/CLI ``settings`` → effective settings
    for a cell of ``tasks`` (leaf names)."""
    from harness.taskinfo import builtin_generates

    context = spec.context_length or DEFAULT_CONTEXT
    chat = (
        spec.chat_template_required
        if settings.apply_chat_template is None
        else settings.apply_chat_template
    )
    thinks = spec.thinks
    budget = settings.max_gen_toks or settings.gen_kwargs.get("max_gen_toks")
    budget = budget or (THINKING_GEN_TOKS if thinks else None)
    max_len = settings.max_model_len or context
    temperature = (
        settings.temperature if settings.temperature is not None else (0.6 if thinks else 0.0)
    )
    top_p = settings.top_p if settings.top_p is not None else (0.95 if thinks else 1.0)
    repeats = (
        settings.repeats
        if settings.repeats is not None
        else (4 if thinks and temperature > 0 else 1)
    )
    extra = {
        k: v
        for k, v in settings.gen_kwargs.items()
        if k not in ("max_gen_toks", "do_sample", "temperature", "top_p")
    }
    return ResolvedEval(
        backend=settings.backend,
        limit=settings.limit,
        num_fewshot=settings.num_fewshot or 0,
        apply_chat_template=chat,
        max_gen_toks=min(int(budget), max(max_len - 256, 16)) if budget else None,
        max_model_len=min(max_len, context),
        temperature=float(temperature),
        top_p=float(top_p),
        repeats=int(repeats),
        gen_kwargs=extra,
        think_end_token=THINK_END if thinks and any(map(builtin_generates, tasks)) else None,
    )
