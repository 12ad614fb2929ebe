"""A record's peak memory is its own cell's: host RSS and CUDA max-allocated, as separate fields."""

import json

import duckdb
import pytest

from bench_core.memory import MemorySpan, peak_rss_bytes
from leaderboards.record import SCHEMA_VERSION, RunRecord, load_record

MB = 1_000_000


def _touch(n_bytes: int) -> bytes:
    return b"\1" * n_bytes  # written pages count in RSS (calloc'd zeros would not)


def test_spans_in_one_process_read_their_own_peaks():
    with MemorySpan() as big:
        held = _touch(400 * MB)
        del held
    with MemorySpan() as small:
        held = _touch(40 * MB)
        del held
    # ru_maxrss, the process's peak, would give the second span the first one's 400 MB
    assert big.peak().rss_bytes - small.peak().rss_bytes > 300 * MB
    assert small.peak().rss_bytes < peak_rss_bytes() + 60 * MB
    assert big.peak().cuda_bytes is None  # no CUDA used: no CUDA figure


def test_an_inner_span_does_not_hide_the_outer_span_peak():
    with MemorySpan() as outer:
        held = _touch(400 * MB)
        del held
        with MemorySpan() as inner:  # resets the high-water mark: the 400 MB must not be lost
            held = _touch(20 * MB)
            del held
    assert outer.peak().rss_bytes - inner.peak().rss_bytes > 300 * MB


@pytest.mark.slow
def test_two_eval_cells_in_one_process_record_their_own_peaks(
    tmp_path, monkeypatch, tiny_llama, tiny_qwen2
):
    from test_runner import eval_grid

    from harness import evaluate
    from harness.api import run_grid

    build_lm, calls = evaluate.build_lm, []

    def heavy_first(req):  # the first cell loads 500 MB more than the second
        calls.append(req.model_id)
        held = _touch(500 * MB) if len(calls) == 1 else b""
        try:
            return build_lm(req)
        finally:
            del held

    monkeypatch.setattr(evaluate, "build_lm", heavy_first)
    monkeypatch.setenv("BENCH_CELL_PROCESS", "0")  # both cells in this process
    results = tmp_path / "results"
    plan, outcome = run_grid(eval_grid(tmp_path), results=results)
    assert {o.status for o in outcome.values()} == {"done"} and len(calls) == 2
    recs = {r.model_id: r for r in map(load_record, (results / "records").glob("*.json"))}
    first, second = recs[calls[0]], recs[calls[1]]
    assert first.peak_rss_bytes - second.peak_rss_bytes > 400 * MB
    assert second.peak_rss_bytes > 50 * MB  # a model and lm-eval: a real reading, not zero
    assert first.peak_cuda_bytes is None and second.peak_cuda_bytes is None


def test_a_schema_2_record_loads_with_its_process_peak_apart(tmp_path):
    v2 = json.loads(RunRecord(kind="eval", cell_key="k", model_id="m").model_dump_json())
    del v2["peak_rss_bytes"], v2["peak_cuda_bytes"], v2["process_peak_bytes"], v2["train"]
    v2.update(schema_version=2, peak_memory_bytes=8_870_000_000, train_metrics={})
    path = tmp_path / "eval-k.json"
    path.write_text(json.dumps(v2))
    rec = load_record(path)
    assert rec.schema_version == SCHEMA_VERSION == 4
    assert rec.process_peak_bytes == 8_870_000_000  # kept, but not passed off as the cell's
    assert rec.peak_rss_bytes is None and rec.peak_cuda_bytes is None


def test_schema_1_fixture_records_still_load():
    from pathlib import Path

    files = sorted(Path(__file__).parent.glob("fixtures/records_v1/records/*.json"))
    recs = [load_record(p) for p in files]
    assert len(recs) == 3 and {r.schema_version for r in recs} == {SCHEMA_VERSION}
    assert all(r.weights_key.startswith("v1:") for r in recs)


def _engine_process(n_bytes: int):
    """A stand-in for vLLM's engine process: a child that holds ``n_bytes`` until stopped."""
    import subprocess
    import sys

    code = (
        f"import sys, time\nheld = b'\\1' * {n_bytes}\nprint('ready', flush=True)\ntime.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_an_engine_eval_records_its_engine_processes_memory_apart(tmp_path, monkeypatch):
    """vLLM holds a model and its KV cache in engine processes of its own: the record names
    their peak, read before they stop, beside the harness process's own."""
    from types import SimpleNamespace

    from lm_eval.api.model import LM

    from harness import evaluate
    from harness.api import eval_model
    from leaderboards.store import ingest

    engines = []

    class EngineLM(LM):  # lm-eval's VLLM as the harness sees it: .model.llm_engine, .model_args
        def __init__(self):
            super().__init__()
            proc = _engine_process(300 * MB)
            engines.append(proc)

            def shutdown():
                proc.terminate()
                proc.wait()

            core = SimpleNamespace(shutdown=shutdown)
            self.model = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core))
            self.model_args = {"gpu_memory_utilization": 0.9}

        def generate_until(self, requests, disable_tqdm=False):
            return ["4" for _ in requests]

        def loglikelihood(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

    monkeypatch.setattr(evaluate, "build_lm", lambda req: (EngineLM(), "float32"))
    results = tmp_path / "results"
    rec = eval_model(
        model="tiny-random-llama",
        tasks=["math_arith"],
        backend="vllm",  # its stop reads and ends the engine (harness.backends)
        limit=2,
        chat_template=False,
        results=results,
    )
    (engine,) = engines
    assert engine.returncode is not None  # stopped with the cell
    # the engine's 300 MB and an interpreter's few tens, not the harness process's reading
    assert 300 * MB < rec.engine_peak_rss_bytes < 360 * MB
    assert rec.engine_gpu_bytes is None  # a CPU target: no GPU given to the engine
    db = tmp_path / "store.duckdb"
    ingest(results, db)
    con = duckdb.connect(str(db), read_only=True)
    row = con.execute("SELECT engine_peak_rss_bytes, engine_gpu_bytes FROM records").fetchall()
    con.close()
    assert row == [(rec.engine_peak_rss_bytes, None)]
    # on a GPU target the engine is given vLLM's share of the card: 0.9 of rtx2080ti's 11 GiB
    lm = SimpleNamespace(model_args={"gpu_memory_utilization": 0.9})
    assert evaluate._engine_gpu_bytes(lm, "rtx2080ti") == int(0.9 * 11 * 2**30) == 10_630_044_057


def test_children_peak_rss_sums_the_live_descendants():
    from bench_core.memory import children_peak_rss_bytes

    before = children_peak_rss_bytes() or 0
    procs = [_engine_process(n * MB) for n in (100, 200)]
    try:
        held = children_peak_rss_bytes() - before
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    assert 300 * MB < held < 400 * MB  # both children, each with its interpreter
    assert (children_peak_rss_bytes() or 0) == before  # an ended process is no longer counted


def test_a_record_without_engine_fields_loads(tmp_path):
    old = json.loads(RunRecord(kind="eval", cell_key="k", model_id="m").model_dump_json())
    del old["engine_peak_rss_bytes"], old["engine_gpu_bytes"]
    path = tmp_path / "eval-k.json"
    path.write_text(json.dumps(old | {"backend": "vllm", "peak_rss_bytes": 900 * MB}))
    rec = load_record(path)
    assert rec.peak_rss_bytes == 900 * MB and rec.engine_peak_rss_bytes is None
