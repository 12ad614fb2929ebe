"""The think_quality group over math and causal_nli prompts, wired through lm-eval.

causal_nli is another task's folder: here a stand-in ``causal_nli/causal_nli.yaml``
and a stand-in verifier in a copied include_path check the wiring (include of the
underlying task, the think instruction, the delegated verifier, the group) without
depending on that task's progress.
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

import tasks
from tasks.scoring import Score

FAKE_YAML = """\
task: causal_nli
custom_dataset: !function utils.docs
test_split: test
doc_to_text: "{{input}}\\nAnswer valid or invalid."
doc_to_target: "{{label}}"
output_type: generate_until
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 8
process_results: !function utils.process_results
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.1
"""

FAKE_UTILS = """\
def docs(**_):
    import datasets

    rows = [{"input": "Premise: A correlates with B.\\nHypothesis: A causes B.", "label": 0},
            {"input": "Premise: A is independent of B.\\nHypothesis: A and B are independent.", "label": 1}]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def process_results(doc, results):
    return {"acc": 0.0}
"""


def _fake_verify(completion: str, reference) -> Score:
    said = completion.strip().lower().rstrip(".")
    right = {1: "valid", 0: "invalid"}[int(reference)]
    return Score(float(said == right), said, "stand-in")


@pytest.fixture
def include_path(tmp_path, monkeypatch):
    root = tmp_path / "tasks"
    for name in ("math", "think_quality"):
        shutil.copytree(
            tasks.TASKS_DIR / name, root / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    (root / "causal_nli").mkdir()
    (root / "causal_nli" / "causal_nli.yaml").write_text(FAKE_YAML)
    (root / "causal_nli" / "utils.py").write_text(FAKE_UTILS)
    rows = (Path(__file__).parent / "fixtures" / "math" / "gsm8k_test_slice.jsonl").read_text()
    for split in ("train", "test"):
        (tmp_path / f"gsm8k_{split}.jsonl").write_text(rows)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "tasks.causal_nli", types.SimpleNamespace(verify=_fake_verify))
    return root


def test_think_quality_group_covers_math_and_causal_prompts(include_path):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path), include_defaults=False)
    loaded = manager.load(["think_quality"])
    assert loaded["group_map"] == {"think_quality": ["think_quality_math", "think_quality_causal"]}
    causal = loaded["tasks"]["think_quality_causal"]
    # dataset and prompt from causal_nli, instruction/metrics/version from think_quality
    doc = list(causal.eval_docs)[1]
    assert causal.doc_to_text(doc).endswith("Answer valid or invalid.")
    assert "<think>" in causal.config.description
    assert causal.config.metadata["version"] == 1.0
    good = "<think>\nStep 1: A and B are independent.\nStep 2: so the claim holds.\n</think>\nvalid"
    assert causal.process_results(doc, [good]) == {
        "composite": 1.0,
        "format_ok": 1.0,
        "correct": 1.0,
    }
    assert causal.process_results(doc, ["invalid"]) == {
        "composite": 0.0,
        "format_ok": 0.0,
        "correct": 0.0,
    }

    from tasks.think_quality import utils

    assert utils.sample_fields(doc, good) == {"answer": "valid", "correct": True, "score": 1.0}


REAL_CAUSAL = tasks.TASKS_DIR / "causal_nli" / "causal_nli.yaml"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("think_quality_math.yaml", "math/math_gsm8k.yaml"),
        ("think_quality_causal.yaml", "causal_nli/causal_nli.yaml"),
    ],
)
def test_think_quality_keeps_the_underlying_data_metadata(ours, theirs):
    """lm-eval's include replaces ``metadata`` whole: the data keys must be restated."""
    from lm_eval.tasks._yaml_loader import load_yaml

    if not (tasks.TASKS_DIR / theirs).is_file():
        pytest.skip(f"tasks/{theirs} not there yet")
    mine = load_yaml(tasks.TASKS_DIR / "think_quality" / ours, resolve_func=False)["metadata"]
    base = load_yaml(tasks.TASKS_DIR / theirs, resolve_func=False)["metadata"]
    assert {k: v for k, v in mine.items() if k != "version"} == {
        k: v for k, v in base.items() if k != "version"
    }


@pytest.mark.skipif(
    not REAL_CAUSAL.is_file(), reason="tasks/causal_nli/causal_nli.yaml not there yet"
)
def test_think_quality_causal_over_the_real_causal_nli_task():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks.TASKS_DIR), include_defaults=False)
    task = manager.load(["think_quality_causal"])["tasks"]["think_quality_causal"]
    assert task.config.generation_kwargs["until"] == ["\n\nPremise:"]
    doc = next(iter(task.eval_docs))
    wrong = {"valid": "invalid", "invalid": "valid"}[doc["label"]]
    steps = "<think>\nStep 1: list the independences.\nStep 2: build the skeleton and orient it.\n</think>\n"
    assert task.process_results(doc, [f"{steps}Answer: {doc['label']}"]) == {
        "composite": 1.0,
        "format_ok": 1.0,
        "correct": 1.0,
    }
    assert task.process_results(doc, [f"{steps}Answer: {wrong}"])["correct"] == 0.0
