"""Weight analysis (leaderboards.weights): every expectation below is computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from leaderboards import weights
from leaderboards.weights import compare_weights, parse_name, spectral_drift, subspace_overlap

Q = "model.layers.0.self_attn.q_proj.weight"
NORM = "model.norm.weight"


def _ckpt(path: Path, tensors: dict[str, list], dtype=torch.float32) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: torch.tensor(v, dtype=dtype) for k, v in tensors.items()},
        str(path / "model.safetensors"),
    )
    return path


def test_parse_name_llama_qwen_phi3():
    assert parse_name("model.layers.3.self_attn.q_proj.weight") == (3, "q")
    assert parse_name("model.layers.3.self_attn.k_proj.bias") == (3, "k")  # Qwen2 biases
    assert parse_name("model.layers.11.mlp.down_proj.weight") == (11, "down")
    assert parse_name("model.layers.0.self_attn.qkv_proj.weight") == (0, "qkv")  # Phi-3 fused
    assert parse_name("model.layers.0.mlp.gate_up_proj.weight") == (0, "gate_up")
    assert parse_name("model.layers.2.input_layernorm.weight") == (2, "norm")
    assert parse_name("model.layers.2.post_attention_layernorm.weight") == (2, "norm")
    assert parse_name("model.norm.weight") == (None, "norm")
    assert parse_name("model.embed_tokens.weight") == (None, "embed")
    assert parse_name("lm_head.weight") == (None, "lm_head")
    assert parse_name("model.layers.1.self_attn.rotary_emb.inv_freq") == (1, "other")


def test_sparsity_and_relative_norm_by_hand(tmp_path):
    # q: Δ = [[0, 0], [0, 1]] -> 3 of 4 unchanged; ‖Δ‖ = 1, ‖A‖ = √(1+4+9+16) = √30
    # norm: |Δ| = 0, 5e-6, 5e-5, 5e-4 -> at tol 0: 1/4, 1e-5: 2/4, 1e-4: 3/4
    a = _ckpt(tmp_path / "a", {Q: [[1, 2], [3, 4]], NORM: [1, 1, 1, 1]})
    b = _ckpt(
        tmp_path / "b",
        {Q: [[1, 2], [3, 5]], NORM: [1, 1 + 5e-6, 1 + 5e-5, 1 + 5e-4]},
        torch.float64,
    )
    d = compare_weights(a, b, dtype="fp32")
    t = {x.name: x for x in d.tensors}
    assert t[Q].sparsity == {"0": 0.75, "1e-5": 0.75, "1e-4": 0.75}
    assert t[Q].rel_norm == pytest.approx(1 / math.sqrt(30))
    assert (t[Q].layer, t[Q].module, t[Q].numel) == (0, "q", 4)
    assert t[NORM].sparsity == {"0": 0.25, "1e-5": 0.5, "1e-4": 0.75}
    s = d.summary()
    # numel-weighted: (3 + 1) / 8 at tol 0; (3 + 3) / 8 at 1e-4
    assert s["sparsity"]["0"] == pytest.approx(4 / 8) and s["sparsity"]["1e-4"] == pytest.approx(
        6 / 8
    )
    sq_norm = (5e-6) ** 2 + (5e-5) ** 2 + (5e-4) ** 2
    assert s["rel_norm"] == pytest.approx(math.sqrt((1 + sq_norm) / (30 + 4)), rel=1e-5)
    # layer 0 holds q only; the module means equal the single tensors
    ((layer0),) = d.layers()
    assert layer0["layer"] == 0 and layer0["n_tensors"] == 1 and layer0["sparsity"]["0"] == 0.75
    assert {m["module"]: m["density"]["0"] for m in d.modules()} == {"q": 0.25, "norm": 0.75}


def test_streaming_in_small_chunks_gives_the_same_figures(tmp_path, monkeypatch):
    a = _ckpt(tmp_path / "a", {Q: [[1, 2], [3, 4], [0, 0]]})
    b = _ckpt(tmp_path / "b", {Q: [[1, 2], [3, 5], [0, 2]]})
    monkeypatch.setattr(weights, "CHUNK", 2)  # one row per read
    t = compare_weights(a, b, dtype="fp32").tensors[0]
    assert t.sparsity["0"] == pytest.approx(4 / 6)
    assert t.rel_norm == pytest.approx(math.sqrt(1 + 4) / math.sqrt(30))


def test_bf16_absorbs_an_fp32_change_smaller_than_its_spacing(tmp_path):
    # bf16 spacing is 2^-7 at 1.0 and 2 at 256: 1.001 -> 1.0, 1.01 -> 1.0078125, 256.5 -> 256
    a = _ckpt(tmp_path / "a", {NORM: [1.0, 1.0, 256.0]})
    b = _ckpt(tmp_path / "b", {NORM: [1.001, 1.01, 256.5]})
    bf = compare_weights(a, b).tensors[0]  # bf16 is the default
    fp = compare_weights(a, b, dtype="fp32").tensors[0]
    assert bf.sparsity["0"] == pytest.approx(2 / 3) and fp.sparsity["0"] == 0.0
    assert bf.rel_norm == pytest.approx(2**-7 / math.sqrt(1 + 1 + 256**2))
    assert fp.sparsity["1e-4"] == 0.0  # the fp32 changes 1e-3, 1e-2, 0.5 are all above 1e-4


def test_rank_of_a_planted_rank_3_update(tmp_path):
    # integer matrices: A + ΔW is exact in fp32, so B - A is exactly the planted rank-3 ΔW
    g = torch.Generator().manual_seed(0)
    wa = torch.randint(-5, 6, (16, 12), generator=g).float()
    u, v = (
        torch.randint(-3, 4, (16, 3), generator=g).float(),
        torch.randint(-3, 4, (3, 12), generator=g).float(),
    )
    assert int(torch.linalg.matrix_rank(u)) == 3 and int(torch.linalg.matrix_rank(v)) == 3
    a = _ckpt(tmp_path / "a", {Q: wa.tolist()})
    b = _ckpt(tmp_path / "b", {Q: (wa + u @ v).tolist()})
    t = compare_weights(a, b, dtype="fp32", rank=True).tensors[0]
    assert t.rank_ratio == pytest.approx(3 / 12)
    assert compare_weights(a, b, dtype="fp32").tensors[0].rank_ratio is None  # rank is opt-in


def test_subspace_overlap_of_known_bases():
    e = torch.eye(4)
    assert subspace_overlap(e[:, :2], e[:, :2]) == pytest.approx(1.0)
    assert subspace_overlap(e[:, :2], e[:, 2:]) == pytest.approx(0.0)
    diag = (e[:, :1] + e[:, 1:2]) / math.sqrt(2)  # 45° from e1: cos² = 1/2
    assert subspace_overlap(e[:, :1], diag) == pytest.approx(0.5)
    assert spectral_drift(torch.tensor([3.0, 4.0]), torch.tensor([6.0, 8.0])) == pytest.approx(1.0)


def test_spectral_drift_and_overlap_end_to_end(tmp_path):
    # B permutes A's singular directions: same spectrum (drift 0), top-2 spans e1,e2 vs e3,e4 (overlap 0)
    a = _ckpt(tmp_path / "a", {Q: torch.diag(torch.tensor([5.0, 4.0, 1.0, 0.5])).tolist()})
    b = _ckpt(tmp_path / "b", {Q: torch.diag(torch.tensor([1.0, 0.5, 5.0, 4.0])).tolist()})
    c = _ckpt(tmp_path / "c", {Q: torch.diag(torch.tensor([10.0, 8.0, 2.0, 1.0])).tolist()})
    t = compare_weights(a, b, dtype="fp32", rank=True, top_k=2).tensors[0]
    assert t.spectral_drift == pytest.approx(0.0, abs=1e-6) and t.overlap == pytest.approx(
        0.0, abs=1e-6
    )
    t = compare_weights(a, c, dtype="fp32", rank=True, top_k=2).tensors[0]  # B = 2A
    assert t.spectral_drift == pytest.approx(1.0) and t.overlap == pytest.approx(1.0)
    assert t.rank_ratio == 1.0


def _adapter(path: Path, lora_a, lora_b, r=1, alpha=2) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(
        json.dumps({"r": r, "lora_alpha": alpha, "peft_type": "LORA"})
    )
    mod = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file(
        {
            f"{mod}.lora_A.weight": torch.tensor(lora_a),
            f"{mod}.lora_B.weight": torch.tensor(lora_b),
        },
        str(path / "adapter_model.safetensors"),
    )
    return path


def test_lora_delta_equals_merged_minus_base(tmp_path):
    # scale = alpha / r = 2; ΔW = 2 · [[1],[3]] @ [[1, 0, 2]] = [[2, 0, 4], [6, 0, 12]]
    base = _ckpt(tmp_path / "base", {Q: [[1, 1, 1], [1, 1, 1]], NORM: [1, 1]})
    adapter = _adapter(tmp_path / "adapter", [[1.0, 0.0, 2.0]], [[1.0], [3.0]])
    merged = _ckpt(tmp_path / "merged", {Q: [[3, 1, 5], [7, 1, 13]], NORM: [1, 1]})
    low = compare_weights(base, None, adapter=adapter, dtype="fp32", rank=True)
    full = compare_weights(base, merged, dtype="fp32", rank=True)
    lt, ft = ({x.name: x for x in d.tensors} for d in (low, full))
    assert low.mode == "lowrank" and full.mode == "full"
    assert lt[Q].sparsity["0"] == ft[Q].sparsity["0"] == pytest.approx(2 / 6)
    assert lt[Q].rel_norm == pytest.approx(math.sqrt(4 + 16 + 36 + 144) / math.sqrt(6))
    assert ft[Q].rel_norm == pytest.approx(lt[Q].rel_norm)
    assert lt[Q].rank_ratio == ft[Q].rank_ratio == 0.5  # rank 1 of min(2, 3)
    assert lt[NORM].sparsity["0"] == 1.0 and lt[NORM].note == "not in adapter"


def test_lora_with_a_wrong_base_is_one_line_error(tmp_path):
    base = _ckpt(tmp_path / "base", {Q: [[1, 1], [1, 1]]})
    adapter = _adapter(tmp_path / "adapter", [[1.0, 0.0, 2.0]], [[1.0], [3.0]])
    with pytest.raises(ValueError, match="is this adapter for this base model"):
        compare_weights(base, None, adapter=adapter)


def test_sharded_checkpoint_is_streamed_through_its_index(tmp_path):
    a = _ckpt(tmp_path / "a", {Q: [[1, 2], [3, 4]], NORM: [1, 1]})
    b = tmp_path / "b"
    b.mkdir()
    save_file(
        {Q: torch.tensor([[1.0, 2.0], [3.0, 5.0]])}, str(b / "model-00001-of-00002.safetensors")
    )
    save_file({NORM: torch.tensor([1.0, 3.0])}, str(b / "model-00002-of-00002.safetensors"))
    (b / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "metadata": {},
                "weight_map": {
                    Q: "model-00001-of-00002.safetensors",
                    NORM: "model-00002-of-00002.safetensors",
                },
            }
        )
    )
    t = {x.name: x for x in compare_weights(a, b, dtype="fp32").tensors}
    assert t[Q].sparsity["0"] == 0.75 and t[NORM].sparsity["0"] == 0.5
    assert t[NORM].rel_norm == pytest.approx(2 / math.sqrt(2))
    (b / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match="missing"):
        compare_weights(a, b)


def test_resized_vocabulary_compares_shared_rows_and_skips_the_rest(tmp_path):
    emb = "model.embed_tokens.weight"
    a = _ckpt(tmp_path / "a", {emb: [[1, 1], [2, 2]], "lm_head.weight": [[1, 1], [1, 1]]})
    b = _ckpt(tmp_path / "b", {emb: [[1, 1], [2, 3], [9, 9]], "model.norm.weight": [1.0]})
    d = compare_weights(a, b, dtype="fp32")
    (t,) = d.tensors
    assert t.numel == 4 and t.sparsity["0"] == 0.75 and "first 2 rows" in t.note
    assert {s["name"]: s["reason"] for s in d.skipped} == {
        "lm_head.weight": "only in A",
        NORM: "only in B",
    }


def test_json_keys_tolerances_as_written(tmp_path):
    a = _ckpt(tmp_path / "a", {Q: [[1, 2], [3, 4]]})
    b = _ckpt(tmp_path / "b", {Q: [[1, 2], [3, 5]]})
    doc = json.loads(compare_weights(a, b, tols=["0", "1e-3"]).to_json())
    assert doc["summary"]["sparsity"] == {"0": 0.75, "1e-3": 0.75}
    assert set(doc["tensors"][0]) >= {
        "name",
        "layer",
        "module",
        "numel",
        "sparsity",
        "rel_norm",
        "rank_ratio",
    }
    assert doc["modules"][0]["module"] == "q" and doc["layers"][0]["layer"] == 0
    with pytest.raises(ValueError, match="dtype 'int8'"):
        compare_weights(a, b, dtype="int8")


def _trained_stage(tmp_path: Path, stage_manifest) -> tuple[Path, Path]:
    """A results dir whose train record m/sft points at a stage: adapter/ over base, merged/."""
    from leaderboards.record import RunRecord, write_record

    base = _ckpt(tmp_path / "base", {Q: [[1, 1, 1], [1, 1, 1]], NORM: [1, 1]})
    stage = tmp_path / "stage"
    _adapter(stage / "adapter", [[1.0, 0.0, 2.0]], [[1.0], [3.0]])
    _ckpt(stage / "merged", {Q: [[3, 1, 5], [7, 1, 13]], NORM: [1, 1]})
    (stage / "merged" / "config.json").write_text("{}")
    stage_manifest(stage, base_weights=str(base), adapter="adapter", merged="merged")
    results = tmp_path / "results"
    write_record(
        RunRecord(kind="train", cell_key="k-sft", model_id="m", stage="sft", checkpoint=str(stage)),
        results,
    )
    return base, results


def test_analyze_weights_resolves_a_grid_cell_and_stores_idempotently(tmp_path, stage_manifest):
    from harness.analyze import analyze_weights
    from leaderboards.store import connect, ingest

    base, results = _trained_stage(tmp_path, stage_manifest)
    low = analyze_weights(str(base), "m/sft", dtype="fp32", results=results, store=True)
    full = analyze_weights(str(base), "m/sft", dtype="fp32", results=results, merged=True)
    assert (
        low.mode == "lowrank" and full.mode == "full"
    )  # the adapter was trained on A: low-rank by default
    for d in (low, full):
        assert {t.name: t.sparsity["0"] for t in d.tensors} == {Q: pytest.approx(2 / 6), NORM: 1.0}
    assert low.meta["model_id"] == "m" and low.meta["stage_b"] == "sft"
    ingest(results)  # again: nothing changes
    con = connect(results / "bench.duckdb", read_only=True)
    rows = con.execute("SELECT label, mode, rel_norm, sparsity FROM weight_analysis").fetchall()
    con.close()
    assert len(rows) == 1 and rows[0][:2] == (f"{base} → m/sft", "lowrank")
    # ‖ΔW‖ = √200 over ‖W‖ = √(6 + 2); unchanged: 2 of q's 6 and both norm weights
    assert rows[0][2] == pytest.approx(math.sqrt(200 / 8)) and json.loads(rows[0][3])[
        "0"
    ] == pytest.approx(4 / 8)
    for f in (results / "analysis").glob("weights-*.json"):
        f.unlink()
    ingest(results)
    con = connect(results / "bench.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM weight_analysis").fetchall() == [
        (0,)
    ]  # the file is the truth
    con.close()


def test_cli_weights_json_heatmap_and_errors(tmp_path, stage_manifest):
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.errors import BenchError

    base, results = _trained_stage(tmp_path, stage_manifest)
    png = tmp_path / "heat.png"
    res = CliRunner().invoke(
        app,
        [
            "analyze",
            "weights",
            str(base),
            "m/sft",
            "--results",
            str(results),
            "--dtype",
            "fp32",
            "--tol",
            "0,1e-3",
            "--json",
            "--heatmap",
            str(png),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["summary"]["sparsity"] == {"0": pytest.approx(4 / 8), "1e-3": pytest.approx(4 / 8)}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(
        app, ["analyze", "weights", str(base), "m/dpo", "--results", str(results)]
    )
    assert isinstance(res.exception, BenchError) and "no train record" in str(res.exception)
    res = CliRunner().invoke(
        app,
        [
            "analyze",
            "weights",
            str(tmp_path / "stage" / "merged"),
            "m/sft",
            "--results",
            str(results),
            "--lowrank",
        ],
    )
    assert isinstance(res.exception, BenchError) and "not on A" in str(res.exception)


def test_a_grid_cell_resolves_in_a_results_dir_read_from_elsewhere(
    tmp_path, monkeypatch, stage_manifest
):
    """Train records name their checkpoint relative to the run's working directory
    (``results/checkpoints/KEY``); ``--results /elsewhere/results`` still finds it there."""
    import shutil

    from harness.analyze import analyze_weights
    from leaderboards.record import RunRecord, write_record

    base, results = _trained_stage(tmp_path, stage_manifest)
    shutil.move(tmp_path / "stage", results / "checkpoints" / "k-sft")
    write_record(
        RunRecord(
            kind="train",
            cell_key="k-sft",
            model_id="m",
            stage="sft",
            checkpoint="results/checkpoints/k-sft",
        ),
        results,
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # where results/checkpoints/k-sft does not exist
    doc = analyze_weights(str(base), "m/sft", dtype="fp32", results=results)
    assert {t.name: t.sparsity["0"] for t in doc.tensors} == {Q: pytest.approx(2 / 6), NORM: 1.0}


def test_a_moved_results_dir_keeps_one_row_per_analysis_file(tmp_path, stage_manifest):
    """The store mirrors results/analysis/ by file name: after ``mv results elsewhere`` the
    stage transition is still one panel, not one per place the directory has been."""
    import shutil

    from harness.analyze import analyze_weights
    from leaderboards.store import connect, ingest

    base, results = _trained_stage(tmp_path, stage_manifest)
    analyze_weights(str(base), "m/sft", dtype="fp32", results=results, store=True)
    moved = shutil.move(results, tmp_path / "moved")
    ingest(moved)
    con = connect(Path(moved) / "bench.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM weight_analysis").fetchall() == [(1,)]
    con.close()
