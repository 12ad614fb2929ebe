import json
import subprocess
import sys

BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]


def run(*args, **kw):
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, **kw)


def test_help_imports_no_torch():
    code = "import sys; from harness import cli; print(any(m in sys.modules for m in ('torch', 'transformers', 'lm_eval')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )
    proc = run("--help")
    assert proc.returncode == 0
    for command in (
        "train+eval",
        "eval",
        "leaderboard",
        "compare",
        "models",
        "grid",
        "doctor",
        "tasks",
    ):
        assert command in proc.stdout


def test_models_json_lists_the_zoo():
    data = json.loads(run("models", "--json").stdout)
    assert data["smollm2-135m-instruct"]["source"] == "bundled"
    assert data["phi-3.5-mini-instruct"]["architecture"] == "Phi3ForCausalLM"


def test_doctor_json_reports_each_check():
    proc = run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert {
        "python",
        "torch",
        "cuda",
        "vllm",
        "bitsandbytes",
        "flash-attn",
        "hf-cache",
        "hf-offline",
        "sbatch",
        "apptainer",
        "podman",
        "docker",
    } <= set(checks)
    assert checks["torch"]["status"] == "works"
    assert all(c["status"] in ("works", "missing", "broken") for c in checks.values())
    assert "HF_HUB_OFFLINE=1" in checks["hf-offline"]["detail"]  # conftest/Makefile run offline


def test_grid_show_json_has_keys_and_status(tmp_path):
    rows = json.loads(run("grid", "show", "all", "--json", "--results", str(tmp_path)).stdout)
    assert {r["status"] for r in rows} == {"new"}
    assert any(r["kind"] == "train" and r["stage"] == "distill+grpo" for r in rows)


def test_eval_needs_exactly_one_model_source():
    proc = run("eval", "--tasks", "math_arith")
    assert proc.returncode == 2 and "exactly one of --model" in proc.stderr


def test_tasks_check_last_line_and_bad_file(tmp_path):
    from pathlib import Path

    fixture = next(Path(__file__).parent.joinpath("fixtures", "math").glob("gsm8k*.jsonl"))
    proc = run("tasks", "check", "math", "--data", str(fixture))
    n = sum(1 for line in fixture.read_text().splitlines() if line.strip())
    assert (
        proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == f"agreement=1.0000 n={n}"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": 1}\n')
    proc = run("tasks", "check", "math", "--data", str(bad))
    assert proc.returncode == 2 and str(bad) in proc.stderr and "question" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
