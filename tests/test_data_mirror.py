"""The data mirror (DATA_DIR/<dataset_path>[/<dataset_name>]/<split>.jsonl): lm-eval's built-in
tasks read it offline, the splits it lacks are dropped, a missing few-shot split is one error,
the files' hashes are in the eval key, and ``bench data pull`` writes the layout from a folder
standing in for the hub. lm-eval's arc and piqa folders alone are indexed (the full index costs a
minute); the ARC rows are tests/fixtures/arc (CC BY-SA 4.0, AI2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import harness.lmeval_tasks as lmeval_tasks
from bench_core.mirror import split_file
from harness.errors import BenchError

ARC = Path(__file__).parent / "fixtures" / "arc"
EASY = ARC / "allenai" / "ai2_arc" / "ARC-Easy"


def _easy(mirror: Path) -> Path:
    return mirror / "allenai" / "ai2_arc" / "ARC-Easy"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def lm_eval_tasks(monkeypatch):
    """lm-eval's arc and piqa folders as the built-in index."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    root = Path(lm_eval.__file__).parent / "tasks"
    tm = TaskManager(include_path=[str(root / "arc"), str(root / "piqa")], include_defaults=False)
    monkeypatch.setattr(lmeval_tasks, "builtin_index", lambda: dict(tm.task_index))
    return root


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    folder = tmp_path / "mirror"
    shutil.copytree(ARC, folder, ignore=shutil.ignore_patterns("README.md"))
    monkeypatch.setenv("BENCH_DATA_DIR", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return folder


def _manager(num_fewshot=0):
    from lm_eval.tasks import TaskManager

    from harness.lmeval_tasks import builtin_manager_class

    tm = builtin_manager_class(TaskManager, num_fewshot)(include_defaults=False)
    lmeval_tasks.with_builtin_index(tm)
    return tm


def test_arc_easy_reads_the_mirror_offline_and_drops_the_train_split(lm_eval_tasks, mirror):
    task = _manager().load(["arc_easy"])["tasks"]["arc_easy"]
    docs = list(task.test_docs())
    assert [d["id"] for d in docs] == [r["id"] for r in _rows(EASY / "test.jsonl")]
    assert docs[3]["choices"] == _rows(EASY / "test.jsonl")[3]["choices"]  # the hub's columns
    assert not task.has_training_docs()  # the mirror has no train split: dropped, not fetched
    assert len(list(task.validation_docs())) == 5
    over = lmeval_tasks.local_overrides(lm_eval_tasks / "arc" / "arc_easy.yaml", 0, "arc_easy")
    assert over["training_split"] is None and over["dataset_path"] == "json"


def test_a_few_shot_run_without_its_few_shot_split_is_one_error(lm_eval_tasks, mirror):
    with pytest.raises(BenchError) as err:
        _manager(num_fewshot=5).load(["arc_easy"])
    message = str(err.value)
    assert "\n" not in message and "5-shot needs split 'train'" in message
    assert "bench data pull arc_easy" in message


def test_offline_without_the_scored_split_is_one_error(lm_eval_tasks, mirror):
    with pytest.raises(BenchError, match=r"piqa: split 'validation' of baber/piqa is not in"):
        _manager().load(["piqa"])


def test_online_a_task_the_mirror_lacks_reads_the_hub(lm_eval_tasks, mirror, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    assert lmeval_tasks.local_overrides(lm_eval_tasks / "piqa" / "piqa.yaml", 0, "piqa") is None
    arc = lmeval_tasks.local_overrides(lm_eval_tasks / "arc" / "arc_easy.yaml", 0, "arc_easy")
    assert arc["dataset_kwargs"]["data_files"]["test"] == str(_easy(mirror) / "test.jsonl")


def test_gsm8k_earlier_file_names_are_read_where_the_layout_lacks_them(tmp_path):
    (tmp_path / "gsm8k_test.jsonl").write_text("{}\n")
    assert split_file("openai/gsm8k", "main", "test", tmp_path) == tmp_path / "gsm8k_test.jsonl"
    (tmp_path / "openai" / "gsm8k" / "main").mkdir(parents=True)
    (tmp_path / "openai" / "gsm8k" / "main" / "test.jsonl").write_text("{}\n")
    assert split_file("openai/gsm8k", "main", "test", tmp_path).name == "test.jsonl"
    assert split_file("openai/gsm8k", "main", "train", tmp_path) is None


def base_row(spec) -> dict:
    """eval_cell's fields for a zoo model's base row."""
    return {
        "spec": spec,
        "row_model": spec.name,
        "stage": "base",
        "recipe": (),
        "load": spec.name,
        "train_key": None,
        "identity": "w",
        "parent_weights": None,
        "base_weights": None,
        "parent_stage": None,
    }


def test_the_files_a_cell_reads_are_in_its_eval_key(lm_eval_tasks, mirror):
    from harness.grid import GridSpec, eval_cell
    from harness.zoo import get_model

    spec = get_model("smollm2-135m-instruct")
    grid = GridSpec(name="g", models=[spec.name], tasks=["arc_easy", "math_arith"])

    def key():
        cell = eval_cell(grid, tasks=(("arc_easy", "1.0"), ("math_arith", "1")), **base_row(spec))
        return cell.key, cell.inputs

    before, inputs = key()
    assert set(inputs["data"]) == {"arc_easy"}  # generated items read no mirror file
    assert set(inputs["data"]["arc_easy"]) == {"test"}  # 0-shot reads the scored split only
    test = _easy(mirror) / "test.jsonl"
    test.write_text("\n".join(test.read_text().splitlines()[:-1]) + "\n")  # one row fewer
    after, _ = key()
    assert after != before
    (_easy(mirror) / "validation.jsonl").write_text("{}\n")  # not read 0-shot: no new key
    assert key()[0] == after


def test_a_grid_names_its_mirror(lm_eval_tasks, mirror, tmp_path):
    from harness.grid import GridSpec, eval_cell
    from harness.zoo import get_model

    other = tmp_path / "other"
    shutil.copytree(mirror, other)
    (other / "allenai/ai2_arc/ARC-Easy/test.jsonl").write_text(
        (EASY / "test.jsonl").read_text().splitlines()[0] + "\n"
    )
    spec = get_model("smollm2-135m-instruct")
    keys = []
    for data_dir in (None, str(other)):
        grid = GridSpec(name="g", models=[spec.name], tasks=["arc_easy"], data_dir=data_dir)
        cell = eval_cell(grid, tasks=(("arc_easy", "1.0"),), **base_row(spec))
        keys.append(cell.inputs["data"]["arc_easy"]["test"])
    assert keys[0] != keys[1]


def _hub_repo(root: Path) -> Path:
    """A datasets repository laid out as the hub's allenai/ai2_arc (parquet per config and split)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = root / "allenai" / "ai2_arc"
    for config, split, n in (
        ("ARC-Easy", "test", 20),
        ("ARC-Easy", "validation", 5),
        ("ARC-Easy", "train", 3),
        ("ARC-Challenge", "test", 2),
    ):
        rows = _rows(EASY / ("validation.jsonl" if split == "train" else f"{split}.jsonl"))[:n]
        (repo / config).mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(rows), repo / config / f"{split}-00000-of-00001.parquet"
        )
    configs = "".join(
        f"- config_name: {c}\n  data_files:\n"
        + "".join(f"  - split: {s}\n    path: {c}/{s}-*.parquet\n" for s in splits)
        for c, splits in (
            ("ARC-Easy", ("train", "test", "validation")),
            ("ARC-Challenge", ("test",)),
        )
    )
    (repo / "README.md").write_text(f"---\nconfigs:\n{configs}---\n# ai2_arc stand-in\n")
    return root


def test_data_pull_writes_the_layout_from_a_local_hub_stand_in(
    lm_eval_tasks, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    hub, out = _hub_repo(tmp_path / "hub"), tmp_path / "pulled"
    result = CliRunner().invoke(
        app, ["data", "pull", "arc_easy", "--from", str(hub), "--to", str(out)]
    )
    assert result.exit_code == 0, result.output
    folder = out / "allenai" / "ai2_arc" / "ARC-Easy"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    assert _rows(folder / "test.jsonl") == _rows(EASY / "test.jsonl")  # the hub's rows and columns
    assert len(_rows(folder / "train.jsonl")) == 3

    listing = CliRunner().invoke(
        app, ["data", "ls", "arc_easy", "piqa", "--to", str(out), "--json"]
    )
    assert listing.exit_code == 0, listing.output
    easy, piqa = json.loads(listing.output)
    assert easy["held"] == {"test": 20, "validation": 5, "train": 3} and easy["status"] == "ready"
    assert easy["needed"] == ["test"] and easy["fewshot"] == "train"
    assert piqa["held"] == {} and piqa["status"] == "missing validation"


def test_data_pull_offline_without_a_source_is_one_error(lm_eval_tasks, tmp_path, monkeypatch):
    from harness.datamirror import data_pull

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchError, match="the hub is off"):
        data_pull(["arc_easy"], tmp_path)


def test_trainer_hub_sources_read_the_mirror_offline(tmp_path, monkeypatch):
    from trainers._data import read_rows

    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}]
    (tmp_path / "org" / "prefs").mkdir(parents=True)
    (tmp_path / "org" / "prefs" / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert read_rows("hub:org/prefs") == rows
    with pytest.raises(ValueError, match=r"org/prefs/test.jsonl under \$BENCH_DATA_DIR"):
        read_rows("hub:org/prefs", split="test")


def test_corr2cause_reads_the_mirror_offline(tmp_path, monkeypatch):
    from tasks.causal_nli import generate
    from tasks.causal_nli.utils import FILE_ENV, load_corr2cause

    monkeypatch.delenv(FILE_ENV, raising=False)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [{"input": r["input"], "label": r["label"]} for r in generate(5, 3)]
    folder = tmp_path / "causal-nlp" / "corr2cause"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = load_corr2cause("test", n_fewshot_items=2)["test"]
    assert [d["input"] for d in docs] == [r["input"] for r in rows]


def test_a_multiple_choice_doc_is_one_row_with_each_choices_loglikelihood(tmp_path):
    from harness.evaluate import _sample_rows
    from leaderboards.samples import read_samples, write_samples

    sample = {
        "doc_id": 7,
        "doc": {"id": "Mercury_1", "answerKey": "B"},
        "target": 1,
        "arguments": [("Question: q\nAnswer:", " red"), ("Question: q\nAnswer:", " blue")],
        "resps": [[(-4.5, False)], [(-1.25, True)]],
        "filtered_resps": [(-4.5, False), (-1.25, True)],
        "acc": 1.0,
    }
    (row,) = _sample_rows("k", "arc_easy", [sample], "acc", None)
    assert (row["completion"], row["answer"], row["logprob"]) == (" blue", "1", -1.25)
    assert row["choice_logprobs"] == [-4.5, -1.25] and row["score"] == 1.0
    path = write_samples([row], tmp_path / "s.parquet")
    assert read_samples(path).to_pylist()[0]["choice_logprobs"] == [-4.5, -1.25]
