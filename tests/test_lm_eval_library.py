"""lm-eval's own tasks in grids and ``bench eval --tasks``: resolved (with versions) only when named,
and gsm8k read from the local file offline. The full built-in index costs a minute, so these tests
index lm-eval's gsm8k folder alone, which is the same code path on a smaller tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.lmeval_tasks as lmeval_tasks
from bench_core.mirror import split_file
from harness.errors import BenchError
from harness.taskinfo import resolve_tasks

GSM8K_TEST = split_file("openai/gsm8k", "main", "test")


@pytest.fixture
def small_index(monkeypatch):
    import lm_eval
    from lm_eval.tasks import TaskManager

    folder = Path(lm_eval.__file__).parent / "tasks" / "gsm8k"
    tm = TaskManager(include_path=str(folder), include_defaults=False)
    monkeypatch.setattr(lmeval_tasks, "builtin_index", lambda: dict(tm.task_index))
    return folder


def test_bench_tasks_never_build_the_builtin_index(monkeypatch):
    def boom():
        raise AssertionError("lm-eval's index was built for a bench task")

    monkeypatch.setattr(lmeval_tasks, "builtin_index", boom)
    assert [t.name for t in resolve_tasks(["math", "causal_nli"])] == [
        "math_gsm8k",
        "math_arith",
        "causal_nli",
    ]


def test_a_builtin_task_resolves_with_its_yaml_version(small_index):
    (info,) = resolve_tasks(["gsm8k"])
    assert (info.name, info.version, info.file) == ("gsm8k", "3.0", small_index / "gsm8k.yaml")
    names = [t.name for t in resolve_tasks(["gsm8k_cot", "math_arith"])]
    assert names == ["gsm8k_cot", "math_arith"]


def test_an_unknown_task_is_one_line_with_a_hint(small_index):
    with pytest.raises(BenchError, match=r"unknown task 'gsm8kk'.*did you mean: gsm8k"):
        resolve_tasks(["gsm8kk"])


@pytest.mark.skipif(GSM8K_TEST is None, reason="no local GSM8K (../shared/data)")
def test_gsm8k_reads_the_local_file_offline(small_index, monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    over = lmeval_tasks.local_overrides(small_index / "gsm8k.yaml")
    assert over["dataset_path"] == "json"
    assert over["dataset_kwargs"]["data_files"]["test"] == str(GSM8K_TEST)
    tm = lmeval_tasks.builtin_manager_class(TaskManager)(
        include_path=str(small_index), include_defaults=False
    )
    task = tm.load(["gsm8k"])["tasks"]["gsm8k"]
    docs = list(task.test_docs())
    first = json.loads(GSM8K_TEST.open().readline())
    assert len(docs) == 1319 and docs[0]["question"] == first["question"]
    assert (
        len(list(task.fewshot_docs())) == 7473
    )  # the 5-shot examples come from the local train split
