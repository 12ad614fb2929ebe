"""Config resolution shared by every method: dataclass defaults → YAML → CLI overrides.

A method's config is a plain dataclass. :func:`resolve` layers a YAML file (or a dict,
as the harness passes) and ``key=value`` overrides on top of its defaults, checking every
key against the dataclass so a typo is a one-line error, never a silently ignored field.
The resolved config is written beside the checkpoint (:func:`save_config`).

Every field is checked by type and, where ``RANGES`` names it, by range when the config
is built (``__post_init__``), so the harness rejects ``max_steps: -5`` when a grid loads,
not after a model has trained three epochs on it. A method's config adds its own fields'
ranges as a ``RANGES`` class attribute of its own (a delta: the classes' tables merge).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from bench_core.errors import BenchError

__all__ = [
    "TrainConfig",
    "MemoryProfile",
    "FieldError",
    "Allowed",
    "at_least",
    "positive",
    "fraction",
    "one_of",
    "check_ranges",
    "resolve",
    "parse_overrides",
    "save_config",
    "config_dict",
    "field_docs",
    "cli",
]

C = TypeVar("C")


class FieldError(BenchError):
    """One config field has a value of the wrong type or out of range.

    ``field`` names it, so the harness can say ``steps.sft.max_steps`` instead of guessing
    the field from the message text.
    """

    def __init__(self, field: str, reason: str, source: str = ""):
        super().__init__(f"{source + ': ' if source else ''}field {field!r} {reason}")
        self.field = field
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Allowed:
    """The values a field accepts: numbers in [lo, hi] (``lo_open``/``hi_open`` exclude the
    end), or one of ``choices``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return f"must be one of {', '.join(self.choices)}"
        if self.hi is None:
            return f"must be {'greater than' if self.lo_open else 'at least'} {self.lo:g}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"must be in {left}{self.lo:g}, {self.hi:g}{right}"

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else what is wrong with it."""
        if self.choices:
            return None if value in self.choices else f"{self.describe()}, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if value != value or value in (float("inf"), float("-inf")):  # .nan or .inf in YAML
            return f"must be a finite number, got {value!r}"
        low = self.lo is None or (value > self.lo if self.lo_open else value >= self.lo)
        high = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return None if low and high else f"{self.describe()}, got {value!r}"


def at_least(lo: float) -> Allowed:
    return Allowed(lo=lo)


def positive() -> Allowed:
    return Allowed(lo=0, lo_open=True)


def fraction(*, hi_open: bool = False) -> Allowed:
    return Allowed(lo=0, hi=1, hi_open=hi_open)


def one_of(*choices: str) -> Allowed:
    return Allowed(choices=choices)


def check_ranges(cfg: Any) -> None:
    """Raise :class:`FieldError` for the first field outside its ``RANGES`` entry.

    The tables of every class in the config's MRO merge, so a method states only its own
    fields. ``None`` passes where the field's default is ``None`` (``limit: null``: all rows).
    """
    ranges: dict[str, Allowed] = {}
    for klass in reversed(type(cfg).__mro__):
        ranges.update(vars(klass).get("RANGES", {}))
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name, allowed in ranges.items():
        if name not in defaults:
            continue
        value = getattr(cfg, name)
        if value is None:
            if defaults[name] is None:
                continue
            raise FieldError(name, f"cannot be null; it {allowed.describe()}")
        problem = allowed.problem(value)
        if problem:
            raise FieldError(name, problem)


@dataclasses.dataclass(frozen=True)
class MemoryProfile:
    """What a method holds in memory besides the model it trains: the facts the memory
    planner (trainers/planner.py) reads from a method's config instead of its name."""

    sequences_per_row: int = 1  # forwards per training row (dpo: chosen and rejected together)
    fused_head: bool = False  # trl's fused LM head scores a tile of positions, not the sequence
    logit_tensors: int = 2  # full-vocabulary fp32 tensors per scored position at the loss's peak
    reference_copy: bool = False  # a frozen reference model in full mode (adapters disable instead)
    rollout_engine: bool = False  # generates rollouts while training (vLLM colocate, if on)
    completion_tokens: int = 0  # tokens a row trains on past max_length (grpo: its completion)
    # bytes a parameter of a separate copy that HF-path rollouts sample from (grpo's merged copy:
    # 2 in bf16, 4 in fp32); 0: generation runs on the training model or in vLLM
    rollout_copy_bytes: int = 0
    # samples with the starting model before the Trainer places it (a pair method's verifier
    # pairs): a sharded (fsdp) stage holds that model on the CPU then, so it is refused
    samples_before_training: bool = False


@dataclasses.dataclass
class TrainConfig:
    """Fields every method shares. A method's config subclasses this and adds its own.

    A method's config also declares the method's facts as class attributes, read where a
    method is keyed or planned (never re-derived from its name):

    - ``VERSION``: bumped when the method trains differently for the same config; part of
      every train cell's key.
    - ``VERIFIER_DRIVEN``: its data or reward comes from a task verifier, so a verifier's
      version is part of its cells' keys (harness/keys.py).
    - ``MEMORY``: its :class:`MemoryProfile`; :meth:`memory` refines it from field values.
    """

    VERSION: ClassVar[str]
    VERIFIER_DRIVEN: ClassVar[bool]
    MEMORY: ClassVar[MemoryProfile]

    # Where from and where to. The harness sets these through ``train_stage``.
    model: str = ""  # base model directory (the zoo's materialized path)
    parent: str | None = None  # previous stage directory; its merged weights are the start
    output_dir: str = "runs/stage"
    target: str = "cpu"  # containers/targets.yaml name: dtype, attention, GPU memory
    seed: int = 0
    trust_remote_code: bool = False  # only ever set from a zoo entry that declares it

    # Parameter-efficient training: lora, qlora (4-bit base, bitsandbytes) or full.
    mode: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: str = "all-linear"  # peft discovers Linear layers, lm_head excluded
    merge: bool = False  # also write merged weights (a child stage merges on demand anyway)

    # Data.
    dataset: str = ""
    limit: int | None = None  # a seeded sample of N rows (seed), not the first N
    eval_fraction: float = 0.0  # held out from the training rows for eval loss

    # Optimisation. per_device_batch/grad_accum None means: ask the memory planner.
    learning_rate: float = 1e-4
    max_steps: int = 100
    effective_batch: int = 8
    per_device_batch: int | None = None
    grad_accum: int | None = None
    max_length: int = 512
    max_grad_norm: float = 1.0
    warmup_steps: float = 0.0  # a count, or a fraction of max_steps when < 1
    lr_scheduler_type: str = "linear"
    weight_decay: float = 0.0
    gradient_checkpointing: bool | None = None  # None: the planner's choice (on)
    # auto: the target's dtype as autocast on CUDA (bf16/fp16), fp32 on CPU; bf16: bf16 autocast
    # on CPU too (about twice fp32's speed where the CPU has avx512_bf16/AMX); no: fp32
    mixed_precision: str = "auto"

    # Logging, checkpoints, stopping.
    logging_steps: int = 1  # every step, so the divergence guard sees every loss
    save_steps: int = 50
    save_total_limit: int = 2
    eval_steps: int = 10
    early_stopping_patience: int | None = None  # evaluations without eval-loss improvement
    divergence_factor: float = 10.0  # |loss| above factor × max(|first loss|, 1) stops the run
    resume: bool = True  # continue from the newest complete checkpoint in output_dir
    nproc: int = 1  # >1: train_stage runs the stage under torchrun/accelerate (see launch.py)

    # Checked in __post_init__; trl/transformers would accept most of these and train on
    # something else (max_steps <= 0 means "train by epochs" there).
    RANGES: ClassVar[dict[str, Allowed]] = {
        "seed": at_least(0),
        "mode": one_of("lora", "qlora", "full"),
        "lora_r": at_least(1),
        "lora_alpha": positive(),
        "lora_dropout": fraction(hi_open=True),
        "limit": at_least(1),
        "eval_fraction": fraction(hi_open=True),
        "learning_rate": positive(),
        "max_steps": at_least(1),
        "effective_batch": at_least(1),
        "per_device_batch": at_least(1),
        "grad_accum": at_least(1),
        "max_length": at_least(1),
        "max_grad_norm": at_least(0),
        "warmup_steps": at_least(0),
        "lr_scheduler_type": one_of(
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
            "reduce_lr_on_plateau",
            "cosine_with_min_lr",
            "cosine_warmup_with_min_lr",
            "warmup_stable_decay",
        ),
        "weight_decay": at_least(0),
        "mixed_precision": one_of("auto", "bf16", "fp16", "no"),
        "logging_steps": at_least(1),
        "save_steps": at_least(1),
        "save_total_limit": at_least(1),
        "eval_steps": at_least(1),
        "early_stopping_patience": at_least(1),
        "divergence_factor": positive(),
        "nproc": at_least(1),
    }

    def __post_init__(self) -> None:
        check_ranges(self)
        parent = getattr(super(), "__post_init__", None)  # a mixin's own checks, if it has any
        if parent is not None:
            parent()
        if self.early_stopping_patience and self.eval_fraction <= 0:
            raise FieldError(
                "early_stopping_patience", "needs eval_fraction > 0 (held-out rows to stop on)"
            )

    def memory(self, target: str | None = None) -> MemoryProfile:
        """This config's memory profile on ``target`` (default: its own): the class's
        ``MEMORY``, which a field's value may refine."""
        return self.MEMORY

    def rollout_vllm(self, target: str) -> bool:
        """Whether rollouts come from a vLLM colocate engine on ``target`` (methods that
        generate while training decide; the others never do)."""
        return False


def field_docs(cls: type) -> list[dict[str, Any]]:
    """Every field of a config dataclass: its name, type, default, allowed values (``RANGES``)
    and doc (the comment on its line and the comment lines just above it, where it is declared)."""
    import inspect
    import re

    comments: dict[str, str] = {}
    ranges: dict[str, Allowed] = {}
    for klass in reversed(cls.__mro__):
        ranges.update(vars(klass).get("RANGES", {}))
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        above: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#"):
                above.append(stripped.lstrip("# "))
                continue
            m = re.match(r"\s+(\w+)\s*:[^=]*=.*?(?:#\s*(.*))?$", line)
            if m and not m.group(1).isupper():
                doc = " ".join([*above, m.group(2) or ""]).strip()
                comments[m.group(1)] = doc or comments.get(m.group(1), "")
            above = []
    return [
        {
            "field": f.name,
            "type": str(f.type),
            "default": f.default if f.default is not dataclasses.MISSING else None,
            "allowed": ranges[f.name].describe() if f.name in ranges else "",
            "doc": comments.get(f.name, ""),
        }
        for f in dataclasses.fields(cls)
    ]


def config_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _coerce(text: str) -> Any:
    """A CLI value as YAML reads it: 1e-4 → float, true → bool, null → None, [a, b] → list."""
    value = yaml.safe_load(text)
    # PyYAML (YAML 1.1) reads "1e-4" as a string; a number was meant.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["learning_rate=1e-4", "merge=true"]`` → ``{"learning_rate": 1e-4, "merge": True}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("--").replace("-", "_")
        if not sep or not key:
            raise BenchError(f"override {item!r}: expected key=value, e.g. learning_rate=1e-4")
        out[key] = _coerce(value)
    return out


def _check_keys(cls: type, values: Mapping[str, Any], source: str) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"see {cls.__name__} for the fields"
            )
            raise BenchError(f"{source}: unknown {cls.__name__} field {key!r}; {hint}")


def _typed(cls: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Cast ints written as floats and numbers written as strings to the field's default type."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for key, value in values.items():
        default = defaults.get(key)
        if value is None or default is dataclasses.MISSING or default is None:
            continue
        want = type(default)
        if want is bool and not isinstance(value, bool):
            raise FieldError(key, f"must be true or false, got {value!r}", source)
        if want is str and isinstance(value, list | dict):
            raise FieldError(key, f"must be a string, got {value!r}", source)
        if want in (int, float) and not isinstance(value, bool):
            try:
                cast = want(value)
            except (TypeError, ValueError, OverflowError):
                raise FieldError(key, f"must be a number, got {value!r}", source) from None
            if want is int and cast != float(value):
                raise FieldError(key, f"must be an integer, got {value!r}", source)
            values[key] = cast
    return values


def resolve(
    cls: type[C],
    config: str | Path | Mapping[str, Any] | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> C:
    """Defaults of ``cls`` ← ``config`` (a YAML path or a dict) ← ``overrides``."""
    values: dict[str, Any] = {}
    if config is not None:
        if isinstance(config, Mapping):
            layer, source = dict(config), f"{cls.__name__} config"
        else:
            path = Path(config)
            if not path.is_file():
                raise BenchError(f"{path}: config file not found; pass an existing YAML file")
            layer = yaml.safe_load(path.read_text()) or {}
            source = str(path)
            if not isinstance(layer, dict):
                raise BenchError(f"{path}: expected a mapping of field: value at the top level")
        _check_keys(cls, layer, source)
        values.update(_typed(cls, layer, source))
    extra = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    _check_keys(cls, extra, "override")
    values.update(_typed(cls, extra, "override"))
    return cls(**values)


def save_config(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))


def cli(cls: type[C], main: Callable[[C], Any], argv: Sequence[str] | None = None) -> int:
    """``python -m trainers.<method> [--config FILE] [key=value ...]`` (also under torchrun)."""
    args = list(sys.argv[1:] if argv is None else argv)
    config = None
    if "--config" in args:
        i = args.index("--config")
        config = args[i + 1]
        del args[i : i + 2]
    try:
        cfg = resolve(cls, config, args)
        main(cfg)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
