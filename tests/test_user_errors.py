"""One user-error type (STYLE 10): the packages below the harness raise ``BenchError`` for input
mistakes, so the CLI prints them as one line with exit 2 and no entry point translates.

A ``ValueError`` built in those packages is a bug (its traceback must show), a check that runs
inside a cell (its failure is recorded and the grid goes on: ``run_cell`` re-raises a
BenchError, which would stop the grid), one row's problem that the caller counts, or a pydantic
validator's complaint. Each such place is named in ``KEPT`` with its reason; a new ``ValueError``
anywhere else fails here: raise ``BenchError`` for an input mistake, or add the place and why.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bench_core.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench_core", "trainers", "tasks", "leaderboards", "containers")

BUG = "a bug in bench, not the user's input: its traceback must show"
MID_RUN = (
    "found while a stage or an eval runs: the cell's failure is recorded and the grid goes on "
    "(run_cell re-raises BenchError, which would stop the grid)"
)
PER_ROW = "one row's problem: the caller catches it and counts the row"
PYDANTIC = "inside a pydantic validator: the loader reports the ValidationError as one line"

# "path" (every ValueError in the file) or "path:function" -> why it stays a ValueError
KEPT = {
    "trainers/_data.py": MID_RUN,
    "trainers/_model.py": MID_RUN,
    "trainers/_rollout.py": MID_RUN,
    "trainers/_stage.py": MID_RUN,
    "trainers/_templates.py": MID_RUN,
    "trainers/distill.py": MID_RUN,
    "trainers/dpo.py": MID_RUN,
    "trainers/grpo.py": MID_RUN,
    "trainers/sft.py": MID_RUN,
    "trainers/planner.py:plan_for": BUG,
    "tasks/scoring.py:Score.__post_init__": BUG,
    "tasks/causal_nli/oracle.py:holds": BUG,
    "tasks/causal_nli/variants.py:_check": BUG,
    "tasks/causal_nli/variants.py:rename": BUG,
    "tasks/causal_nli/variants.py:paraphrase": BUG,
    "tasks/causal_nli/variants.py:renamed_rows": MID_RUN,
    "tasks/causal_nli/utils.py:variant_docs": MID_RUN,
    "tasks/causal_nli/utils.py:load_corr2cause": MID_RUN,
    "tasks/causal_nli/generator.py:generate": MID_RUN,
    "tasks/causal_nli/verifier.py:normalize_label": PER_ROW,
    "tasks/math/check.py:_pair": PER_ROW,
    "tasks/math/generate.py:make_item": MID_RUN,
    "tasks/math/gsm8k.py:load_gsm8k": MID_RUN,
    "tasks/__init__.py:family": MID_RUN,
    "tasks/__init__.py:source_family": MID_RUN,
    "tasks/causal_nli/train.py": MID_RUN,
    "tasks/math/train.py": MID_RUN,
    "tasks/math/gsm8k.py:gsm8k_gold": MID_RUN,
    "tasks/think_quality/scorer.py:_verifier": MID_RUN,
    "leaderboards/stats.py:mcnemar": BUG,
    "leaderboards/stats.py:paired_bootstrap": BUG,
    "leaderboards/behavior.py:pass_at_k": BUG,
    "leaderboards/analysis_store.py:write_analysis": BUG,
    "leaderboards/samples.py:_normalize": BUG,
    "leaderboards/samples.py:write_samples": BUG,
    "containers/targets.py:Target._known_quantization": PYDANTIC,
    "containers/targets.py:Target._consistent": PYDANTIC,
    "containers/generate.py:source_paths": BUG,
}


def scoped_nodes(path: Path):
    """(node, enclosing function/class names joined by dots) of every node in ``path``."""

    def walk(node, stack):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from walk(child, [*stack, child.name])
                continue
            yield child, ".".join(stack)
            yield from walk(child, stack)

    return walk(ast.parse(path.read_text(), str(path)), [])


def value_errors() -> list[tuple[str, str, int]]:
    """(path, function, line) of every ``ValueError(...)`` built in the packages."""
    return [
        (path.relative_to(ROOT).as_posix(), scope, node.lineno)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for node, scope in scoped_nodes(path)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "ValueError"
    ]


def test_packages_raise_bench_error_for_input_mistakes():
    sites = value_errors()
    assert sites, "the scan found no ValueError at all: it is not reading the packages"
    stray = [
        f"{path}:{line} ({func or 'module'})"
        for path, func, line in sites
        if path not in KEPT and f"{path}:{func}" not in KEPT
    ]
    assert not stray, (
        "ValueError outside the named places; raise bench_core.errors.BenchError for an input "
        "mistake, or add the place to KEPT with its reason: " + ", ".join(stray)
    )
    used = {p for p, _, _ in sites} | {f"{p}:{f}" for p, f, _ in sites}
    assert not set(KEPT) - used, f"KEPT names places without a ValueError: {set(KEPT) - used}"


def test_bench_error_is_a_value_error_and_a_config_field_error_is_one():
    from trainers._config import FieldError, resolve
    from trainers.sft_config import SFTConfig

    assert issubclass(BenchError, ValueError)  # callers that catch ValueError keep working
    with pytest.raises(FieldError) as err:
        resolve(SFTConfig, {"max_steps": -5})
    assert isinstance(err.value, BenchError) and err.value.field == "max_steps"


def _missing_rows(tmp: Path):
    from bench_core.rows import read_rows

    return read_rows(tmp / "none.jsonl")


def _object_not_rows(tmp: Path):
    from bench_core.rows import read_rows

    (tmp / "x.json").write_text("{}")
    return read_rows(tmp / "x.json")


def _unknown_field(tmp: Path):
    from trainers._config import resolve
    from trainers.sft_config import SFTConfig

    return resolve(SFTConfig, {"max_stepz": 1})


def _planner(**kw):
    def call(tmp: Path):
        from trainers.planner import plan

        facts = {"name": "m", "params": 1e8, "hidden_size": 512, "num_layers": 8}
        return plan(facts, "sft", "cpu", **kw)

    return call


def _unknown_topology(tmp: Path):
    from trainers.launch import launch_command

    return launch_command("sft", tmp / "c.yaml", topology="mesh")


def _unknown_target(tmp: Path):
    from containers.targets import get_target

    return get_target("h200x")


def _check_file_without_columns(tmp: Path):
    from tasks.causal_nli.check import read_rows

    (tmp / "c.jsonl").write_text(json.dumps({"x": 1}) + "\n")
    return read_rows(tmp / "c.jsonl")


def _no_store(tmp: Path):
    from leaderboards.store import connect

    return connect(tmp / "none.duckdb", read_only=True)


def _publish_into_results(tmp: Path):
    from leaderboards.publish import check_site_dir

    return check_site_dir(tmp, tmp)


CASES = {
    "rows: missing file": (_missing_rows, "none.jsonl: no such file"),
    "rows: an object, not rows": (_object_not_rows, "top level is not a list of rows"),
    "config: unknown field": (_unknown_field, "unknown SFTConfig field 'max_stepz'"),
    "planner: unknown mode": (_planner(mode="bogus"), "planner: unknown mode 'bogus'"),
    "planner: zero sequence": (_planner(seq_len=0), "must be positive integers"),
    "launch: unknown topology": (_unknown_topology, "unknown topology 'mesh'"),
    "target: unknown name": (_unknown_target, "unknown target 'h200x'"),
    "check: no input column": (_check_file_without_columns, "missing column 'input'"),
    "store: no database": (_no_store, "no leaderboard database"),
    "publish: into the results": (_publish_into_results, "is or holds the results folder"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_package_raises_bench_error_for_bad_input(name, tmp_path):
    """One input mistake per package, straight through its API: a one-line BenchError."""
    call, needle = CASES[name]
    with pytest.raises(BenchError) as err:
        call(tmp_path)
    assert needle in str(err.value) and "\n" not in str(err.value).strip()


# Harness functions that parse a file or a value themselves (json.loads, int(), a pydantic
# model) and name it in their one line; anything else below the harness is a BenchError already.
OWN_PARSE = {
    "harness/_cli_analyze.py:_ints",
    "harness/analyze.py:_stage_dir",
    "harness/api.py:_checkpoint_row",
    "harness/regression.py:load_baselines",
    "harness/zoo.py:_local_dir",
}


def translations() -> list[str]:
    """``path:function`` of every harness handler that catches ValueError and raises BenchError."""
    found = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for node, scope in scoped_nodes(path):
            caught = node.type if isinstance(node, ast.ExceptHandler) else None
            names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
            if any(isinstance(n, ast.Name) and n.id == "ValueError" for n in names) and any(
                isinstance(r, ast.Raise)
                and isinstance(r.exc, ast.Call)
                and getattr(r.exc.func, "id", "") == "BenchError"
                for r in ast.walk(node)
            ):
                found.append(f"{path.relative_to(ROOT).as_posix()}:{scope}")
    return found


def test_the_harness_does_not_translate_value_errors_into_bench_errors():
    """A lower package's input mistake is a BenchError, which the CLI prints as one line: an
    entry point that catches ValueError to re-raise it would also hide a bug's traceback."""
    found = translations()
    assert "harness/zoo.py:_local_dir" in found  # the scan sees a handler it must see
    stray = sorted(set(found) - OWN_PARSE)
    assert not stray, (
        f"ValueError translated into BenchError at {stray}: let the lower package raise "
        "BenchError, or catch only the parser's error of a file this function reads"
    )
