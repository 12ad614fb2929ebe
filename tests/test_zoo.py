import subprocess
import sys

import pytest
import yaml

from harness.errors import BenchError
from harness.zoo import ZOO_FILE, get_model, load_zoo, materialize, model_identity

SEED_MODELS = {
    "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-1.5B",
    "Qwen/Qwen2.5-3B",
    "Qwen/Qwen2.5-7B",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "microsoft/Phi-3.5-mini-instruct",
    "microsoft/Phi-3-mini-4k-instruct",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-8B-Instruct",
    "mistralai/Mistral-7B-v0.3",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "google/gemma-7b-it",
    "Qwen/Qwen2-7B-Instruct",
    "stabilityai/stablelm-2-1_6b-chat",
    "openai-community/gpt2",
    "allenai/Llama-3.1-Tulu-3-8B-SFT",
    "allenai/Llama-3.1-Tulu-3-8B-DPO",
    "allenai/Llama-3.1-Tulu-3-8B",
}


def test_zoo_has_every_seed_model_with_planner_facts():
    zoo = load_zoo()
    hubs = {spec.hub for spec in zoo.values()}
    assert SEED_MODELS <= hubs, SEED_MODELS - hubs
    for spec in zoo.values():
        assert spec.params and spec.hidden_size and spec.num_layers and spec.context_length, (
            spec.name
        )
        assert spec.trust_remote_code is False, spec.name  # nothing in the zoo declares it


def test_deltas_inherit_and_override():
    raw = yaml.safe_load(ZOO_FILE.read_text())["models"]
    assert set(raw["qwen2.5-7b-instruct"]) == {
        "extends",
        "hub",
        "chat_template_required",
    }  # a delta
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
    with pytest.raises(
        BenchError, match=r"unknown model 'qwen2.5-7b-instrct'.*qwen2.5-7b-instruct"
    ):
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
    proc = subprocess.run(
        [sys.executable, "-c", code, "models", "fetch", "qwen2.5-0.5b"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "qwen2.5-0.5b" in lines[0] and "bench models fetch" in lines[0], (
        proc.stderr
    )


def test_user_zoo_file_adds_entries(tmp_path, monkeypatch):
    extra = tmp_path / "my_models.yaml"
    extra.write_text(
        "models:\n  my-qwen:\n    extends: qwen2.5-0.5b\n    hub: me/my-qwen\n    revision: abc123\n"
    )
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
    assert (
        cfg["num_hidden_layers"] == 2 and cfg["hidden_size"] == 64 and cfg["model_type"] == "llama"
    )
    assert json.loads((tiny_qwen2 / "config.json").read_text())["model_type"] == "qwen2"
    assert (tiny_llama / "chat_template.jinja").exists()


# --- hub ids, revisions, new entries ---------------------------------------------------------

DPO_SEED_MODELS = {
    "meta-llama/Meta-Llama-3-8B-Instruct": (8.03e9, 4096, 32, 8192, 128256),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (46.70e9, 4096, 32, 32768, 32000),
    "meta-llama/Meta-Llama-3-70B-Instruct": (70.55e9, 8192, 80, 8192, 128256),
    "Qwen/Qwen2-72B-Instruct": (72.71e9, 8192, 80, 32768, 152064),
    "01-ai/Yi-34B-Chat": (34.39e9, 7168, 60, 4096, 64000),
    "CohereForAI/c4ai-command-r-v01": (34.98e9, 8192, 40, 8192, 256000),
}


def test_hub_ids_resolve_to_zoo_entries():
    zoo = load_zoo()
    assert get_model("Qwen/Qwen2.5-1.5B") == zoo["qwen2.5-1.5b"]
    assert (
        get_model("qwen/qwen2.5-1.5b-INSTRUCT") == zoo["qwen2.5-1.5b-instruct"]
    )  # case-insensitive
    pinned = get_model("Qwen/Qwen2.5-1.5B@0123abc")
    assert (pinned.name, pinned.revision, pinned.hidden_size) == (
        "qwen2.5-1.5b@0123abc",
        "0123abc",
        1536,
    )
    assert model_identity(pinned) == "hub:Qwen/Qwen2.5-1.5B@0123abc"
    assert get_model(pinned.name) == pinned  # the row's name resolves back to the same spec
    unknown = get_model("Org/Other@v2")
    assert (unknown.name, unknown.hub, unknown.revision) == ("org--other@v2", "Org/Other", "v2")
    hubs = [s.hub.lower() for s in zoo.values() if s.hub and s.source == "hub"]
    assert len(hubs) == len(set(hubs))  # one entry per hub id: resolution is unambiguous


def test_dpo_seed_models_are_in_the_zoo_with_their_config_facts():
    for hub, (params, hidden, layers, context, vocab) in DPO_SEED_MODELS.items():
        spec = get_model(hub)
        assert spec.source == "hub" and spec.hub == hub and spec.chat_template_required, hub
        assert (
            spec.params,
            spec.hidden_size,
            spec.num_layers,
            spec.context_length,
            spec.vocab_size,
        ) == (params, hidden, layers, context, vocab), hub
    mixtral = get_model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert (mixtral.num_experts, mixtral.experts_per_token, mixtral.architecture) == (
        8,
        2,
        "MixtralForCausalLM",
    )


def test_bench_plan_answers_for_a_hub_id():
    code = "from harness.cli import main; main()"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "plan",
            "--model",
            "Qwen/Qwen2.5-1.5B",
            "--method",
            "sft",
            "--target",
            "rtx2080ti",
            "--qlora",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    p = json.loads(proc.stdout)
    assert (
        p["model"] == "qwen2.5-1.5b"
        and p["params"] == 1.54e9
        and p["mode"] == "qlora"
        and p["fits"]
    )


def test_bench_eval_with_a_hub_id_uses_the_zoo_entry(monkeypatch, tmp_path):
    import harness.evaluate
    import harness.zoo
    from harness.api import eval_model
    from harness.settings import EvalSettings, resolve_eval

    monkeypatch.setattr(harness.zoo, "materialize", lambda name: tmp_path)  # resolution only
    seen = capture_requests(monkeypatch)
    eval_model(model="Qwen/Qwen2.5-1.5B", tasks=["math"], target="cpu", results=tmp_path)
    (req,) = seen
    zoo = load_zoo()["qwen2.5-1.5b"]
    assert req.model_id == "qwen2.5-1.5b" and req.settings == resolve_eval(
        zoo, EvalSettings(batch_size=8)
    )
    assert req.inputs["weights"] == model_identity(zoo) == "hub:Qwen/Qwen2.5-1.5B@main"


def capture_requests(monkeypatch) -> list:
    """bench eval as far as its request: run_eval records what it was asked and writes a stub record."""
    import harness.evaluate
    from leaderboards.record import RunRecord, write_record

    seen: list = []

    def fake(req, results):
        seen.append(req)
        return write_record(
            RunRecord(
                kind="eval",
                cell_key=req.cell_key,
                model_id=req.model_id,
                model_revision=req.model_revision,
                inputs=req.inputs,
            ),
            results,
        )

    monkeypatch.setattr(harness.evaluate, "run_eval", fake)
    return seen


def fake_hf_cache(home, hub: str, commit: str) -> None:
    repo = home / "hub" / ("models--" + hub.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")


def test_the_cached_revision_is_recorded_and_enters_the_key(monkeypatch, tmp_path):
    import harness.evaluate
    import harness.zoo
    from harness.api import eval_model

    commit = "a" * 40
    fake_hf_cache(tmp_path / "hf", "Qwen/Qwen2.5-0.5B", commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    spec = get_model("qwen2.5-0.5b")
    assert spec.revision == commit and model_identity(spec) == f"hub:Qwen/Qwen2.5-0.5B@{commit}"
    assert get_model("qwen2.5-1.5b").revision is None  # not cached: unpinned, identity @main
    assert model_identity(get_model("qwen2.5-1.5b")) == "hub:Qwen/Qwen2.5-1.5B@main"
    assert materialize("qwen2.5-0.5b").name == commit  # the snapshot the revision names

    seen = capture_requests(monkeypatch)
    eval_model(model="Qwen/Qwen2.5-0.5B", tasks=["math"], target="cpu", results=tmp_path)
    req = seen[-1]
    assert (
        req.model_revision == commit and req.inputs["weights"] == f"hub:Qwen/Qwen2.5-0.5B@{commit}"
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(
        harness.zoo, "materialize", lambda name: tmp_path
    )  # not cached now: resolution only
    eval_model(model="Qwen/Qwen2.5-0.5B", tasks=["math"], target="cpu", results=tmp_path)
    assert seen[-1].cell_key != req.cell_key  # another snapshot is another key


def test_tiny_quirk_models_build_offline_in_seconds():
    import json

    from transformers import AutoTokenizer

    r1, gpt2, base = (
        materialize(n) for n in ("tiny-random-r1", "tiny-random-gpt2", "tiny-random-base")
    )
    assert (
        get_model("tiny-random-r1").thinks
        and "<think>" in AutoTokenizer.from_pretrained(r1).chat_template
    )
    assert AutoTokenizer.from_pretrained(gpt2).chat_template is None
    assert json.loads((gpt2 / "config.json").read_text())["n_positions"] == 1024
    assert get_model("tiny-random-base").chat_template_required is False
    assert AutoTokenizer.from_pretrained(
        base
    ).chat_template  # a base model's tokenizer may carry one
    identities = {
        model_identity(get_model(n))
        for n in ("tiny-random-llama", "tiny-random-r1", "tiny-random-gpt2")
    }
    assert len(identities) == 3
