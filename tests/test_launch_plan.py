"""One plan per train cell: the stage, its launch, `bench grid show` and SLURM read the same one;
the method facts it reads are declared on the method configs. Pure Python: no model is loaded."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from harness.errors import BenchError
from trainers import METHODS, FieldError, method_config

REPO = Path(__file__).resolve().parent.parent


def test_every_method_declares_its_facts_and_the_planner_reads_no_method_name():
    from trainers._config import MemoryProfile

    for method in METHODS:
        cls = method_config(method)
        own = vars(cls)
        assert isinstance(own.get("VERSION"), str), method
        assert isinstance(own.get("VERIFIER_DRIVEN"), bool), method
        assert isinstance(own.get("MEMORY"), MemoryProfile), method
    source = (REPO / "trainers" / "planner.py").read_text()
    assert not re.search(r"method\s*(==|!=|in\b)", source)
    keys = (REPO / "harness" / "keys.py").read_text()
    assert "VERIFIED_METHODS" not in keys
    # config-dependent facts: distill's KL, grpo's reference model for beta > 0
    assert method_config("distill")(kl_coef=0.1).memory().logit_tensors == 5
    assert method_config("grpo")(beta=0.04).memory().reference_copy


def test_a_method_is_its_config_class_everywhere_a_method_is_used(tmp_path, monkeypatch):
    """Every method of METHODS, with no edit elsewhere: planned from its MEMORY alone, keyed by
    its VERSION and VERIFIER_DRIVEN, listed and shown by `bench methods`, accepted by a grid
    (a field typo names its config file), launched as trainers/<m>.py, and trained by it."""
    import dataclasses
    import importlib
    import json

    import yaml
    from typer.testing import CliRunner

    import tasks.math as math_family  # the VERSION keys read: tasks.FAMILIES' math entry
    from harness.api import grid_rows
    from harness.cli import app
    from harness.grid import expand, load_grid
    from harness.zoo import planner_facts
    from trainers.planner import plan

    methods = list(METHODS)
    grid = {
        "name": "every-method",
        "models": ["tiny-random-llama"],
        "recipes": [[m] for m in methods],
        "tasks": ["math_arith"],
        "eval": {"limit": 2},
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(grid))

    def train_keys() -> dict[str, str]:
        return {c.method: c.key for c in expand(load_grid(str(path))).train}

    before = train_keys()
    assert sorted(before) == sorted(methods)
    # the planner reads the method's MEMORY, never its name: the same plan as another
    # method's name with this method's MEMORY
    facts = planner_facts("qwen2.5-7b-instruct")
    for m in methods:
        for mode in ("lora", "full"):
            own = plan(facts, m, "h100", mode=mode).to_dict()
            borrowed = plan(facts, "sft", "h100", mode=mode, memory=method_config(m).MEMORY)
            assert {**own, "method": "sft"} == borrowed.to_dict(), (m, mode)
    # keys: a VERSION bump moves only that method's cell; a verifier bump moves exactly the
    # verifier-driven methods' cells
    for m in methods:
        with monkeypatch.context() as patch:
            patch.setattr(method_config(m), "VERSION", method_config(m).VERSION + "-bumped")
            moved = {k for k, v in train_keys().items() if v != before[k]}
        assert moved == {m}, m
    monkeypatch.setattr(math_family, "VERSION", math_family.VERSION + "-bumped")
    moved = {k for k, v in train_keys().items() if v != before[k]}
    assert moved == {m for m in methods if method_config(m).VERIFIER_DRIVEN}
    monkeypatch.undo()
    # `bench methods list` and `bench methods show`
    listed = json.loads(CliRunner().invoke(app, ["methods", "list", "--json"]).output)
    assert {r["method"]: r["version"] for r in listed} == {
        m: method_config(m).VERSION for m in methods
    }
    for m in methods:
        shown = json.loads(CliRunner().invoke(app, ["methods", "show", m, "--json"]).output)
        assert [r["field"] for r in shown] == [f.name for f in dataclasses.fields(method_config(m))]
    # every train cell is planned and launched as trainers/<m>.py, whose main trains
    rows = {
        r["stage"]: r for r in grid_rows(str(path), tmp_path / "results") if r["kind"] == "train"
    }
    for m in methods:
        assert rows[m]["plan"]["method"] == m and rows[m]["launch"][1:3] == ["-m", f"trainers.{m}"]
        assert callable(importlib.import_module(f"trainers.{m}").main)
        assert (REPO / "trainers" / f"{m}_config.py").is_file()
        # a grid's typo names the method's config file, which exists
        bad = tmp_path / f"bad-{m}.yaml"
        bad.write_text(yaml.safe_dump({**grid, "steps": {m: {"max_stepz": 2}}}))
        with pytest.raises(BenchError) as err:
            load_grid(str(bad))
        assert f"see trainers/{m}_config.py" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("grid", ["all", "rlcausality", "dpo-models"])
def test_stage_launcher_and_slurm_agree_on_every_train_cell(grid, tmp_path):
    from containers.targets import get_target
    from harness.api import grid_rows
    from harness.grid import expand, load_grid
    from harness.plans import cell_config
    from harness.zoo import planner_facts
    from trainers.planner import plan_for

    target = get_target(load_grid(grid).target)
    rows = [r for r in grid_rows(grid, tmp_path) if r["kind"] == "train"]
    assert rows
    cells = {c.key: c for c in expand(load_grid(grid)).train}
    for row in rows:
        p, argv, nproc = row["plan"], row["launch"], row["nproc"]
        # the stage plans over its WORLD_SIZE (= nproc) from the same config: the same plan
        cell = cells[row["key"]]
        stage = plan_for(cell_config(cell, target.name), planner_facts(cell.model), gpus=nproc)
        assert stage.to_dict() == p, row["key"]
        assert (p["gpus"], p["topology"] != "fsdp" or nproc > 1) == (nproc, True)
        if not p["fits"]:
            assert row["slurm"] is None and "does not fit" in row["refused"], row["key"]
            continue
        # SLURM asks for exactly the plan's GPUs (none on a CPU target)
        assert row["slurm"]["gpus"] == (nproc if target.is_gpu else 0), row["key"]
        assert row["slurm"]["mem_gb"] <= (target.node_memory_gb or math.inf)
        if nproc == 1:
            assert argv[1:3] == ["-m", f"trainers.{row['method']}"]
        elif target.is_gpu:
            # accelerate with the plan's topology, nproc processes, a free port, the precision
            cfg = argv[argv.index("--config_file") + 1]
            assert cfg.endswith({"ddp": "multi_gpu.yaml", "fsdp": "fsdp2.yaml"}[p["topology"]])
            assert argv[argv.index("--num_processes") + 1] == str(nproc)
            assert argv[argv.index("--main_process_port") + 1] == "0"
            assert argv[argv.index("--mixed_precision") + 1] == target.dtype
        else:
            assert f"--nproc_per_node={nproc}" in argv and "--standalone" in argv


def test_dpo_models_requests_what_its_plans_and_weights_need(tmp_path):
    from harness.api import grid_rows

    rows = grid_rows("dpo-models", tmp_path)
    train = {r["model"]: r for r in rows if r["kind"] == "train"}
    base = {r["model"]: r for r in rows if r["kind"] == "eval" and r["stage"] == "base"}
    big = train["llama-3-70b-instruct"]
    assert big["slurm"] == {"gpus": 8, "cpus": 64, "mem_gb": math.ceil(8 + 2 * 70.6e9 * 2 / 1e9)}
    assert "--fsdp_activation_checkpointing" in big["launch"]
    assert big["launch"][big["launch"].index("--fsdp_activation_checkpointing") + 1] == "true"
    # evals: 141 GB of bf16 over 0.9 of 80 GiB cards -> 2 GPUs (vLLM tensor parallel 2)
    assert base["llama-3-70b-instruct"]["slurm"]["gpus"] == 2
    assert base["llama-3-8b-instruct"]["slurm"]["gpus"] == 1


def test_a_plan_that_does_not_fit_is_refused_before_anything_runs(tmp_path, monkeypatch):
    import subprocess

    import trainers
    from trainers._stage import stage_plan
    from trainers.grpo import GRPOConfig

    facts = tmp_path / "big"
    facts.mkdir()
    (facts / "config.json").write_text(
        '{"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,'
        ' "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256}'
    )
    cfg = GRPOConfig(model=str(facts), target="rtx2080ti", nproc=2, mode="qlora")
    with pytest.raises(ValueError, match="does not fit rtx2080ti") as e:
        stage_plan(cfg, facts, cfg.max_length, 2)
    assert "\n" not in str(e.value)

    def launched(*a, **k):
        raise AssertionError("launched a plan that does not fit")

    monkeypatch.setattr(subprocess, "run", launched)
    with pytest.raises(ValueError, match="does not fit"):
        trainers._launch("grpo", cfg, lambda *a: None)


def test_slurm_refuses_a_wave_that_cannot_fit_before_submitting(tmp_path, monkeypatch):
    from harness.executors import slurm
    from harness.grid import GridSpec, expand

    grid = GridSpec(
        name="r",
        models=["llama-3.1-8b"],
        recipes=[["sft"]],
        steps={"sft": {"mode": "full", "nproc": 1}},
        tasks=["math_arith"],
        target="rtx2080ti",
    )
    cell = expand(grid).train[0]
    with pytest.raises(BenchError, match="llama-3.1-8b/sft: sft on llama-3.1-8b: .* does not fit"):
        slurm.resources(cell, grid)


def test_the_slurm_command_binds_the_hosts_hub_cache(tmp_path, monkeypatch):
    from harness.executors.slurm import python_command

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cmd = python_command("/img/bench.sif", [tmp_path], 1).split()
    assert f"--bind={tmp_path / 'hf'}:/hf" in cmd
    assert cmd[-2:] == ["/img/bench.sif", "python"]


def test_a_grid_backend_and_rollouts_are_checked_against_the_targets_image(tmp_path):
    from harness.grid import load_grid

    def grid(extra: str) -> Path:
        path = tmp_path / "g.yaml"
        path.write_text(
            "name: g\nmodels: [qwen2.5-0.5b]\nrecipes: [[grpo]]\ntasks: [math_arith]\n"
            f"target: rtx2080ti\n{extra}"
        )
        return path

    with pytest.raises(BenchError, match=r"field 'eval.backend': vllm is not in target rtx2080ti"):
        load_grid(str(grid("eval: {backend: vllm}\n")))
    with pytest.raises(BenchError, match=r"field 'steps.grpo.use_vllm': true, but vllm is not"):
        load_grid(str(grid("steps: {grpo: {use_vllm: true}}\n")))
    assert load_grid("rlcausality").eval.backend == "hf"


@pytest.mark.parametrize(
    ("step", "field", "reason"),
    [
        ("{effective_batch: 12, num_generations: 8}", "effective_batch", "multiple of num_gen"),
        ("{early_stopping_patience: 2}", "early_stopping_patience", "needs eval_fraction > 0"),
        ("{use_vllm: ture}", "use_vllm", "must be one of auto, true, false"),
        ("{mode: qlora, use_vllm: true}", "use_vllm", "cannot go with mode qlora"),
    ],
)
def test_cross_field_mistakes_are_one_line_at_grid_load(tmp_path, step, field, reason):
    from harness.grid import load_grid

    path = tmp_path / "g.yaml"
    path.write_text(
        f"name: g\nmodels: [tiny-random-llama]\nrecipes: [[grpo]]\nsteps: {{grpo: {step}}}\n"
        "tasks: [math_arith]\n"
    )
    with pytest.raises(BenchError, match=f"field 'steps.grpo.{field}': .*{reason}") as e:
        load_grid(str(path))
    assert "\n" not in str(e.value)


def test_use_vllm_resolves_per_target_and_mode():
    from trainers.grpo import GRPOConfig

    assert GRPOConfig().rollout_vllm("h100") is True
    assert GRPOConfig(mode="qlora").rollout_vllm("h100") is False  # no 4-bit requantizing syncs
    assert GRPOConfig().rollout_vllm("rtx2080ti") is False  # its image has no vLLM
    assert GRPOConfig().rollout_vllm("cpu") is False
    assert GRPOConfig(use_vllm=False).use_vllm == "false"  # YAML's unquoted false
    with pytest.raises(FieldError, match="cannot go with mode qlora"):
        GRPOConfig(mode="qlora", use_vllm="true")


def test_vllm_colocate_gets_the_planned_share_and_a_bounded_context():
    from trainers.grpo import GRPOConfig, vllm_args
    from trainers.planner import plan_for

    cfg = GRPOConfig(target="h100", max_length=1024, max_completion_length=512)
    facts = {"params": 1.54e9, "hidden_size": 1536, "num_layers": 28, "vocab_size": 151936}
    p = plan_for(cfg, facts)
    args = vllm_args(cfg, p, 1024, True)
    assert args["vllm_max_model_length"] == 1536  # not the model's full context
    assert args["vllm_gpu_memory_utilization"] == p.vllm_gpu_memory_utilization < 0.3
    assert vllm_args(cfg, p, 1024, False) == {"use_vllm": False}


def test_launch_details_port_precision_devices_and_fsdp_checkpointing(tmp_path):
    from trainers.launch import launch_command, visible_devices

    ddp = launch_command("sft", tmp_path / "c.yaml", topology="ddp", nproc=2, mixed_precision="no")
    assert ddp[ddp.index("--main_process_port") + 1] == "0"
    assert ddp[ddp.index("--mixed_precision") + 1] == "no"  # trl's yaml would say bf16
    assert "--fsdp_activation_checkpointing" not in ddp
    fsdp = launch_command("sft", "c", topology="fsdp", nproc=2, activation_checkpointing=True)
    assert fsdp[fsdp.index("--fsdp_activation_checkpointing") + 1] == "true"
    with pytest.raises(ValueError, match="unknown topology 'deepspeed-zero3'"):
        launch_command("sft", "c", topology="deepspeed-zero3", nproc=8)
    # one process on an 8-GPU host sees one GPU (no DataParallel multiplying its batch)
    assert visible_devices(1, {}, count=8) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert visible_devices(2, {"CUDA_VISIBLE_DEVICES": "3,5,7"}, count=3) == {
        "CUDA_VISIBLE_DEVICES": "3,5"
    }
    assert visible_devices(2, {}, count=2) == {}


def _stage(cfg, topology: str, world_size: int):
    from types import SimpleNamespace

    from trainers._stage import Stage

    stage = object.__new__(Stage)
    stage.method, stage.cfg, stage.out, stage.world_size = "sft", cfg, Path("out"), world_size
    stage.per_device_batch, stage.grad_accum = 1, 1
    stage.plan = SimpleNamespace(topology=topology, gradient_checkpointing=True)
    return stage


def test_trainer_arguments_for_adapters_under_ddp_and_fsdp():
    from trainers.sft import SFTConfig

    lora = _stage(SFTConfig(target="h100"), "ddp", 2).trainer_args()
    assert lora["ddp_find_unused_parameters"] is False and lora["gradient_checkpointing"]
    full = _stage(SFTConfig(target="h100", mode="full"), "ddp", 2).trainer_args()
    assert "ddp_find_unused_parameters" not in full  # a PreTrainedModel: transformers decides
    # FSDP checkpoints activations itself (the launch flag); the Trainer's would all-gather again
    assert (
        _stage(SFTConfig(target="h100"), "fsdp", 2).trainer_args()["gradient_checkpointing"]
        is False
    )


def test_unset_nproc_follows_the_plan_on_a_gpu_target():
    from harness.grid import GridSpec, expand

    grid = GridSpec(
        name="r",
        models=["meta-llama/Meta-Llama-3-70B-Instruct"],
        recipes=[["dpo"]],
        tasks=["math_arith"],
        target="a100",
    )
    cell = expand(grid).train[0]
    # 141 GB of bf16 weights: FSDP over the fewest GPUs that hold them, 2 of the node's 8
    assert cell.config["nproc"] == cell.resolved["nproc"] == 2
    # a CPU target keeps the default
    assert expand(grid.model_copy(update={"target": "cpu"})).train[0].resolved["nproc"] == 1


def test_method_configs_load_without_torch_and_no_class_is_built_inside_a_function():
    import ast
    import subprocess
    import sys

    code = (
        "import sys; from trainers import METHODS, method_config; "
        "[method_config(m)() for m in METHODS]; "
        "print([m for m in ('torch', 'transformers', 'trl') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
    for module in METHODS.values():
        assert module.partition(":")[0].endswith("_config")  # trainers/<m>_config.py
    nested = [
        f"{path.name}:{sub.name}"
        for path in sorted((REPO / "trainers").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
        for sub in ast.walk(node)
        if isinstance(sub, ast.ClassDef)
    ]
    # _rollout.py stays torch-free (grpo_config reads ROLLOUT_DTYPES): its trainer class is in
    # _rollout_trainer.py, which grpo.py imports when it trains
    assert nested == []


def test_vllm_evals_run_tensor_parallel_over_the_gpus_their_request_holds(monkeypatch):
    import torch

    from harness.backends import _tensor_parallel

    class Req:
        model_id, target = "meta-llama/Meta-Llama-3-70B-Instruct", "a100"

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert _tensor_parallel(Req(), None) == 2  # 141 GB of bf16 over 0.9 of 80 GiB cards
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _tensor_parallel(Req(), None) == 1  # never more than this process sees


def test_bench_methods_show_prints_each_field_with_default_range_and_doc():
    import json

    from typer.testing import CliRunner

    from harness.cli import app

    out = CliRunner().invoke(app, ["methods", "show", "grpo", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["field"]: r for r in json.loads(out.output)}
    assert set(rows) == {f.name for f in __import__("dataclasses").fields(method_config("grpo"))}
    use_vllm = rows["use_vllm"]
    assert (use_vllm["default"], use_vllm["allowed"]) == (
        "auto",
        "must be one of auto, true, false",
    )
    assert "qlora" in use_vllm["doc"]
    assert rows["num_generations"]["allowed"] == "must be at least 2"
    bad = CliRunner().invoke(app, ["methods", "show", "grop"])
    assert isinstance(bad.exception, BenchError) and "did you mean: grpo" in str(bad.exception)
