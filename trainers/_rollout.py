"""GRPO rollouts without vLLM: sampled from a merged copy of the policy, re-synced each step.

trl's HF path generates from the training model itself: fp32, the LoRA adapter unmerged (three
matmuls and a dropout per adapted Linear) and in train mode (LoRA dropout on), then samples
with ``torch.multinomial``, which on a CPU costs about 13 ms per token step over a 49k
vocabulary. ``CopyRolloutTrainer`` (trainers/_rollout_trainer.py, which imports trl; this
module imports no torch or trl until called) does what trl's vLLM colocate mode does instead:
it generates from a separate copy of the policy (bf16 on a CPU with bf16 matmuls) with the
LoRA deltas folded in, in eval mode, refreshed from the training weights whenever the
optimizer has stepped since the last refresh. The copy only chooses the completions: trl
recomputes their log-probs on the training model, and its rewards, advantages and loss are
untouched. :func:`sample` is a plain KV-cache sampling loop that prefills each distinct prompt
once (a group's ``num_generations`` rows share it) and draws tokens by inverse CDF
(:func:`draw`); it applies trl's sampling settings (temperature, top_k, top_p, min_p,
repetition_penalty) with transformers' own logits processors, in ``generate``'s order.
Measured in ci/perf/grpo_rollouts.py.
"""

from __future__ import annotations

import copy

__all__ = [
    "ROLLOUT_DTYPES",
    "copy_dtype",
    "cpu_has_bf16",
    "draw",
    "merged_copy",
    "resolve",
    "sample",
    "sync",
]

# auto: bf16 copy on a CPU with bf16 matmuls, else an fp32 copy; on CUDA trl's own path (see
# resolve). train: trl's own path (generate from the training model) everywhere.
ROLLOUT_DTYPES = ("auto", "bf16", "fp32", "train")


def cpu_has_bf16() -> bool:
    """avx512_bf16 or AMX: bf16 matmuls run at about twice fp32's speed; without them torch
    emulates bf16 and it is slower than fp32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def resolve(setting: str, cuda: bool) -> str:
    """``rollout_dtype=setting`` made concrete for this machine: ``auto`` becomes bf16 (a CPU
    with bf16 matmuls), fp32 (any other CPU: the model's own dtype there) or train (CUDA: trl's
    own path); the others stay as they are. The train key and the manifest hold this value."""
    if setting != "auto":
        return setting
    if cuda:
        return "train"
    return "bf16" if cpu_has_bf16() else "fp32"


def copy_dtype(setting: str, vllm: bool, cuda: bool):
    """The copy's torch dtype for ``rollout_dtype=setting``, or None when trl generates itself
    (vLLM, CUDA under auto, or ``train``)."""
    import torch

    # ``setting`` is one of ROLLOUT_DTYPES: GRPOConfig's RANGES check it at construction
    if setting in ("bf16", "fp32") and vllm:
        raise ValueError(
            f"grpo config: rollout_dtype={setting} is for HF generation, but vLLM generates "
            "here (its own dtype); set use_vllm=false or rollout_dtype=auto"
        )
    setting = resolve(setting, cuda)
    if setting == "train" or vllm:
        return None
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[setting]


def _lora_layer():
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft absent: no adapter to fold in
        return ()
    return LoraLayer


def merged_copy(model, dtype):
    """A new instance of ``model``'s architecture in ``dtype`` (``"model"``: its own), without
    adapters, in eval mode, holding ``model``'s merged weights (:func:`sync`).

    Built from the config, not by ``copy.deepcopy`` of the training model: trl replaces that
    model's ``forward`` by a fused-LM-head wrapper whose closure holds the original model, so a
    deep copy, merged and unloaded, still ran the training model and its LoRA layers.
    """
    import torch
    from transformers.initialization import no_init_weights

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dtype = next(base.parameters()).dtype if dtype == "model" else dtype
    config = copy.deepcopy(base.config)
    config.use_cache = True  # the Trainer turns it off on the training model's config
    attn = {}
    if dtype == torch.float32 and config._attn_implementation == "flash_attention_2":
        attn = {"attn_implementation": "sdpa"}  # flash-attention computes in fp16/bf16 only
    with no_init_weights():  # every weight is overwritten by sync
        gen = type(base)._from_config(config, dtype=dtype, **attn)
    gen.to(next(base.parameters()).device).eval().requires_grad_(False)
    sync(gen, model)
    return gen


def sync(gen, model) -> None:
    """Set ``gen``'s weights to ``model``'s with every active LoRA delta folded in (base +
    B·A·scaling, peft's own ``get_delta_weight``), module by module under the same names, in
    ``gen``'s dtype; buffers are copied too."""
    import torch

    lora = _lora_layer()
    source = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        for name, target in gen.named_modules():
            src = source.get_submodule(name)
            if lora and isinstance(src, lora):
                if any(src.use_dora.get(a, False) for a in src.active_adapters):
                    raise ValueError(
                        "rollout copy: DoRA adapters do not merge as base + delta; set rollout_dtype=train"
                    )
                base = src.get_base_layer()
                weight = base.weight
                if getattr(weight, "quant_state", None) is not None:  # bitsandbytes 4-bit, packed
                    from bitsandbytes.functional import dequantize_4bit

                    weight = dequantize_4bit(weight.data, weight.quant_state)
                if not src.merged:
                    for adapter in src.active_adapters:
                        weight = weight + src.get_delta_weight(adapter)
                target.weight.copy_(weight)
                if base.bias is not None:
                    target.bias.copy_(base.bias)
                continue
            for key, tensor in [
                *target.named_parameters(recurse=False),
                *target.named_buffers(recurse=False),
            ]:
                tensor.copy_(getattr(src, key))


def _processors(temperature, top_k, top_p, min_p, repetition_penalty):
    """transformers' processors for trl's sampling settings, in ``generate``'s order."""
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out = LogitsProcessorList()
    if repetition_penalty is not None and repetition_penalty != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(penalty=repetition_penalty))
    if temperature is not None and temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k))
    if top_p is not None and top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p))
    if min_p is not None:
        out.append(MinPLogitsWarper(min_p=min_p))
    return out


def draw(scores):
    """One token per row from softmax(``scores``) (rows of logits; -inf: never), by inverse CDF:
    the categorical draw ``torch.multinomial`` makes, at a tenth of its cost on a CPU (13 ms
    per call for 16 rows of 49k). The CDF sums in float64, so its rounding biases no token."""
    import torch

    cdf = torch.softmax(scores, dim=-1).cumsum(-1, dtype=torch.float64)
    u = torch.rand(scores.shape[0], 1, dtype=torch.float64, device=scores.device) * cdf[:, -1:]
    # right=True: the first index whose CDF exceeds u, never a zero-probability token
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1).squeeze(1)


def sample(
    model,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    eos_token_ids: list[int],
    pad_token_id: int,
    temperature: float = 1.0,
    top_k: int | None = 0,
    top_p: float | None = 1.0,
    min_p: float | None = None,
    repetition_penalty: float | None = 1.0,
) -> list[list[int]]:
    """One sampled completion per prompt: its token ids up to and including the first EOS
    (all ``max_new_tokens`` when none came), as trl's HF path returns them."""
    import torch

    device = next(model.parameters()).device
    distinct = list(dict.fromkeys(tuple(p) for p in prompt_ids))
    row_of = {p: i for i, p in enumerate(distinct)}
    index = torch.tensor([row_of[tuple(p)] for p in prompt_ids], device=device)
    width = max(len(p) for p in distinct)
    ids = torch.full((len(distinct), width), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(distinct):  # left padding: every row continues from the right edge
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    processors = _processors(temperature, top_k, top_p, min_p, repetition_penalty)
    eos = torch.tensor(eos_token_ids, device=device)
    rows = len(prompt_ids)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    new: list[torch.Tensor] = []
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        if len(distinct) < rows:
            cache.reorder_cache(index)  # each distinct prompt's cache, once per row that uses it
        logits, ids, mask, last = (
            out.logits[index, -1],
            ids[index],
            mask[index],
            positions[index, -1:],
        )
        for step in range(max_new_tokens):
            scores = processors(ids, logits.float())
            token = draw(scores)
            token = torch.where(done, pad_token_id, token)
            new.append(token)
            done |= torch.isin(token, eos)
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            ids = torch.cat([ids, token[:, None]], dim=1)
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
            last = last + 1
            out = model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=last,
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1]
        generated = torch.stack(new, dim=1).tolist()
    completions = []
    stops = set(eos_token_ids)
    for row in generated:
        end = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
        completions.append(row[: end + 1])
    return completions
