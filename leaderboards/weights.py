"""How one checkpoint's weights differ from another's, tensor by tensor.

A (before) and B (after) are directories of safetensors (one file or shards with an index),
or B is a peft LoRA adapter over A, whose ΔW = scale · B @ A is formed per module and never
as a merged model. Tensors are streamed in row chunks, so memory stays near a few chunks
(``rank=True`` holds one tensor pair in fp32 for its SVDs).

Per tensor: the relative Frobenius norm ‖ΔW‖/‖W_A‖ and the update sparsity, the share of
elements with |ΔW| ≤ tol, both computed in ``dtype``: A and B are cast to it and Δ is taken
in it (bf16 by default, the RL-subnetwork literature's definition: an fp32 change smaller
than bf16's spacing is no change). With ``rank=True``, in fp32: rank(ΔW)/min(m, n), the
spectral drift ‖σ(B) − σ(A)‖/‖σ(A)‖ and the overlap ‖U_Aᵀ U_B‖²_F / k of the top-k singular
subspaces (mean of left and right). A layer's or module type's figure is the mean over its
tensors; the summary's are over all parameters (numel-weighted sparsity, global norm ratio).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_core.errors import BenchError
from leaderboards._weights_io import read_lora, tensor_shapes, weight_files
from leaderboards.analysis_doc import WeightsDoc

__all__ = [
    "DTYPES",
    "DEFAULT_TOLS",
    "MODULE_ORDER",
    "TensorDiff",
    "WeightDiff",
    "compare_weights",
    "parse_name",
    "subspace_overlap",
    "spectral_drift",
    "tol_key",
]

DTYPES = ("bf16", "fp16", "fp32")
DEFAULT_TOLS = ("0", "1e-5", "1e-4")
MODULE_ORDER = (
    "embed",
    "q",
    "k",
    "v",
    "qkv",
    "o",
    "gate",
    "up",
    "gate_up",
    "down",
    "norm",
    "lm_head",
    "other",
)
CHUNK = 1 << 22  # elements per streamed chunk: its float64 temporaries are 32 MB

_MODULES = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "qkv_proj": "qkv",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
    "gate_up_proj": "gate_up",
    "embed_tokens": "embed",
    "wte": "embed",
    "lm_head": "lm_head",
}
_LAYER = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


def parse_name(name: str) -> tuple[int | None, str]:
    """(layer index or None, module type) of a Llama/Qwen2/Phi-3/Mistral tensor name."""
    m = _LAYER.search("." + name)
    parts = name.split(".")
    if parts[-1] in ("weight", "bias"):
        parts = parts[:-1]
    last = parts[-1] if parts else ""
    if last in _MODULES:
        module = _MODULES[last]
    elif "norm" in last or last.startswith("ln_"):
        module = "norm"
    else:
        module = "other"
    return (int(m[1]) if m else None), module


def tol_key(tol: str | float) -> str:
    """Tolerances are keyed as written (``"1e-5"``), so JSON keys match the command line."""
    return tol.strip() if isinstance(tol, str) else str(tol)


def subspace_overlap(u, v) -> float:
    """‖UᵀV‖²_F / k for orthonormal column bases U, V of k columns: 1 same span, 0 orthogonal."""
    k = min(u.shape[1], v.shape[1])
    if k == 0:
        return math.nan
    return float((u[:, :k].T @ v[:, :k]).pow(2).sum() / k)


def spectral_drift(sa, sb) -> float:
    """‖σ(B) − σ(A)‖ / ‖σ(A)‖ over singular values sorted descending."""
    den = float(sa.norm())
    return math.nan if den == 0 else float((sb - sa).norm() / den)


@dataclass
class TensorDiff:
    name: str
    layer: int | None
    module: str
    numel: int
    shape: list[int]
    sparsity: dict[str, float]  # tol as written -> share of |ΔW| <= tol
    rel_norm: float
    rank_ratio: float | None = None
    spectral_drift: float | None = None
    overlap: float | None = None
    note: str | None = None
    sq_delta: float = field(default=0.0, repr=False)  # ‖ΔW‖² and ‖W_A‖², for the summary
    sq_a: float = field(default=0.0, repr=False)


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def _group(tensors: list[TensorDiff], tols: list[str]) -> dict:
    return {
        "n_tensors": len(tensors),
        "numel": sum(t.numel for t in tensors),
        "sparsity": {k: _mean(t.sparsity[k] for t in tensors) for k in tols},
        "density": {k: 1 - _mean(t.sparsity[k] for t in tensors) for k in tols},
        "rel_norm": _mean(t.rel_norm for t in tensors),
        "rank_ratio": _mean(t.rank_ratio for t in tensors),
        "spectral_drift": _mean(t.spectral_drift for t in tensors),
        "overlap": _mean(t.overlap for t in tensors),
    }


@dataclass
class WeightDiff:
    a: str
    b: str
    dtype: str
    mode: str  # "full" (two checkpoints) or "lowrank" (B is a LoRA adapter over A)
    tols: list[str]
    tensors: list[TensorDiff]
    skipped: list[dict] = field(default_factory=list)  # {name, reason}
    top_k: int = 16
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)  # who A and B are (model, stages), set by the caller

    def summary(self) -> dict:
        num = sum(t.numel for t in self.tensors)
        den = sum(t.sq_a for t in self.tensors)
        return {
            "n_tensors": len(self.tensors),
            "numel": num,
            "sparsity": {
                k: (sum(t.sparsity[k] * t.numel for t in self.tensors) / num if num else None)
                for k in self.tols
            },
            "rel_norm": math.sqrt(sum(t.sq_delta for t in self.tensors) / den) if den else None,
            "rank_ratio": _mean(t.rank_ratio for t in self.tensors),
        }

    def layers(self) -> list[dict]:
        idx = sorted({t.layer for t in self.tensors if t.layer is not None})
        return [
            {"layer": i, **_group([t for t in self.tensors if t.layer == i], self.tols)}
            for i in idx
        ]

    def modules(self) -> list[dict]:
        present = [m for m in MODULE_ORDER if any(t.module == m for t in self.tensors)]
        return [
            {"module": m, **_group([t for t in self.tensors if t.module == m], self.tols)}
            for m in present
        ]

    def document(self) -> WeightsDoc:
        """The comparison as ``results/analysis/weights-*.json`` holds it (NaN as null)."""
        return WeightsDoc.model_validate(_finite(self._dict()))

    def _dict(self) -> dict:
        keep = (
            "name",
            "layer",
            "module",
            "numel",
            "shape",
            "sparsity",
            "rel_norm",
            "rank_ratio",
            "spectral_drift",
            "overlap",
            "note",
        )
        return {
            "a": self.a,
            "b": self.b,
            "dtype": self.dtype,
            "mode": self.mode,
            "tolerances": self.tols,
            "top_k": self.top_k,
            "seconds": self.seconds,
            "meta": self.meta,
            "summary": self.summary(),
            "tensors": [{k: v for k, v in asdict(t).items() if k in keep} for t in self.tensors],
            "layers": self.layers(),
            "modules": self.modules(),
            "skipped": self.skipped,
        }

    def to_json(self) -> str:
        return self.document().model_dump_json(indent=2) + "\n"


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise BenchError(f"dtype '{dtype}': choose one of {', '.join(DTYPES)}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def _read(path: Path, name: str, i: int, j: int, shape: tuple[int, ...]):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as h:  # closed per chunk: see _weights_io's docstring
        return h.get_slice(name)[i:j] if shape else h.get_tensor(name)


def _row_chunks(shape: tuple[int, ...], rows: int) -> list[tuple[int, int]]:
    per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
    step = max(1, CHUNK // max(1, per_row))
    return [(i, min(rows, i + step)) for i in range(0, max(rows, 1), step)]


def _stream(name_a, name_b, fa, fb, shape, rows, dt, tols: list[float], lora=None):
    """(counts of |Δ| <= tol, ‖Δ‖², ‖W_A‖²) over the first ``rows`` rows, chunk by chunk."""
    import torch

    counts, sq_d, sq_a = [0] * len(tols), 0.0, 0.0
    for i, j in _row_chunks(shape, rows):
        a = _read(fa, name_a, i, j, shape).to(dt)
        if lora is None:
            b = _read(fb, name_b, i, j, shape).to(dt)
        else:  # the merged rows in dt, as a merged checkpoint would store them
            b = (a.to(torch.float32) + lora(i, j)).to(dt)
        ad = (b - a).abs().to(torch.float64)  # Δ taken in dt; float64 compares tol exactly
        for n, tol in enumerate(tols):
            counts[n] += int((ad <= tol).sum())
        sq_d += float(ad.pow(2).sum())
        sq_a += float(a.to(torch.float64).pow(2).sum())
    return counts, sq_d, sq_a


def _lora_rows(f):
    """Rows i..j of ΔW in fp32, from the factors (an embedding's ΔW is (B @ A)ᵀ)."""

    def rows(i: int, j: int):
        return f.scale * ((f.b @ f.a[:, i:j]).T if f.embedding else f.b[i:j] @ f.a)

    return rows


def _lora_shape(f) -> tuple[int, int]:
    return (f.a.shape[1], f.b.shape[0]) if f.embedding else (f.b.shape[0], f.a.shape[1])


def _spectra(wa, wb, top_k: int) -> tuple[float, float]:
    import torch

    ua, sa, vha = torch.linalg.svd(wa, full_matrices=False)
    ub, sb, vhb = torch.linalg.svd(wb, full_matrices=False)
    k = min(top_k, sa.numel())
    ov = (subspace_overlap(ua[:, :k], ub[:, :k]) + subspace_overlap(vha[:k].T, vhb[:k].T)) / 2
    return spectral_drift(sa, sb), ov


def _lora_rank(f, shape) -> float:
    """rank(scale·B@A) from its r×r core R_B R_Aᵀ (B = Q_B R_B, Aᵀ = Q_A R_A): no m×n SVD."""
    import torch

    rb = torch.linalg.qr(f.b, mode="r")[1]
    ra = torch.linalg.qr(f.a.T, mode="r")[1]
    eps = torch.finfo(torch.float32).eps
    return int(torch.linalg.matrix_rank(rb @ ra.T, rtol=max(shape) * eps)) / min(shape)


def _same_architecture(a: Path, b: Path) -> None:
    """Two checkpoints of different architectures share tensor names (``model.layers.0...``)
    but not meaning: a Δ between them is no update of one model, so it is refused."""

    def arch(p: Path):
        try:
            cfg = json.loads((p / "config.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(cfg, dict):
            return None
        return cfg.get("model_type"), tuple(cfg.get("architectures") or ())

    xa, xb = arch(a), arch(b)
    if xa and xb and xa != xb:
        raise BenchError(
            f"A ({xa[0]}) and B ({xb[0]}) are different architectures; compare a stage with its "
            "parent or its base model"
        )


def compare_weights(
    a: str | Path,
    b: str | Path,
    *,
    adapter: str | Path | None = None,
    dtype: str = "bf16",
    tols: Sequence[str | float] = DEFAULT_TOLS,
    rank: bool = False,
    top_k: int = 16,
) -> WeightDiff:
    """Compare checkpoint ``a`` with ``b``, or with ``a`` + the LoRA ``adapter`` (then b is ignored)."""
    import torch

    t0 = time.perf_counter()
    dt = _torch_dtype(dtype)
    keys = [tol_key(t) for t in tols]
    try:
        tol_values = [float(k) for k in keys]
    except ValueError:
        raise BenchError(f"tolerances {keys}: each must be a number, e.g. 0,1e-5,1e-4") from None
    files_a = weight_files(a)
    shapes_a = tensor_shapes(files_a)
    if adapter is not None:
        factors, replaced = read_lora(adapter, set(files_a))
        files_b = {n: Path(adapter) / "adapter_model.safetensors" for n in replaced}
        files_b.update({n: files_a[n] for n in files_a if n not in replaced})
        saved = tensor_shapes({key: files_b[n] for n, key in replaced.items()})
        shapes_b = {**shapes_a, **{n: saved[key] for n, key in replaced.items()}}
        names_b = {n: replaced.get(n, n) for n in files_b}
    else:
        _same_architecture(Path(a), Path(b))
        factors, files_b = {}, weight_files(b)
        shapes_b = tensor_shapes(files_b)
        names_b = {n: n for n in files_b}
    out = WeightDiff(
        str(a),
        str(adapter if adapter is not None else b),
        dtype,
        "lowrank" if adapter is not None else "full",
        keys,
        [],
        top_k=top_k,
    )
    out.skipped += [{"name": n, "reason": "only in A"} for n in sorted(set(files_a) - set(files_b))]
    out.skipped += [{"name": n, "reason": "only in B"} for n in sorted(set(files_b) - set(files_a))]
    for name in [n for n in files_a if n in files_b]:
        sa, sb, note = shapes_a[name], shapes_b[name], None
        rows = sa[0] if sa else 1
        if sa != sb:
            if len(sa) != len(sb) or sa[1:] != sb[1:]:
                out.skipped.append(
                    {"name": name, "reason": f"shapes differ: {list(sa)} vs {list(sb)}"}
                )
                continue
            rows = min(sa[0], sb[0])  # a resized vocabulary: compare the rows both have
            note = f"first {rows} rows compared (shapes {list(sa)} vs {list(sb)})"
        f = factors.get(name)
        if f is not None and _lora_shape(f) != tuple(sa):
            raise BenchError(
                f"{adapter}: LoRA factors for '{name}' give ΔW {list(_lora_shape(f))}, base "
                f"tensor is {list(sa)}; is this adapter for this base model?"
            )
        untouched = adapter is not None and f is None and name not in replaced
        lora = (
            _lora_rows(f) if f is not None else ((lambda i, j: 0.0) if untouched else None)
        )  # B = A: read A once
        counts, sq_d, sq_a = _stream(
            name, names_b[name], files_a[name], files_b[name], sa, rows, dt, tol_values, lora
        )
        numel = rows * (math.prod(sa[1:]) if len(sa) > 1 else 1)
        t = TensorDiff(
            name,
            *parse_name(name),
            numel=numel,
            shape=list(sa),
            sparsity={k: c / numel for k, c in zip(keys, counts, strict=True)},
            rel_norm=math.sqrt(sq_d / sq_a) if sq_a else (0.0 if sq_d == 0 else math.inf),
            note=note or ("not in adapter" if untouched else None),
            sq_delta=sq_d,
            sq_a=sq_a,
        )
        if rank and len(sa) == 2 and untouched:
            t.rank_ratio, t.spectral_drift, t.overlap = 0.0, 0.0, 1.0
        elif rank and len(sa) == 2:
            wa = _read(files_a[name], name, 0, rows, sa).to(torch.float32)
            if f is not None:
                wb = wa + lora(0, rows)
                t.rank_ratio = _lora_rank(f, sa)
            else:
                wb = _read(files_b[name], names_b[name], 0, rows, sb).to(torch.float32)
                t.rank_ratio = int(torch.linalg.matrix_rank(wb - wa)) / min(wa.shape)
            t.spectral_drift, t.overlap = _spectra(wa, wb, top_k)
            del wa, wb
        out.tensors.append(t)
    out.seconds = time.perf_counter() - t0
    return out
