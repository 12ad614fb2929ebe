"""Safetensors checkpoints and peft LoRA adapters, read one tensor at a time.

A file is opened per tensor and closed after it: ``safe_open`` memory-maps the whole file,
and the pages a read touches stay resident (and in RSS) until the map is closed. Opening
per tensor keeps at most the tensors in hand resident, never a whole shard.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench_core.errors import BenchError

__all__ = [
    "weight_files",
    "tensor_shapes",
    "open_tensor",
    "LoraFactor",
    "read_lora",
    "ADAPTER_CONFIG",
]

INDEX = "model.safetensors.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def weight_files(model_dir: str | Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file that holds it (single file, index, or all shards)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise BenchError(f"{d}: not a directory; pass a model directory of *.safetensors files")
    index = d / INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as e:
            raise BenchError(
                f"{index}: no readable 'weight_map' ({e}); re-download the checkpoint"
            ) from None
        missing = {f for f in weight_map.values() if not (d / f).exists()}
        if missing:
            raise BenchError(
                f"{index}: shard(s) {sorted(missing)} missing; re-download the checkpoint"
            )
        return {name: d / f for name, f in weight_map.items()}
    files = sorted(p for p in d.glob("*.safetensors") if p.name != ADAPTER_WEIGHTS)
    if not files:
        raise BenchError(
            f"{d}: no *.safetensors files (a .bin checkpoint? convert it to safetensors)"
        )
    from safetensors import safe_open

    out = {}
    for f in files:
        with safe_open(f, framework="pt") as h:
            out.update({name: f for name in h.keys()})
    return out


def tensor_shapes(files: dict[str, Path]) -> dict[str, tuple[int, ...]]:
    """Shapes from the headers only (no tensor data is read)."""
    from safetensors import safe_open

    out: dict[str, tuple[int, ...]] = {}
    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        by_file.setdefault(f, []).append(name)
    for f, names in by_file.items():
        with safe_open(f, framework="pt") as h:
            for name in names:
                out[name] = tuple(h.get_slice(name).get_shape())
    return out


@contextmanager
def open_tensor(path: Path, name: str) -> Iterator:
    """A safetensors slice handle for one tensor; ``h[i:j]`` reads rows i..j only."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as h:
        yield h.get_slice(name)


@dataclass
class LoraFactor:
    """ΔW = scale · B @ A for one base tensor (``embedding``: ΔW = scale · (B @ A)ᵀ)."""

    a: object  # torch.Tensor [r, in]
    b: object  # torch.Tensor [out, r]
    scale: float
    embedding: bool = False


_LORA_KEY = re.compile(
    r"^(?P<mod>.+?)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.default)?(?:\.weight)?$"
)


def _pattern_value(patterns: dict, module: str, default):
    # peft matches rank_pattern / alpha_pattern keys as a suffix of the module path
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def read_lora(
    adapter_dir: str | Path, base_names: set[str]
) -> tuple[dict[str, LoraFactor], dict[str, str]]:
    """(base tensor name -> LoRA factors, base tensor name -> replacement tensor key).

    The replacements are ``modules_to_save`` copies, stored whole in the adapter file.
    """
    import torch
    from safetensors import safe_open

    d = Path(adapter_dir)
    try:
        cfg = json.loads((d / ADAPTER_CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise BenchError(
            f"{d / ADAPTER_CONFIG}: not a readable peft adapter config ({e})"
        ) from None
    if cfg.get("use_dora"):
        raise BenchError(
            f"{d / ADAPTER_CONFIG}: use_dora=true is not a plain low-rank ΔW; analyse the merged weights (--merged)"
        )
    if not (d / ADAPTER_WEIGHTS).exists():
        raise BenchError(
            f"{d}: no {ADAPTER_WEIGHTS}; an adapter saved as .bin must be converted to safetensors"
        )
    r0, alpha0 = int(cfg.get("r", 8)), float(cfg.get("lora_alpha", 8))
    rslora = bool(cfg.get("use_rslora"))

    def base_name(mod: str) -> str | None:
        mod = mod.removeprefix("base_model.model.")
        for cand in (
            f"{mod}.weight",
            f"model.{mod}.weight",
            mod.removeprefix("model.") + ".weight",
        ):
            if cand in base_names:
                return cand
        return None

    parts: dict[str, dict[str, object]] = {}
    replaced: dict[str, str] = {}
    with safe_open(d / ADAPTER_WEIGHTS, framework="pt") as h:
        for key in h.keys():
            m = _LORA_KEY.match(key)
            if m is None:
                # peft saves modules_to_save copies under the base name (prefix aside)
                target = base_name(key.removesuffix(".weight")) if key.endswith(".weight") else None
                if target is not None:
                    replaced[target] = key
                continue
            parts.setdefault(m["mod"], {})[m["kind"]] = h.get_tensor(key).to(torch.float32)
    factors = {}
    for mod, p in parts.items():
        target = base_name(mod)
        emb = "lora_embedding_A" in p
        a, b = (
            (p.get("lora_embedding_A"), p.get("lora_embedding_B"))
            if emb
            else (p.get("lora_A"), p.get("lora_B"))
        )
        if target is None or a is None or b is None:
            raise BenchError(
                f"{d / ADAPTER_WEIGHTS}: LoRA module '{mod}' has no base tensor or lacks A/B; "
                "is this adapter for this base model?"
            )
        short = mod.removeprefix("base_model.model.")
        r = int(_pattern_value(cfg.get("rank_pattern") or {}, short, r0))
        alpha = float(_pattern_value(cfg.get("alpha_pattern") or {}, short, alpha0))
        scale = alpha / math.sqrt(r) if rslora else alpha / r
        factors[target] = LoraFactor(a=a, b=b, scale=scale, embedding=emb)
    return factors, replaced
