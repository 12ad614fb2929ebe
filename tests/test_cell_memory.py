"""A record's peak memory is its own cell's: host RSS and CUDA max-allocated, as separate fields."""

import json

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

    def heavy_first(req, results_dir):  # the first cell loads 500 MB more than the second
        calls.append(req.model_id)
        held = _touch(500 * MB) if len(calls) == 1 else b""
        try:
            return build_lm(req, results_dir)
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
    del v2["peak_rss_bytes"], v2["peak_cuda_bytes"], v2["process_peak_bytes"]
    v2.update(schema_version=2, peak_memory_bytes=8_870_000_000)
    path = tmp_path / "eval-k.json"
    path.write_text(json.dumps(v2))
    rec = load_record(path)
    assert rec.schema_version == SCHEMA_VERSION == 3
    assert rec.process_peak_bytes == 8_870_000_000  # kept, but not passed off as the cell's
    assert rec.peak_rss_bytes is None and rec.peak_cuda_bytes is None


def test_schema_1_fixture_records_still_load():
    from pathlib import Path

    files = sorted(Path(__file__).parent.glob("fixtures/records_v1/records/*.json"))
    recs = [load_record(p) for p in files]
    assert len(recs) == 3 and {r.schema_version for r in recs} == {3}
    assert all(r.weights_key.startswith("v1:") for r in recs)
