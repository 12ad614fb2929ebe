"""Cell keys capture what decides a result: resolved configs, method and verifier versions, lineage."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import yaml

from harness.errors import BenchError
from harness.grid import expand, load_grid
from harness.keys import first_difference
from harness.runner import plan_grid
from leaderboards.record import RunRecord, write_record

GRID = {
    "name": "keys",
    "models": ["tiny-random-llama"],
    "recipes": [["distill", "grpo"], ["sft"]],
    "steps": {"distill": {"max_steps": 3, "learning_rate": 2.0e-4}},
    "tasks": ["math_arith", "think_quality_math"],
    "eval": {"limit": 2},
}


def write(tmp_path, **over) -> str:
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({**GRID, **over}))
    return str(path)


def keys(path: str) -> dict[tuple[str, str], str]:
    return {(c.kind, c.stage): c.key for c in expand(load_grid(path)).cells}


def test_a_changed_trainer_default_moves_the_stage_and_its_descendants_not_the_base(
    tmp_path, monkeypatch
):
    import trainers.distill_config as distill

    path = write(tmp_path)
    before = keys(path)
    # A new default of a field the grid does not set: the grid's delta is unchanged.
    patched = dataclasses.make_dataclass(
        "DistillConfig",
        [("kl_coef", float, dataclasses.field(default=0.5))],
        bases=(distill.DistillConfig,),
    )
    monkeypatch.setattr(distill, "DistillConfig", patched)
    after = keys(path)
    for moved in (
        ("train", "distill"),
        ("train", "distill+grpo"),
        ("eval", "distill"),
        ("eval", "distill+grpo"),
    ):
        assert after[moved] != before[moved], moved
    for kept in (("eval", "base"), ("train", "sft"), ("eval", "sft")):
        assert after[kept] == before[kept], kept


def test_a_method_version_bump_moves_its_cells(tmp_path, monkeypatch):
    from trainers.sft import SFTConfig

    path = write(tmp_path)
    before = keys(path)
    monkeypatch.setattr(SFTConfig, "VERSION", SFTConfig.VERSION + "-bumped")
    after = keys(path)
    assert after[("train", "sft")] != before[("train", "sft")]
    assert (
        after[("train", "distill")] == before[("train", "distill")]
    )  # distill has its own VERSION


def test_a_verifier_version_bump_moves_the_evals_that_use_it_and_grpo(tmp_path, monkeypatch):
    import tasks.math as math_family  # the VERSION keys read: tasks.FAMILIES' math entry

    path = write(tmp_path, tasks=["causal_nli"])
    before = keys(path)
    monkeypatch.setattr(math_family, "VERSION", "2")
    after = keys(path)
    assert (
        after[("eval", "base")] == before[("eval", "base")]
    )  # causal_nli: the math verifier plays no part
    assert (
        after[("train", "distill+grpo")] != before[("train", "distill+grpo")]
    )  # its reward is the math verifier
    assert after[("train", "distill")] == before[("train", "distill")]
    path = write(
        tmp_path, tasks=["think_quality_math"]
    )  # think_quality scores the answer with math's verifier
    with_math = keys(path)
    monkeypatch.setattr(math_family, "VERSION", "3")
    assert keys(path)[("eval", "base")] != with_math[("eval", "base")]


def test_the_payload_holds_the_resolved_config_not_the_delta(tmp_path):
    exp = expand(load_grid(write(tmp_path)))
    distill = next(c for c in exp.train if c.stage == "distill")
    payload = distill.inputs["distill"]
    from trainers.distill import DistillConfig

    names = {f.name for f in dataclasses.fields(DistillConfig)} - {
        "model",
        "parent",
        "output_dir",
        "target",
        "seed",
        "trust_remote_code",
    }
    assert set(payload) == names
    assert payload["learning_rate"] == 2.0e-4 and payload["kl_coef"] == DistillConfig().kl_coef
    assert distill.inputs["method_version"] == "3" and distill.inputs["key_schema"] == 2


def test_grpo_rollout_dtype_auto_is_keyed_by_what_it_resolves_to_on_this_machine(
    tmp_path, monkeypatch
):
    """Under rollout_dtype=auto a CPU with bf16 matmuls samples from a bf16 copy and one
    without from an fp32 copy: two trainings, so two keys, and the key says which."""
    import trainers._rollout as rollout

    path = write(tmp_path)

    def grpo_payload(bf16: bool) -> tuple[str, dict]:
        monkeypatch.setattr(rollout, "cpu_has_bf16", lambda: bf16)
        cell = next(c for c in expand(load_grid(path)).train if c.stage == "distill+grpo")
        return cell.key, cell.inputs["grpo"]

    (with_bf16, payload_bf16), (without, payload_fp32) = grpo_payload(True), grpo_payload(False)
    assert payload_bf16["rollout_dtype"] == "bf16" and payload_fp32["rollout_dtype"] == "fp32"
    assert with_bf16 != without
    # a stage the setting plays no part in keeps its key; an explicit value is keyed as given
    monkeypatch.setattr(rollout, "cpu_has_bf16", lambda: True)
    distill_key = keys(path)[("train", "distill")]
    monkeypatch.setattr(rollout, "cpu_has_bf16", lambda: False)
    assert keys(path)[("train", "distill")] == distill_key
    explicit = write(tmp_path, steps={**GRID["steps"], "grpo": {"rollout_dtype": "bf16"}})
    cell = next(c for c in expand(load_grid(explicit)).train if c.stage == "distill+grpo")
    assert cell.inputs["grpo"]["rollout_dtype"] == "bf16" and cell.key == with_bf16


def test_first_difference_names_the_field_with_both_values():
    old = {"distill": {"learning_rate": 0.0002, "max_steps": 3}, "seed": 0}
    new = {"distill": {"learning_rate": 0.0001, "max_steps": 3}, "seed": 0}
    assert first_difference(old, new) == "distill.learning_rate 0.0002 -> 0.0001"
    assert first_difference(old, old) is None
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "b added (2)"


def test_grid_show_names_the_first_changed_field_and_the_parent_for_descendants(
    tmp_path, stage_manifest
):
    results = tmp_path / "results"
    old = expand(load_grid(write(tmp_path)))
    for cell in old.train:  # records as a finished run of the old config would have left them
        write_record(
            RunRecord(
                kind="train",
                cell_key=cell.key,
                model_id=cell.model,
                stage=cell.stage,
                inputs=cell.inputs,
            ),
            results,
        )
        stage_manifest(results / "checkpoints" / cell.key)
    path = write(tmp_path, steps={"distill": {"max_steps": 3, "learning_rate": 1.0e-4}})
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.cli import main; main()",
            "grid",
            "show",
            path,
            "--json",
            "--results",
            str(results),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {(r["kind"], r["stage"]): r for r in json.loads(out.stdout)}
    assert rows[("train", "distill")]["status"] == "changed"
    assert rows[("train", "distill")]["why"] == "distill.learning_rate 0.0002 -> 0.0001"
    assert (
        rows[("train", "distill+grpo")]["why"]
        == "parent changed: distill.learning_rate 0.0002 -> 0.0001"
    )
    assert rows[("train", "sft")]["status"] == "done"
    assert set(rows[("eval", "base")]) >= {
        "kind",
        "key",
        "model",
        "stage",
        "status",
        "why",
        "inputs",
        "chat_template",
        "max_gen_toks",
        "max_model_len",
        "temperature",
        "repeats",
    }
    assert rows[("eval", "base")]["inputs"]["tasks"] == {
        "math_arith": "1.0",
        "think_quality_math": "1.0",
    }


def test_a_missing_checkpoint_makes_a_done_stage_changed(tmp_path):
    results = tmp_path / "results"
    grid = load_grid(write(tmp_path))
    sft = next(c for c in expand(grid).train if c.stage == "sft")
    write_record(
        RunRecord(
            kind="train", cell_key=sft.key, model_id=sft.model, stage="sft", inputs=sft.inputs
        ),
        results,
    )
    status = plan_grid(grid, results).status[sft.key]
    assert status.status == "changed" and "checkpoint is missing" in status.why


def test_a_corrupt_record_makes_its_cell_run_again(tmp_path):
    results = tmp_path / "results"
    grid = load_grid(write(tmp_path))
    base = next(c for c in expand(grid).eval if c.stage == "base")
    (results / "records").mkdir(parents=True)
    (results / "records" / f"eval-{base.key}.json").write_text("{not json")
    plan = plan_grid(grid, results)
    assert base in plan.todo and "does not load" in plan.status[base.key].why


def test_a_grid_that_sets_trust_remote_code_is_refused(tmp_path):
    path = write(tmp_path, steps={"sft": {"trust_remote_code": True}})
    with pytest.raises(BenchError, match=r"steps\.sft\.trust_remote_code.*only the model zoo"):
        load_grid(path)


def test_trust_remote_code_reaches_training_from_the_zoo(tmp_path, monkeypatch):
    """The train cell's key and the config handed to the trainer carry the zoo's declaration."""
    from harness import zoo

    real = zoo.get_model

    def trusting(name):
        spec = real(name)
        return (
            spec.model_copy(update={"trust_remote_code": True})
            if name == "tiny-random-llama"
            else spec
        )

    monkeypatch.setattr(zoo, "get_model", trusting)
    cell = next(c for c in expand(load_grid(write(tmp_path))).train if c.stage == "sft")
    assert cell.inputs["trust_remote_code"] is True
    seen = {}
    import harness.runner as runner
    import trainers

    class Trained(Exception):  # the fake trainer stops the cell once it has the config
        pass

    def train_stage(method, config, **kw):
        seen.update(config)
        raise Trained

    monkeypatch.setattr(trainers, "train_stage", train_stage)
    monkeypatch.setattr(zoo, "materialize", lambda name: tmp_path)
    with pytest.raises(Trained):
        runner._train(cell, load_grid(write(tmp_path)), tmp_path / "results")
    assert seen["trust_remote_code"] is True


@pytest.mark.parametrize(
    ("backend", "key"), [("hf", "e69f91d97b69d120"), ("vllm", "8d146a19aa881a92")]
)
def test_an_eval_payload_keeps_its_key_across_releases(backend, key, monkeypatch):
    """A fixed eval payload hashes to the key bench computed for it before backends were a
    table (package and verifier versions pinned): a refactor of how keys are built must not
    move every stored cell. Only a deliberate KEY_SCHEMA change may change these."""
    import harness.keys as keys
    import harness.taskinfo as taskinfo
    from harness.settings import ResolvedEval

    monkeypatch.setattr(keys, "package_versions", lambda names: {n: f"{n}-v" for n in names})
    monkeypatch.setattr(taskinfo, "task_verifiers", lambda task: {"math": "3"})
    settings = ResolvedEval(
        backend=backend,
        limit=2,
        num_fewshot=0,
        apply_chat_template=True,
        max_gen_toks=256,
        max_model_len=2048,
        temperature=0.0,
        top_p=1.0,
        repeats=1,
        gen_kwargs={},
    )
    inputs = keys.eval_inputs(
        weights="hub:org/m@abc",
        train=None,
        tasks={"math_arith": "2"},
        settings=settings.model_dump(),
        trust_remote_code=False,
        seed=0,
        target="cpu",
    )
    assert keys.content_key(inputs) == key
