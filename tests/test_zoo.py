import subprocess
import sys

import pytest
import yaml

from harness.errors import BenchError
from harness.zoo import ZOO_FILE, get_model, load_zoo, materialize, model_identity

SEED_MODELS = {
    "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-7B",
    "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct", "microsoft/Phi-3.5-mini-instruct", "microsoft/Phi-3-mini-4k-instruct",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct",
    "mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", "google/gemma-7b-it",
    "Qwen/Qwen2-7B-Instruct", "stabilityai/stablelm-2-1_6b-chat", "openai-community/gpt2",
    "allenai/Llama-3.1-Tulu-3-8B-SFT", "allenai/Llama-3.1-Tulu-3-8B-DPO", "allenai/Llama-3.1-Tulu-3-8B",
}


def test_zoo_has_every_seed_model_with_planner_facts():
    zoo = load_zoo()
    hubs = {spec.hub for spec in zoo.values()}
    assert SEED_MODELS <= hubs, SEED_MODELS - hubs
    for spec in zoo.values():
        assert spec.params and spec.hidden_size and spec.num_layers and spec.context_length, spec.name
        assert spec.trust_remote_code is False, spec.name  # nothing in the zoo declares it


def test_deltas_inherit_and_override():
    raw = yaml.safe_load(ZOO_FILE.read_text())["models"]
    assert set(raw["qwen2.5-7b-instruct"]) == {"extends", "hub", "chat_template_required"}  # a delta
    spec = get_model("qwen2.5-7b-instruct")
    assert spec.hidden_size == 3584 and spec.num_layers == 28 and spec.vocab_size == 152064
    assert spec.chat_template_required and spec.architecture == "Qwen2ForCausalLM"
    assert get_model("qwen2.5-7b").chat_template_required is False
    r1 = get_model("deepseek-r1-distill-qwen-1.5b")
    assert r1.thinks and r1.params == 1.78e9 and r1.context_length == 131072


def test_tulu_lineage_is_one_base_and_not_inherited():
    assert get_model("tulu-3-8b").lineage.parent == "tulu-3-8b-dpo"
    assert get_model("tulu-3-8b-dpo").lineage.parent == "tulu-3-8b-sft"
    assert get_model("tulu-3-8b-sft").lineage.parent == "llama-3.1-8b"
    assert get_model("llama-3.1-8b").lineage is None
    assert get_model("tulu-3-8b-sft").params == 8.03e9


def test_unknown_model_names_closest_matches():
    with pytest.raises(BenchError, match=r"unknown model 'qwen2.5-7b-instrct'.*qwen2.5-7b-instruct"):
        get_model("qwen2.5-7b-instrct")


def test_raw_hub_id_and_local_path(tmp_path):
    spec = get_model("Org/Some-Model")
    assert spec.hub == "Org/Some-Model" and spec.source == "hub" and not spec.trust_remote_code
    (tmp_path / "config.json").write_text('{"a": 1}')
    local = get_model(str(tmp_path))
    assert local.source == "local" and materialize(str(tmp_path)) == tmp_path
    before = model_identity(local)
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert model_identity(local) != before


def test_offline_and_not_cached_is_one_line(tmp_path):
    code = "from harness.cli import main; main()"
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, "models", "fetch", "qwen2.5-0.5b"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "qwen2.5-0.5b" in lines[0] and "bench models fetch" in lines[0], proc.stderr


def test_user_zoo_file_adds_entries(tmp_path, monkeypatch):
    extra = tmp_path / "my_models.yaml"
    extra.write_text("models:\n  my-qwen:\n    extends: qwen2.5-0.5b\n    hub: me/my-qwen\n    revision: abc123\n")
    load_zoo.cache_clear()
    monkeypatch.setenv("BENCH_MODELS", str(extra))
    try:
        spec = get_model("my-qwen")
        assert spec.hidden_size == 896 and model_identity(spec) == "hub:me/my-qwen@abc123"
    finally:
        monkeypatch.delenv("BENCH_MODELS")
        load_zoo.cache_clear()


def test_tiny_models_are_seeded_and_small(tiny_llama, tiny_qwen2):
    import json

    cfg = json.loads((tiny_llama / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2 and cfg["hidden_size"] == 64 and cfg["model_type"] == "llama"
    assert json.loads((tiny_qwen2 / "config.json").read_text())["model_type"] == "qwen2"
    assert (tiny_llama / "chat_template.jinja").exists()
