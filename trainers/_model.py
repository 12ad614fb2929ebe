"""The one model loader: trainers and the harness's HF eval backend both call ``load_model``.

Everything hardware-dependent comes from the target (containers/targets.yaml): dtype
(bf16 on Ampere/Hopper, fp16 on Turing, fp32 on CPU), attention implementation
(flash_attention_2 when the target supports it *and* flash-attn is installed, else
sdpa) and whether 4-bit quantization is possible. A path may be a plain HF model
directory or a stage directory (see :func:`resolve_stage`), so a checkpoint loads by path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "load_model",
    "resolve_stage",
    "ensure_merged",
    "merge_into",
    "lora_config",
    "torch_dtype",
    "attn_implementation",
    "peak_memory_gb",
    "reset_peak_memory",
]

MANIFEST = "manifest.json"
ADAPTER = "adapter"
MERGED = "merged"


def torch_dtype(target: str):
    import torch

    from containers.targets import get_target

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        get_target(target).dtype
    ]


def attn_implementation(target: str) -> str:
    from containers.targets import get_target

    t = get_target(target)
    if t.attn_implementation == "flash_attention_2" and flash_attn_usable():
        return "flash_attention_2"
    return "sdpa"


def flash_attn_usable() -> bool:
    """flash-attn is installed *and* its CUDA extension imports. transformers checks only the
    package's metadata, so a build against another torch ABI would pass and fail at load."""
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return False
    try:
        importlib.import_module("flash_attn_2_cuda")
    except Exception:  # an ABI mismatch raises ImportError or OSError
        return False
    return True


def resolve_stage(path: str | Path) -> tuple[Path, Path | None]:
    """(weights directory, adapter directory or None) for a model or stage directory.

    A stage with merged weights loads them; otherwise it loads the weights it was trained
    on (``base_weights`` in its manifest) plus its adapter.
    """
    path = Path(path)
    manifest = path / MANIFEST
    if not manifest.exists():
        if not (path / "config.json").exists():
            raise ValueError(
                f"{path}: neither a model directory (config.json) nor a stage ({MANIFEST})"
            )
        return path, None
    if (path / MERGED / "config.json").exists():
        return path / MERGED, None
    from trainers.manifest import read_manifest, stage_path

    base_weights = read_manifest(path).base_weights
    adapter = path / ADAPTER
    if not (adapter / "adapter_config.json").exists():
        raise ValueError(
            f"{path}: stage has neither {MERGED}/ nor {ADAPTER}/; retrain it or restore the files"
        )
    return stage_path(base_weights, path), adapter


def _drop_gguf_leftover(config: Any) -> None:
    """A model converted from GGUF keeps a gguf quantization_config although its weights are
    plain tensors; transformers would then refuse to save it (merged weights)."""
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return
    method = qc.get("quant_method", "") if isinstance(qc, dict) else getattr(qc, "quant_method", "")
    if "gguf" in str(getattr(method, "value", method)).lower():
        del config.quantization_config


def sharded_launch() -> bool:
    """An ``accelerate launch`` that shards the model (FSDP, or DeepSpeed ZeRO-3): every rank
    loads it unplaced for the wrapper to shard, instead of a whole copy per GPU."""
    from transformers.utils import strtobool

    env = os.environ
    if strtobool(env.get("ACCELERATE_USE_FSDP", "false")):
        return True
    return bool(strtobool(env.get("ACCELERATE_USE_DEEPSPEED", "false"))) and (
        env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )


def weights_gb(weights: Path) -> float:
    """Size of a model directory's weight files (GB = 1e9 bytes)."""
    files = [*Path(weights).glob("*.safetensors"), *Path(weights).glob("*.bin")]
    return sum(f.stat().st_size for f in files) / 1e9


def _device_map(device_map: Any, for_training: bool, quantized: bool, weights: Path) -> Any:
    import torch

    if device_map is not None or not torch.cuda.is_available():
        return device_map
    if for_training or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if sharded_launch() and not quantized:
            return None  # FSDP / ZeRO-3 shard it (rank 0 reads, the others get their shards)
        # This process's GPU at load: a 4-bit model must be placed there, and a DPO stage
        # samples its preference pairs before the Trainer would move the model.
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    # evaluation: one GPU when the weights fit it (no pipeline across GPUs), else spread
    if weights_gb(weights) * 1.2 < torch.cuda.get_device_properties(0).total_memory / 1e9:
        return {"": 0}
    return "auto"


def _quantization_config(quantization: str | None, target: str, dtype: Any):
    if quantization is None:
        return None

    from containers.targets import get_target

    if quantization not in ("bnb-4bit", "bnb-8bit"):
        raise ValueError(f"quantization {quantization!r}: use bnb-4bit (QLoRA) or bnb-8bit")
    if quantization not in get_target(target).quantization:
        raise ValueError(
            f"target {target} does not support {quantization}; see containers/targets.yaml"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(
            f"{quantization} (QLoRA) needs bitsandbytes, which is not installed: "
            "pip install bitsandbytes, or use mode=lora"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "bnb-8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def load_model(
    path: str | Path,
    *,
    target: str = "cpu",
    quantization: str | None = None,
    adapter: str | Path | None = None,
    for_training: bool = False,
    device_map: Any = None,
    trust_remote_code: bool = False,
    dtype: Any = None,
):
    """(model, tokenizer) for a model directory or a stage directory, set up for ``target``.

    ``dtype`` overrides the target's for the weights (full fine-tuning keeps fp32 weights and
    lets autocast compute in the target's dtype). A stage's adapter is merged into its base
    unless the model is loaded for training."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from containers.targets import get_target

    t = get_target(target)
    if t.is_gpu and not torch.cuda.is_available():
        raise ValueError(f"target {target} needs a CUDA GPU and none is visible; pass target=cpu")
    weights, stage_adapter = resolve_stage(path)
    adapter = Path(adapter) if adapter is not None else stage_adapter
    compute = torch_dtype(target)
    quant = _quantization_config(quantization, target, compute)

    config = AutoConfig.from_pretrained(weights, trust_remote_code=trust_remote_code)
    _drop_gguf_leftover(config)
    model = AutoModelForCausalLM.from_pretrained(
        weights,
        config=config,
        dtype=dtype or compute,
        attn_implementation=attn_implementation(target),
        quantization_config=quant,
        device_map=_device_map(device_map, for_training, quant is not None, weights),
        trust_remote_code=trust_remote_code,
    )
    if quant is not None and for_training:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=for_training)
        if not for_training and quant is None:
            model = model.merge_and_unload()  # one matmul per Linear, not three
    tok_dir = (
        adapter if adapter is not None and (adapter / "tokenizer_config.json").exists() else weights
    )
    tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not for_training:
        model.eval()
    return model, tokenizer


def lora_config(r: int, alpha: int, dropout: float, target: str = "all-linear"):
    """peft LoRA over every Linear layer but the output head (no per-model module lists).

    ``all-linear`` covers separate q/k/v/gate/up (Llama, Qwen2) and fused qkv_proj/
    gate_up_proj (Phi-3) alike; a comma list names modules explicitly when wanted.
    """
    from peft import LoraConfig

    modules: Any = (
        target if target == "all-linear" else [m.strip() for m in target.split(",") if m.strip()]
    )
    return LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules, task_type="CAUSAL_LM"
    )


def ensure_merged(stage: str | Path) -> Path:
    """The stage's merged weights (``stage/merged``), written once from base + adapter if absent."""
    stage = Path(stage)
    merged = stage / MERGED
    if (merged / "config.json").exists():
        return merged
    weights, adapter = resolve_stage(stage)
    if adapter is None:
        return weights
    from trainers.manifest import read_manifest

    return merge_into(weights, adapter, merged, read_manifest(stage).trust_remote_code)


def merge_into(weights: Path, adapter: Path, dest: Path, trust_remote_code: bool = False) -> Path:
    """base + adapter → merge_and_unload → ``dest`` (weights in the base's dtype, tokenizer).

    Written to a temporary sibling and renamed, so a crash never leaves half a model.
    """
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(weights, trust_remote_code=trust_remote_code)
    _drop_gguf_leftover(config)
    base = AutoModelForCausalLM.from_pretrained(
        weights, config=config, dtype="auto", trust_remote_code=trust_remote_code
    )
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=".merged-", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tok_dir = adapter if (adapter / "tokenizer_config.json").exists() else weights
        AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust_remote_code).save_pretrained(
            tmp
        )
        try:
            os.replace(tmp, dest)
        except OSError:
            # another process (a DDP rank) merged first: its complete copy stands
            if not (dest / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb() -> float:
    """Peak reserved GPU memory, or the process's peak RSS on CPU (GB = 1e9 bytes)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_reserved() / 1e9
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
