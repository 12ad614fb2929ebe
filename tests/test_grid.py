import json
import subprocess
import sys

import pytest
import yaml

from harness.errors import BenchError
from harness.grid import expand, list_grids, load_grid

BASE = {
    "name": "t",
    "models": ["tiny-random-llama"],
    "recipes": [["distill"], ["distill", "grpo"], ["sft", "dpo"]],
    "steps": {"distill": {"max_steps": 3, "levels": "2"}},
    "tasks": ["math_arith"],
    "eval": {"limit": 2},
}


def write(tmp_path, **over):
    grid = {**BASE, **over}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def keys(path):
    exp = expand(load_grid(path))
    return {(c.kind, c.stage): c.key for c in exp.cells}


def test_every_shipped_grid_loads_and_expands():
    assert {"smoke", "all"} <= set(list_grids())
    for name in list_grids():
        exp = expand(load_grid(name))
        assert exp.eval and all(len(c.key) == 16 for c in exp.cells)


def test_expansion_stages_prefixes_and_parents(tmp_path):
    exp = expand(load_grid(write(tmp_path)))
    train = {c.stage: c for c in exp.train}
    # [distill] and [distill, grpo] share the distill prefix: one train cell, not two.
    assert sorted(train) == ["distill", "distill+grpo", "sft", "sft+dpo"]
    assert train["distill+grpo"].parent_key == train["distill"].key
    assert train["sft+dpo"].parent_key == train["sft"].key and train["sft"].parent_key is None
    assert train["distill"].config["max_steps"] == 3 and train["distill+grpo"].config == {}
    evals = {c.stage: c for c in exp.eval}
    assert sorted(evals) == ["base", "distill", "distill+grpo", "sft", "sft+dpo"]
    assert (
        evals["base"].train_key is None
        and evals["distill+grpo"].train_key == train["distill+grpo"].key
    )
    assert evals["base"].tasks == (("math_arith", "1.0"),)


def test_keys_are_stable_across_processes(tmp_path):
    path = write(tmp_path)
    here = keys(path)
    code = (
        "import json,sys; from harness.grid import expand, load_grid; "
        "e = expand(load_grid(sys.argv[1])); print(json.dumps({f'{c.kind}:{c.stage}': c.key for c in e.cells}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == {f"{k}:{s}": v for (k, s), v in here.items()}


def test_keys_change_with_every_input(tmp_path):
    base = keys(write(tmp_path))
    changed_step = keys(write(tmp_path, steps={"distill": {"max_steps": 4, "levels": "2"}}))
    # a distill change re-keys distill, its child and their evals; the sft branch and base stay
    assert changed_step[("train", "distill")] != base[("train", "distill")]
    assert changed_step[("train", "distill+grpo")] != base[("train", "distill+grpo")]
    assert changed_step[("eval", "distill")] != base[("eval", "distill")]
    assert changed_step[("train", "sft")] == base[("train", "sft")]
    assert changed_step[("eval", "base")] == base[("eval", "base")]
    seeded = keys(write(tmp_path, seed=1))
    assert all(seeded[k] != base[k] for k in base)
    limited = keys(write(tmp_path, eval={"limit": 3}))
    assert (
        limited[("eval", "base")] != base[("eval", "base")]
        and limited[("train", "sft")] == base[("train", "sft")]
    )
    batch = keys(write(tmp_path, eval={"limit": 2, "batch_size": 32}))  # a speed knob: same results
    assert batch == base
    other_model = keys(write(tmp_path, models=["tiny-random-qwen2"]))
    assert all(other_model[k] != base[k] for k in base)


def test_key_changes_with_task_version(tmp_path, monkeypatch):
    import harness.taskinfo as ti

    base = keys(write(tmp_path))
    real = ti.task_index()
    bumped = dict(real)
    bumped["math_arith"] = ti.TaskInfo("math_arith", "2.0", real["math_arith"].file)
    monkeypatch.setattr(ti, "task_index", lambda tasks_dir=None: bumped)
    assert keys(write(tmp_path))[("eval", "base")] != base[("eval", "base")]


def test_data_file_content_is_part_of_the_key(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": []}\n')
    steps = {"sft": {"dataset": str(data)}}
    first = keys(write(tmp_path, steps=steps))
    data.write_text('{"messages": [1]}\n')
    assert keys(write(tmp_path, steps=steps))[("train", "sft")] != first[("train", "sft")]


def test_published_stages_are_rows_of_their_own_beside_the_trained_ones():
    exp = expand(load_grid("all"))
    rows = [(c.model, c.stage) for c in exp.eval]
    assert len(rows) == len(set(rows))  # no two eval cells share a (model, stage) label
    published = {c.load: c for c in exp.eval if c.load.startswith("tulu")}
    assert {c.stage for c in published.values()} == {"tulu-3-8b-sft", "tulu-3-8b-dpo", "tulu-3-8b"}
    assert all(c.model == "llama-3.1-8b" for c in published.values())
    trained = {c.stage for c in exp.eval if c.model == "llama-3.1-8b" and c.load == "llama-3.1-8b"}
    assert trained == {"base", "sft", "sft+dpo", "distill", "distill+grpo"}
    base = next(c for c in exp.eval if c.model == "llama-3.1-8b" and c.stage == "base")
    sft, dpo, rl = (published[n] for n in ("tulu-3-8b-sft", "tulu-3-8b-dpo", "tulu-3-8b"))
    # lineage by weights: SFT's parent is the base, DPO's the SFT, RLVR's the DPO
    assert sft.parent_weights == base.weights and dpo.parent_weights == sft.weights
    assert rl.parent_weights == dpo.weights and rl.base_weights == base.weights
    assert (sft.recipe, rl.recipe, rl.parent_stage) == (
        ("sft",),
        ("sft", "dpo", "rlvr"),
        "tulu-3-8b-dpo",
    )


@pytest.mark.parametrize(
    "over, field, fix",
    [
        ({"modelz": ["x"]}, "modelz", "remove it"),
        ({"models": ["qwen2.5-7b-instrct"]}, "models.0", "qwen2.5-7b-instruct"),
        ({"tasks": ["math_arth"]}, "tasks", "math_arith"),
        ({"recipes": [["distil"]]}, "recipes.0.0", "distill"),
        ({"steps": {"x": {"method": "ppo"}}}, "steps.x.method", "methods:"),
        ({"steps": {"distill": {"max_step": 3}}}, "steps.distill.max_step", "max_steps"),
        ({"steps": {"sft": {"output_dir": "x"}}}, "steps.sft.output_dir", "trainers/sft_config.py"),
        ({"eval": {"limit": "many"}}, "eval.limit", "valid"),
        ({"seed": "zero"}, "seed", "valid"),
    ],
)
def test_malformed_grid_is_one_line_exit_2(tmp_path, over, field, fix):
    path = write(tmp_path, **over)
    with pytest.raises(BenchError) as e:
        load_grid(path)
    msg = str(e.value)
    assert path in msg and field in msg and fix in msg and "\n" not in msg
    proc = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "grid", "show", path],
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 2
        and len(proc.stderr.strip().splitlines()) == 1
        and "Traceback" not in proc.stderr
    )


def test_unknown_grid_lists_known():
    with pytest.raises(BenchError, match="unknown grid 'smok'.*smoke"):
        load_grid("smok")
