"""The vLLM CPU lane: ``bench eval --backend vllm`` on the bundled model, checked against the HF backend.

Runs in the second virtualenv (``make setup-vllm``, then ``make test-vllm``). vLLM's CPU platform
starts its engine processes with the spawn method, which re-imports the parent's ``__main__``: here
that is pytest's own entry script, whose main is guarded, so the engine starts from this process.
"""

import importlib.util

import pytest
from conftest import needs

# Off CI a venv without vLLM skips with the command that makes it; on CI it fails.
pytestmark = [
    pytest.mark.vllm,
    needs("vllm", [] if importlib.util.find_spec("vllm") else ["vllm"], "make setup-vllm"),
]

LIMIT = 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bundled_model):
    """Both backends on the same 8 math_arith docs, greedy, 48 new tokens: (records, completions)."""
    from harness.api import eval_model
    from leaderboards.samples import read_samples

    results = tmp_path_factory.mktemp("results")
    records, completions = {}, {}
    for backend in ("vllm", "hf"):
        rec = eval_model(
            model="smollm2-135m-instruct",
            tasks=["math_arith"],
            backend=backend,
            limit=LIMIT,
            max_gen_toks=48,
            results=results,
        )
        rows = read_samples(results / rec.tasks[0].samples_file).to_pylist()
        records[backend] = rec
        completions[backend] = {r["doc_id"]: (r["completion"], r["score"]) for r in rows}
    return records, completions


def test_vllm_engine_stops_with_its_eval(runs):
    """The engine's processes (and their KV cache) end with the cell, not with this process."""
    import time

    import psutil

    def engines():
        alive = []
        for proc in psutil.Process().children(recursive=True):
            try:  # VLLM::EngineCore, VLLM::Worker (setproctitle names)
                if proc.name().startswith("VLLM") and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc.pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    deadline = time.monotonic() + 15
    while engines() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not engines()


def test_vllm_record_names_its_backend(runs):
    records, _ = runs
    rec = records["vllm"]
    assert rec.backend == "vllm" and records["hf"].backend == "hf"
    assert rec.dtype == "float32"  # the cpu target's dtype, as the HF backend loads it
    assert rec.cell_key != records["hf"].cell_key  # the backend is part of the cell key
    (task,) = rec.tasks
    assert task.name == "math_arith" and task.limit == LIMIT
    assert task.metrics["exact_match"].n == LIMIT
    assert rec.tokens_per_s and rec.tokens_per_s > 0


def test_vllm_greedy_completions_equal_hf(runs):
    _, completions = runs
    vllm, hf = completions["vllm"], completions["hf"]
    assert sorted(vllm) == sorted(hf) == list(range(LIMIT))
    differ = {d: (vllm[d][0], hf[d][0]) for d in hf if vllm[d][0] != hf[d][0]}
    assert not differ, f"{len(differ)}/{LIMIT} greedy completions differ (vllm, hf): {differ}"
    assert all(c.strip() for c, _ in hf.values())  # not 8 empty strings agreeing with each other


def test_vllm_scores_equal_hf(runs):
    records, completions = runs
    assert {d: s for d, (_, s) in completions["vllm"].items()} == {
        d: s for d, (_, s) in completions["hf"].items()
    }
    em = [records[b].tasks[0].metrics["exact_match"].value for b in ("vllm", "hf")]
    assert em[0] == em[1]
