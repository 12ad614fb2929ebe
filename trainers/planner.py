"""Memory planner: per-device memory of a training stage, the batch layout and topology.

``plan(model, method, target, seq_len, mode, effective_batch)`` estimates, per device,
weights + adapter + gradients + optimizer states + activations (GB = 1e9 bytes), then
picks the largest per-device batch (a power of two) that fits the target's memory and
the gradient accumulation reaching ``effective_batch``. A model too large for one device
is sharded with ``fsdp`` (adapters and full fine-tuning alike; never a 4-bit base, which
FSDP2 leaves unsharded) over as few of the node's GPUs as fit. What a method holds besides
the model (reference copy, rollout engine or copy, sequences and completion tokens per row,
trl's fused LM head) is its config's ``MemoryProfile``; :func:`plan_for` plans a stage from
its resolved config object. Estimates are deliberately simple (formulas below, checked
against measured peaks in the stage manifests), not a simulator.

On a CPU the plan is the process's peak RSS, measured against it by
ci/perf/plan_vs_measured.py. The stage sets trl's fused head to small tiles there and glibc to
return freed blocks (trainers/_host.py), so the head costs a fixed few tiles, not logits per
position, and what is freed does not stay resident.

Mixture-of-experts models (``num_experts`` > 1) hold every expert's weights, so weights,
their sharding and a full fine-tune's gradients and optimizer states count all experts;
a token passes through ``experts_per_token`` of them, so stored activations and the
compute estimate (``active_params``: 6 × active params FLOPs per trained token) count the
active ones only. transformers keeps the experts as fused 3-D parameters, not ``Linear``
layers: peft's all-linear adapts attention only, and bitsandbytes leaves the experts in
the compute dtype under qlora.

Model facts come from, in order: a ``ModelFacts``; a mapping of numbers; a model
directory (config.json plus the safetensors headers, exact); an object with
``params``/``hidden_size``/``num_layers``. The planner knows no zoo names (trainers do
not import the harness): ``harness.zoo.planner_facts(name)`` turns a name into one of these.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench_core.errors import BenchError
from trainers._config import MemoryProfile
from trainers._host import CPU_TILE
from trainers.methods import METHODS, method_config

__all__ = [
    "ModelFacts",
    "Plan",
    "plan",
    "plan_for",
    "plan_config",
    "serving_gpus",
    "model_facts",
    "TOPOLOGIES",
    "MODES",
]

# FSDP (FSDP2, trl's fsdp2.yaml) shards adapters and full fine-tuning alike: ZeRO-3 would need
# DeepSpeed, which no image installs (an sdist that JIT-builds its ops on first use)
TOPOLOGIES = ("single", "ddp", "fsdp")
MODES = ("lora", "qlora", "full")
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
NF4_BYTES = 0.516  # 4-bit NF4 + double-quantized block constants (~0.127 bit/param)
FUSED_TILE = 256  # trl's fused LM head scores this many positions at a time (estimate)
# On a CPU trl's fused head runs its torch fallback in tiles of trainers._host.CPU_TILE
# (positions × vocabulary columns, set by the stage): its backward holds 9 tile-sized fp32
# tensors at once (the tile, the scaled logits twice, log p, p, the gradient and three
# temporaries), whatever the batch
FUSED_CPU_TILES = 9
CUDA_OVERHEAD_GB = 0.5  # context, cuBLAS workspace, allocator slack
# On CPU the plan is the process's RSS: the interpreter, torch, transformers, trl and the
# harness come to 0.67 GB, 0.76 GB once the tokenizer and the model are loaded but no weight
# is touched yet (the smoke GRPO stage; ci/perf/plan_vs_measured.py)
HOST_OVERHEAD_GB = 0.8
VLLM_RUNTIME_GB = 1.0  # a vLLM engine's own activations, sampler and CUDA context
GB = 1e9
GIB = 2**30
# Full-vocabulary fp32 tensors per position that the LM-head loss keeps at its peak: the
# logits and their gradient (trl's losses, a fused head's tile).
LOGIT_TENSORS = 2


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    name: str
    params: float
    hidden_size: int
    num_layers: int
    vocab_size: int | None = None
    intermediate_size: int | None = None
    kv_ratio: float = 1.0  # num_key_value_heads / num_attention_heads (GQA); 1 when unknown
    tied_embeddings: bool = True
    num_experts: int = 1  # MoE: experts per layer (all held in memory)
    experts_per_token: int = 1  # MoE: experts each token is routed through

    @property
    def embedding_params(self) -> float:
        if not self.vocab_size:
            return 0.0
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def mlp_size(self) -> int:
        """intermediate_size, or what the per-layer parameter count implies."""
        if self.intermediate_size:
            return self.intermediate_size
        h = self.hidden_size
        per_layer = (self.params - self.embedding_params) / self.num_layers
        attn = 2 * h * h + 2 * h * h * self.kv_ratio
        return max(int((per_layer - attn) / (3 * h * self.num_experts)), h)

    @property
    def expert_params(self) -> float:
        """Weights of all experts' MLPs (0 for a dense model)."""
        if self.num_experts <= 1:
            return 0.0
        return self.num_experts * self.num_layers * 3 * self.hidden_size * self.mlp_size

    @property
    def active_params(self) -> float:
        """Parameters one token passes through: the routed experts of each layer, not all."""
        if self.num_experts <= 1:
            return self.params
        return self.params - self.expert_params * (1 - self.experts_per_token / self.num_experts)


def _safetensors_params(directory: Path) -> float | None:
    """Exact parameter count from the safetensors headers (no tensor is read)."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for key, info in header.items():
            if key != "__metadata__":
                total += math.prod(info["shape"])
    return float(total)


def _facts_from_config(directory: Path) -> ModelFacts:
    cfg = json.loads((directory / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    # gpt2-style configs name them n_embd, n_layer, n_head, n_inner
    h, layers = (
        cfg.get("hidden_size") or cfg["n_embd"],
        cfg.get("num_hidden_layers") or cfg["n_layer"],
    )
    heads = cfg.get("num_attention_heads") or cfg.get("n_head") or 1
    kv = cfg.get("num_key_value_heads") or heads
    params = _safetensors_params(directory)
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 1
    facts = ModelFacts(
        name=directory.name,
        params=params or 0.0,
        hidden_size=h,
        num_layers=layers,
        vocab_size=cfg.get("vocab_size"),
        intermediate_size=cfg.get("intermediate_size") or cfg.get("n_inner"),
        kv_ratio=kv / heads,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        num_experts=int(experts),
        experts_per_token=int(cfg.get("num_experts_per_tok") or 1) if experts > 1 else 1,
    )
    if params is None:  # no weights yet: count a llama-style decoder from its shapes
        i, kvd = facts.mlp_size, h * facts.kv_ratio
        per_layer = 2 * h * h + 2 * h * kvd + 3 * h * i * facts.num_experts + 2 * h
        facts = dataclasses.replace(facts, params=layers * per_layer + facts.embedding_params + h)
    return facts


def model_facts(model: Any) -> ModelFacts:
    if isinstance(model, ModelFacts):
        return model
    if isinstance(model, Mapping):
        m = dict(model)
        m.setdefault("name", "model")
        if "num_hidden_layers" in m:
            m.setdefault("num_layers", m.pop("num_hidden_layers"))
        known = {f.name for f in dataclasses.fields(ModelFacts)}
        missing = [k for k in ("params", "hidden_size", "num_layers") if not m.get(k)]
        if missing:
            raise BenchError(
                f"planner: model facts lack {', '.join(missing)}; pass params, hidden_size, num_layers"
            )
        e, k = int(m.get("num_experts") or 1), int(m.get("experts_per_token") or 1)
        if e < 1 or not 1 <= k <= e:
            raise BenchError(
                f"planner: {m['name']}: experts_per_token {k} must be between 1 and num_experts {e}"
            )
        return ModelFacts(**{k: v for k, v in m.items() if k in known})
    if isinstance(model, (str, Path)) and Path(model).expanduser().joinpath("config.json").exists():
        return _facts_from_config(Path(model).expanduser())
    if not (hasattr(model, "params") and hasattr(model, "hidden_size")):
        raise BenchError(
            f"planner: cannot read model facts from {model!r}; pass a model directory or numbers "
            "(harness.zoo.planner_facts gives them for a zoo name)"
        )
    fields = {
        "name": getattr(model, "name", "model"),
        "params": model.params,
        "hidden_size": model.hidden_size,
        "num_layers": getattr(model, "num_layers", None),
        "vocab_size": getattr(model, "vocab_size", None),
    }
    return model_facts(fields)


@dataclasses.dataclass
class Plan:
    model: str
    method: str
    target: str
    mode: str
    seq_len: int
    dtype: str
    params: float
    weights_gb: float  # frozen base weights (4-bit under qlora) or the trained weights (full)
    adapter_gb: float  # LoRA A/B matrices (fp32)
    gradients_gb: float
    optimizer_gb: float  # AdamW: two states per trained parameter
    activations_gb: float  # at per_device_batch, with the fused head's tiles on a CPU
    activations_per_sample_gb: float
    # vLLM's weight copy + KV cache or the merged rollout copy (grpo), a full reference model (dpo full)
    extra_gb: float
    overhead_gb: float
    total_gb: float  # per device, at per_device_batch
    min_total_gb: float  # per device, at batch 1
    device_memory_gb: float | None  # what the plan had to fit in (None: not checked)
    per_device_batch: int
    grad_accum: int
    effective_batch: int
    gpus: int
    topology: str
    gradient_checkpointing: bool
    fits: bool
    notes: list[str] = dataclasses.field(default_factory=list)
    active_params: float | None = None  # per token (MoE: routed experts only); compute ≈ 6×
    vllm_gpu_memory_utilization: float | None = None  # grpo with vLLM colocate: its share
    # grpo's HF rollouts on a GPU: the KV cache trl generates a generation batch with, and the
    # micro-batches per generation batch that keep it in the card (None: trl's, grad_accum)
    generation_gb: float = 0.0
    steps_per_generation: int | None = None
    refused_because: str | None = None  # a reason besides the total not fitting (refusal())

    def refusal(self) -> str:
        """One line: why this plan is not launched and what to change."""
        if self.refused_because:
            return f"{self.method} on {self.model} ({self.target}): {self.refused_because}"
        return (
            f"{self.method} on {self.model}: {self.total_gb:.1f} GB per device at batch "
            f"{self.per_device_batch} does not fit {self.target}'s {self.device_memory_gb} GB "
            f"({self.topology} over {self.gpus} GPU{'s' if self.gpus > 1 else ''}); "
            "set nproc to more GPUs, mode: qlora, a shorter max_length or per_device_batch: 1"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        g = lambda x: f"{x:.2f} GB"  # noqa: E731
        return [
            ("model", f"{self.model} ({self.params / 1e9:.2f}B params{self._active()})"),
            ("method / mode", f"{self.method} / {self.mode} ({self.dtype}, seq {self.seq_len})"),
            ("weights", g(self.weights_gb)),
            ("adapter", g(self.adapter_gb)),
            ("gradients", g(self.gradients_gb)),
            ("optimizer states", g(self.optimizer_gb)),
            (
                "activations",
                f"{g(self.activations_gb)} ({g(self.activations_per_sample_gb)}/sample)",
            ),
            ("extra", g(self.extra_gb)),
            *(
                [("rollout KV cache", f"{g(self.generation_gb)} (while generating, not training)")]
                if self.generation_gb
                else []
            ),
            ("overhead", g(self.overhead_gb)),
            ("total per device", f"{g(self.total_gb)} of {self.device_memory_gb or '-'} GB"),
            (
                "batch",
                f"{self.per_device_batch} × accum {self.grad_accum} × {self.gpus} gpu = {self.effective_batch}",
            ),
            (
                "topology",
                f"{self.topology} (gradient checkpointing {'on' if self.gradient_checkpointing else 'off'})",
            ),
            ("fits", "yes" if self.fits else "NO"),
        ]

    def _active(self) -> str:
        if not self.active_params or self.active_params == self.params:
            return ""
        return f", {self.active_params / 1e9:.2f}B active: {6 * self.active_params / 1e9:.0f} GFLOP/token"

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        lines = [f"{k:<{width}}  {v}" for k, v in self.rows()]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def __rich__(self):
        from rich.table import Table

        table = Table(
            title=f"memory plan: {self.model} · {self.method} · {self.target}", show_header=False
        )
        table.add_column(style="bold")
        table.add_column()
        for k, v in self.rows():
            table.add_row(k, v)
        for n in self.notes:
            table.add_row("note", n)
        return table


def _host_memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB


def _lora_params(f: ModelFacts, r: int) -> float:
    """all-linear: q, o (h→h), k, v (h→kv), gate, up (h→i), down (i→h): r·(in+out) each.
    MoE experts are fused parameters, not Linear layers: attention only."""
    h, i, kv = f.hidden_size, f.mlp_size, f.hidden_size * f.kv_ratio
    if f.num_experts > 1:
        return r * f.num_layers * (6 * h + 2 * kv)
    return r * f.num_layers * (9 * h + 2 * kv + 3 * i)


def _activation_bytes(
    f: ModelFacts,
    seq: int,
    b: int,
    ckpt: bool,
    fused_head: bool,
    logit_tensors: int = LOGIT_TENSORS,
) -> float:
    """One sequence: stored layer activations plus ``logit_tensors`` full-vocabulary fp32
    tensors per scored position (the logits and their grad; more for distill's KL).

    Per token and layer a pre-norm decoder keeps ~(8h + 2kv + 4i) values (norm inputs in
    fp32, q/k/v/o inputs, the SwiGLU gate/up/product; a MoE token's k routed experts each
    keep their own 4i); flash/sdpa attention stores no seq² scores. Checkpointing keeps
    only each layer's input plus one layer recomputed. ``b`` is bytes per value.
    """
    h, i, kv = f.hidden_size, f.mlp_size, f.hidden_size * f.kv_ratio
    layer = seq * b * (8 * h + 2 * kv + 4 * i * f.experts_per_token)
    layers = f.num_layers * seq * h * b + layer if ckpt else f.num_layers * layer
    positions = min(seq, FUSED_TILE) if fused_head else seq
    logits = positions * (f.vocab_size or 32000) * 4 * logit_tensors
    return layers + logits


def _vllm_utilization(f: ModelFacts, b: int, seq: int, n_seqs: int, card_gb: float) -> float:
    """The share of the card a vLLM colocate engine needs: its weight copy, the KV cache of
    ``n_seqs`` sequences of ``seq`` tokens and ~1 GB of runtime (rounded up to 0.01)."""
    kv = 2 * f.num_layers * f.hidden_size * f.kv_ratio * seq * b * n_seqs
    need = f.params * b + kv + VLLM_RUNTIME_GB * GB
    return min(0.9, math.ceil(need / (card_gb * GB) * 100) / 100)


def _generation_batch(
    f: ModelFacts,
    b: int,
    seq: int,
    batch: int,
    accum: int,
    n_gpus: int,
    num_generations: int,
    room: float,
) -> tuple[float, int | None, str | None]:
    """GRPO's HF rollouts on a GPU: trl's ``generate`` on the training model holds the KV cache
    of a whole generation batch, ``batch`` × ``steps_per_generation`` sequences of ``seq``
    tokens a process (trl's default: ``steps_per_generation`` = grad_accum, one generation per
    optimizer step). The largest ``steps_per_generation`` whose cache fits ``room`` (bytes left
    beside the fixed state) and that divides ``accum`` (a generation batch never spans an
    optimizer step, so its samples are the current policy's) with whole prompt groups
    (``num_generations`` divides the global generation batch).
    Returns (cache bytes, steps_per_generation or None for trl's default, why it is refused
    or None)."""
    per_seq = 2 * f.num_layers * f.hidden_size * f.kv_ratio * seq * b
    options = [
        s
        for s in range(accum, 0, -1)
        if accum % s == 0 and batch * n_gpus * s % num_generations == 0
    ]
    if not options:  # no whole prompt group in a generation batch: the config check refuses it
        return per_seq * batch * accum, None, None
    steps = next((s for s in options if per_seq * batch * s <= room), None)
    if steps is None:
        s = options[-1]
        return (
            per_seq * batch * s,
            s,
            (
                f"HF rollouts' KV cache of {batch * s} sequences of {seq} tokens "
                f"({per_seq * batch * s / GB:.2f} GB) does not fit beside training: use vLLM, a "
                "shorter max_completion_length or max_length, or fewer num_generations"
            ),
        )
    return per_seq * batch * steps, (steps if steps != accum else None), None


def plan(
    model: Any,
    method: str,
    target: str,
    seq_len: int = 1024,
    mode: str = "lora",
    effective_batch: int = 8,
    *,
    gpus: int = 1,
    search_gpus: bool = True,
    lora_r: int = 16,
    gradient_checkpointing: bool | None = None,
    memory: MemoryProfile | None = None,
    num_generations: int = 8,
    completion_len: int = 0,
    vllm: bool | None = None,
    vllm_utilization: float | None = None,
    per_device_batch: int | None = None,
) -> Plan:
    """Estimate per-device memory and choose batch, accumulation and topology.

    ``memory``: the method's :class:`MemoryProfile` (default: its default config's on
    ``target``; :func:`plan_for` passes the stage config's own). ``gpus``: the processes the
    stage runs; with ``search_gpus`` a model that does not fit them is sharded over more of
    the node's GPUs (what ``bench plan`` asks), without it only over these (what a stage will
    run on).
    ``vllm``: rollouts from a vLLM colocate engine (None: where the target's image has vLLM
    and the base is not 4-bit, as ``use_vllm: auto``), which reserves ``vllm_utilization``
    of the card (None: sized for ``num_generations`` sequences of seq_len + completion_len).
    ``per_device_batch``: the stage's own batch, planned as set instead of chosen.
    """
    from containers.targets import get_target
    from trainers.methods import method_config

    if method not in METHODS:
        raise BenchError(f"planner: unknown method {method!r}; use one of {', '.join(METHODS)}")
    if mode not in MODES:
        raise BenchError(f"planner: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if seq_len < 1 or effective_batch < 1 or gpus < 1:
        raise BenchError("planner: seq_len, effective_batch and gpus must be positive integers")
    t = get_target(target)
    f = model_facts(model)
    if mode == "qlora" and "bnb-4bit" not in t.quantization:
        raise BenchError(
            f"planner: target {target} has no 4-bit quantization (QLoRA needs bitsandbytes); "
            "use mode=lora"
        )
    # without a config (bench plan --model) the data's source is unknown: a stage's plan_for
    # passes its own profile, which says whether it samples before training
    mem = memory or dataclasses.replace(
        method_config(method)().memory(target), samples_before_training=False
    )
    b = DTYPE_BYTES[t.dtype]
    # on by default on CPU as well: a 135M stage's layer activations at batch 8 are ~2.7 GB
    # without it, and recomputing them gives the same gradients
    ckpt = True if gradient_checkpointing is None else gradient_checkpointing
    notes: list[str] = []

    if mode == "qlora":
        # bitsandbytes quantizes Linear layers, not embeddings, norms or fused experts; peft's
        # prepare_model_for_kbit_training then casts every parameter it left to fp32
        kept = f.embedding_params + f.expert_params
        weights = kept * 4 + (f.params - kept) * NF4_BYTES
    elif mode == "full":
        # trained weights load in fp32 (autocast computes in the target's dtype): fp32
        # gradients and two fp32 AdamW states, 16 bytes a parameter
        weights = f.params * 4
    else:
        weights = f.params * b
    if mode == "full":
        adapter, grads, optim = 0.0, f.params * 4, 2 * f.params * 4
    else:
        n = _lora_params(f, lora_r)
        # trl casts a quantized model's adapters to bf16 (fp32 on fp16 targets, whose CUDA
        # GradScaler cannot unscale bf16); gradients and AdamW states follow the adapter's dtype
        ab = (4 if t.dtype == "fp16" else 2) if mode == "qlora" else 4
        adapter, grads, optim = n * ab, n * ab, 2 * n * ab

    # on a CPU the fused head's tiles are a fixed size (FUSED_CPU_TILES), not per position
    cpu_head = mem.fused_head and not t.is_gpu
    per_sample = mem.sequences_per_row * _activation_bytes(
        f,
        seq_len + mem.completion_tokens,
        b,
        ckpt,
        mem.fused_head,
        0 if cpu_head else mem.logit_tensors,
    )
    head = 0.0
    if cpu_head:
        positions, columns = CPU_TILE
        head = FUSED_CPU_TILES * positions * min(f.vocab_size or 32000, columns) * 4
    # a frozen reference copy in full mode (adapters use the adapter-disabled base instead):
    # prepared like the policy, so sharded with it
    reference = weights if mode == "full" and mem.reference_copy else 0.0
    if mem.logit_tensors != LOGIT_TENSORS:
        notes.append(f"{mem.logit_tensors} full-vocabulary fp32 tensors per position at the loss")
    if f.num_experts > 1:
        notes.append(
            f"MoE: weights of all {f.num_experts} experts, activations of {f.experts_per_token} per token; "
            "LoRA on attention only (experts are fused parameters)"
        )
    rollout, utilization, hf_generation = 0.0, None, False
    if mem.rollout_engine and t.is_gpu and vllm is None:
        vllm = t.has_vllm and mode != "qlora"
    if mem.rollout_engine:
        if vllm and t.is_gpu:
            card = t.gpu_memory_gb * GIB / GB
            utilization = vllm_utilization or _vllm_utilization(
                f, b, seq_len + completion_len, num_generations, card
            )
            rollout = utilization * card * GB  # vLLM reserves this share, whatever it holds
            notes.append(f"vLLM colocate reserves {utilization:.2f} of each GPU")
        elif mem.rollout_copy_bytes:
            # the policy's weights, merged and in the copy's dtype, on every process
            rollout = f.params * mem.rollout_copy_bytes
            notes.append(
                f"HF rollouts from a merged copy of the policy ({mem.rollout_copy_bytes} bytes a parameter)"
            )
        elif t.is_gpu:
            notes.append("HF rollouts on the training model: no vLLM engine")
            hf_generation = True
    overhead = (CUDA_OVERHEAD_GB if t.is_gpu else HOST_OVERHEAD_GB) * GB

    # a card's "11 GB" / "80 GB" are GiB (an RTX 2080 Ti holds 11264 MiB): in GB of 1e9 bytes
    capacity = t.gpu_memory_gb * GIB / GB if t.is_gpu else _host_memory_gb() * 0.5
    budget = capacity * 0.9 * GB  # allocator fragmentation headroom

    def fixed_per_device(n: int, topo: str) -> float:
        state = weights + adapter + grads + optim + reference
        return (state / n if topo == "fsdp" else state) + rollout + head + overhead

    topology, n_gpus = ("single" if gpus == 1 else "ddp"), gpus
    if fixed_per_device(gpus, topology) + per_sample > budget:
        if mode == "qlora":
            # accelerate keeps uint8 4-bit weights out of FSDP2's shards: no saving, so no sharding
            notes.append("qlora is not sharded: each GPU holds the whole 4-bit model")
        else:
            max_gpus = max(gpus, t.gpus_per_node) if t.is_gpu and search_gpus else gpus
            # powers of two: they divide the usual effective batches and fill a node evenly
            candidates = [n for n in [gpus, *(2**k for k in range(1, 8))] if gpus <= n <= max_gpus]
            for n in sorted({n for n in candidates if n > 1}):
                if fixed_per_device(n, "fsdp") + per_sample <= budget:
                    topology, n_gpus = "fsdp", n
                    notes.append(f"does not fit one device: sharded with fsdp over {n} GPUs")
                    break
    fixed = fixed_per_device(n_gpus, topology)
    fits = fixed + per_sample <= budget
    if not fits:
        notes.append(
            "does not fit even at batch 1: use qlora, gradient checkpointing, a shorter seq_len or more GPUs"
        )

    per_rank = max(1, math.ceil(effective_batch / n_gpus))
    batch = 1
    while batch * 2 <= per_rank and fixed + per_sample * batch * 2 <= budget:
        batch *= 2
    if per_device_batch:  # the stage's setting: planned as it will run
        batch = min(per_device_batch, per_rank)
        if fits and fixed + per_sample * batch > budget:
            fits = False
            notes.append(f"per_device_batch {batch} does not fit; the planner's largest is lower")
    accum = math.ceil(per_rank / batch)
    if batch * accum * n_gpus != effective_batch:
        notes.append(
            f"effective batch rounded up to {batch * accum * n_gpus} (requested {effective_batch})"
        )
    generation, steps_per_generation, refused = 0.0, None, None
    if hf_generation and fits:  # (a stage that does not fit is refused for that first)
        generation, steps_per_generation, refused = _generation_batch(
            f, b, seq_len + completion_len, batch, accum, n_gpus, num_generations, budget - fixed
        )
        if steps_per_generation and not refused:
            notes.append(
                f"HF rollouts generate {batch * steps_per_generation} sequences at a time "
                f"(steps_per_generation {steps_per_generation} of grad_accum {accum}): the KV "
                f"cache of all {batch * accum} does not fit"
            )
    if fits and topology == "fsdp" and mem.samples_before_training:
        # the sharded load leaves the model on the CPU (rank 0's copy) until the Trainer shards
        # it, and the pairs are sampled before that: hours of CPU generation
        refused = (
            "its preference pairs are sampled with the starting model before training, which a "
            f"stage sharded over {n_gpus} GPUs (fsdp) holds on the CPU: give dataset= pairs "
            "(sampled where the model fits one GPU), or a model that fits one GPU"
        )
    if refused:
        fits = False
        notes.append(refused)

    return Plan(
        model=f.name,
        method=method,
        target=target,
        mode=mode,
        seq_len=seq_len,
        dtype=t.dtype if mode != "qlora" else f"nf4+{t.dtype}",
        params=f.params,
        weights_gb=weights / GB,
        adapter_gb=adapter / GB,
        gradients_gb=grads / GB,
        optimizer_gb=optim / GB,
        activations_gb=(per_sample * batch + head) / GB,
        activations_per_sample_gb=per_sample / GB,
        extra_gb=(reference + rollout) / GB,
        overhead_gb=overhead / GB,
        total_gb=(fixed + max(per_sample * batch, generation)) / GB,
        min_total_gb=(fixed_per_device(1, "single") + per_sample) / GB,
        device_memory_gb=round(capacity, 2) if t.is_gpu else round(capacity, 1),
        per_device_batch=batch,
        grad_accum=accum,
        effective_batch=batch * accum * n_gpus,
        gpus=n_gpus,
        topology=topology,
        gradient_checkpointing=ckpt,
        fits=fits,
        notes=notes,
        active_params=f.active_params,
        vllm_gpu_memory_utilization=utilization,
        generation_gb=generation / GB,
        steps_per_generation=steps_per_generation,
        refused_because=refused,
    )


def plan_for(
    config: Any,
    model: Any,
    target: str | None = None,
    *,
    gpus: int | None = None,
    search_gpus: bool = False,
) -> Plan:
    """The plan of one stage from its method's resolved config **object**: the one plan the
    stage, the launcher, ``bench plan --grid``, ``bench grid show`` and SLURM's request read.

    ``model``: the weights the stage starts from (a directory, a ``ModelFacts``, numbers);
    ``target``: default ``config.target``; ``gpus``: the processes it runs on (default
    ``config.nproc``; the stage passes its WORLD_SIZE). Sharding stays within those GPUs
    (``search_gpus``: may take more of the node's, to choose an unset nproc).
    """
    target = target or config.target
    # by name: under `python -m trainers.<m>` the class is __main__'s copy of the module's
    name = type(config).__name__
    method = next((m for m in METHODS if METHODS[m].endswith(f":{name}")), None)
    if method is None:
        raise ValueError(f"planner: {type(config).__name__} is no method's config (METHODS)")
    memory = config.memory(target)
    return plan(
        model,
        method,
        target,
        seq_len=int(config.max_length),
        mode=config.mode,
        effective_batch=int(config.effective_batch),
        gpus=int(gpus or config.nproc or 1),
        search_gpus=search_gpus,
        lora_r=int(config.lora_r),
        gradient_checkpointing=config.gradient_checkpointing,
        memory=memory,
        num_generations=int(getattr(config, "num_generations", 8)),
        completion_len=int(getattr(config, "max_completion_length", 0)),
        vllm=config.rollout_vllm(target) if memory.rollout_engine else None,
        vllm_utilization=getattr(config, "vllm_gpu_memory_utilization", None),
        per_device_batch=config.per_device_batch,
    )


def plan_config(
    model: Any, method: str, target: str, config: Mapping[str, Any], *, search_gpus: bool = False
) -> Plan:
    """:func:`plan_for` of ``method``'s config built from a mapping of its fields (a cell's
    resolved config); fields the harness sets per stage (paths, target) are ignored."""
    from trainers._config import resolve

    fields = {k: v for k, v in config.items() if k not in ("model", "parent", "output_dir")}
    fields["target"] = target
    return plan_for(resolve(method_config(method), fields), model, target, search_gpus=search_gpus)


def serving_gpus(model: Any, target: str) -> int:
    """GPUs an eval of ``model`` loads on (its vLLM tensor-parallel size): its weights in the
    target's dtype over 0.9 of each card's memory, rounded up to a power of two and capped at
    the node's GPUs; 1 on a CPU target."""
    from containers.targets import get_target

    t = get_target(target)
    if not t.is_gpu:
        return 1
    need = model_facts(model).params * DTYPE_BYTES[t.dtype] / (0.9 * t.gpu_memory_gb * GIB)
    n = 1
    while n < need and n < t.gpus_per_node:
        n *= 2
    return min(n, t.gpus_per_node)
