"""Malformed and hostile input through the real CLI: each case, its exit code and its one line.

Used by tests/test_bad_input.py (one test per case) and runnable on its own to print the
table of cases (``.venv/bin/python tests/bad_input_cases.py``): the closing note of issue 15.
A user mistake exits 2 with one ``error:`` line on stderr naming the file or option, the
field and the fix, and never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = [sys.executable, "-c", "from harness.cli import main; main()"]


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]  # {ws} is the workspace folder
    rc: int
    needle: str  # must be in stderr (or stdout for rc 0 with stdout=True)
    env: dict[str, str] = field(default_factory=dict)
    stdout: bool = False  # look for needle in stdout
    absent: str = ""  # must not appear anywhere in the output
    setup: Callable[[Path], None] | None = None


def _grid(ws: Path, name: str, step: dict | None = None, method: str = "sft", **top) -> str:
    cfg = {"dataset": "data.jsonl", "max_steps": 2} if method == "sft" else {"max_steps": 1}
    grid = {
        "name": name,
        "models": ["tiny-random-llama"],
        "recipes": [[method]],
        "steps": {method: {**cfg, **(step or {})}},
        "tasks": ["math_arith"],
        "eval": {"limit": 2},
        **top,
    }
    path = ws / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def build_workspace(ws: Path) -> None:
    """Every file the cases read: grids, zoo files, data files, model dirs, a results dir."""
    ws.mkdir(parents=True, exist_ok=True)
    for name, step in {
        "max_steps_neg": {"max_steps": -5},
        "lr_fast": {"learning_rate": "fast"},
        "lr_neg": {"learning_rate": -1},
        "batch0": {"effective_batch": 0},
        "lora_r0": {"lora_r": 0},
        "warmup_neg": {"warmup_steps": -3},
        "fraction": {"eval_fraction": 1.5},
        "mode": {"mode": "nonsense"},
        "steps_float": {"max_steps": 2.5},
        "max_steps_null": {"max_steps": None},
    }.items():
        _grid(ws, name, step)
    _grid(ws, "generations1", {"num_generations": 1}, method="grpo")
    _grid(ws, "target", target="nosuch")
    _grid(ws, "seed_neg", seed=-1)
    (ws / "dup.yaml").write_text(
        "name: dup\nmodels: [tiny-random-llama]\nrecipes: [[sft]]\n"
        "steps:\n  sft: {dataset: d.jsonl, max_steps: 2}\n  sft: {max_steps: 3}\n"
        "tasks: [math_arith]\n"
    )
    (ws / "griddir.yaml").mkdir(exist_ok=True)
    (ws / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (ws / "zoo_traversal.yaml").write_text(
        "models:\n  ../../../victim: {source: tiny, architecture: LlamaForCausalLM}\n"
    )
    (ws / "zoo_script.yaml").write_text(
        'models:\n  "<script>alert(1)</script>": {source: tiny, architecture: LlamaForCausalLM}\n'
    )
    (ws / "zoo_dup.yaml").write_text("models:\n  mine: {hub: a/b}\n  mine: {hub: c/d}\n")
    (ws / "zoodir").mkdir(exist_ok=True)
    bad_model = ws / "bad-model"
    bad_model.mkdir(exist_ok=True)
    (bad_model / "config.json").write_text('{"model_type": "llama", ')  # cut off mid-write
    for name, text in {"ck-corrupt": "{not json", "ck-list": "[1, 2]"}.items():
        (ws / name).mkdir(exist_ok=True)
        (ws / name / "manifest.json").write_text(text)
    (ws / "not_objects.jsonl").write_text('[1, 2]\n{"input": "x", "label": 1}\n')
    (ws / "binary.jsonl").write_bytes(b"\x97\x00\xff" * 100)
    (ws / "binary.csv").write_bytes(b"input,label\n" + bytes(range(256)) * 3)
    big = (
        "Premise: " + "x" * 2_000_000
    )  # over pyarrow's 1 MB block (and the csv module's 128 KB field limit)
    (ws / "big_field.csv").write_text(f'input,label\n"{big}\nHypothesis: A causes B.",1\n')
    (ws / "outdir").mkdir(exist_ok=True)
    _results(ws / "results")
    _hostile_workspace(ws)


_BOMB = "".join(  # "billion laughs": 9 lines, 10^9 values once expanded
    f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join([f'*{chr(96 + i)}'] * 10 if i else ['x'] * 10)}]\n"
    for i in range(9)
)


def _hostile_workspace(ws: Path) -> None:
    """The second sweep's inputs (issue 29): zoo lineage, defaults and numbers, YAML that
    expands or nests without bound, grid names that are paths, malformed baselines."""
    zoos = {
        "zoo_cycle": "models:\n  a: {hub: x/a, lineage: {parent: b, method: sft}}\n"
        "  b: {hub: x/b, lineage: {parent: a, method: sft}}\n",
        "zoo_self": "models:\n  a: {hub: x/a, lineage: {parent: a, method: sft}}\n",
        "zoo_trc": "defaults: {trust_remote_code: true}\nmodels:\n  a: {hub: x/a}\n",
        "zoo_nan": "models:\n  a: {hub: x/a, params: .nan}\n",
        "zoo_ctx": "models:\n  a: {hub: x/a, context_length: -5}\n",
        "zoo_template": "models:\n  a: {source: tiny, architecture: LlamaForCausalLM, "
        "build_template: ../../etc/hostname}\n",
        "zoo_bomb": "models:\n  a: {hub: x/a}\n" + _BOMB,
    }
    for name, text in zoos.items():
        (ws / f"{name}.yaml").write_text(text)
    fifo = ws / "zoo_fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    base = yaml.safe_load(Path(_grid(ws, "hostile_base")).read_text())
    for name, over in {
        "grid_traversal": {"name": "../../outside"},
        "grid_slash": {"name": "a/b"},
        "gen_nested": {"eval": {"gen_kwargs": {"until": [{"x": 1}]}}},
        "lr_inf": {"steps": {"sft": {"dataset": "data.jsonl", "learning_rate": float("inf")}}},
        "seed_big": {"seed": 2**32},
    }.items():
        (ws / f"{name}.yaml").write_text(yaml.safe_dump({**base, **over}))
    (ws / "gen_bomb.yaml").write_text(
        _BOMB + yaml.safe_dump(base).replace("eval:\n", "eval:\n  gen_kwargs: {until: *i}\n")
    )
    (ws / "deep.yaml").write_text("name: deep\nx: " + "[" * 10_000 + "]" * 10_000 + "\n")
    baselines = ws / "badbase"
    baselines.mkdir(exist_ok=True)
    (baselines / "cell.json").write_text(json.dumps({"cell": "m/base", "tasks": {"t": [1, 2]}}))
    bad = ws / "results-one-bad"
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(ws / "results", bad)
    (bad / "records" / "eval-edited.json").write_text("[]")


def _results(results: Path) -> None:
    from leaderboards._synthetic import write_eval_cell

    scores = [1.0, 0.0, 1.0, 1.0]
    write_eval_cell(
        results,
        "tiny-random-llama",
        "base",
        {"math_arith": {"version": "1", "scores": scores}},
        cell_key="a" * 16,
    )
    write_eval_cell(
        results,
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        {"math_arith": {"version": "1", "scores": scores}},
        cell_key="b" * 16,
    )


def _corrupt_store(ws: Path) -> None:
    dst = ws / "results-corrupt-db"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(ws / "results", dst)
    (dst / "bench.duckdb").write_bytes(b"this is not a duckdb file\n" * 100)


def _g(name: str) -> str:
    return "{ws}/" + name + ".yaml"


_STEP = "see trainers/sft_config.py for its config fields"
CASES: list[Case] = [
    # step values: type and range, at load (grid show and --dry-run)
    Case(
        "max_steps: -5",
        ["grid", "show", _g("max_steps_neg")],
        2,
        "field 'steps.sft.max_steps': must be at least 1, got -5",
    ),
    Case(
        "max_steps: -5 (--dry-run)",
        ["train+eval", "--grid", _g("max_steps_neg"), "--dry-run"],
        2,
        "field 'steps.sft.max_steps': must be at least 1",
    ),
    Case(
        "max_steps: 2.5",
        ["grid", "show", _g("steps_float")],
        2,
        "field 'steps.sft.max_steps': must be an integer",
    ),
    Case(
        "max_steps: null",
        ["grid", "show", _g("max_steps_null")],
        2,
        "field 'steps.sft.max_steps': cannot be null",
    ),
    Case(
        "learning_rate: fast",
        ["grid", "show", _g("lr_fast")],
        2,
        "field 'steps.sft.learning_rate': must be a number, got 'fast'",
    ),
    Case(
        "learning_rate: -1",
        ["grid", "show", _g("lr_neg")],
        2,
        "field 'steps.sft.learning_rate': must be greater than 0",
    ),
    Case(
        "effective_batch: 0",
        ["grid", "show", _g("batch0")],
        2,
        "field 'steps.sft.effective_batch': must be at least 1",
    ),
    Case(
        "lora_r: 0",
        ["grid", "show", _g("lora_r0")],
        2,
        "field 'steps.sft.lora_r': must be at least 1",
    ),
    Case(
        "warmup_steps: -3",
        ["grid", "show", _g("warmup_neg")],
        2,
        "field 'steps.sft.warmup_steps': must be at least 0",
    ),
    Case(
        "eval_fraction: 1.5",
        ["grid", "show", _g("fraction")],
        2,
        "field 'steps.sft.eval_fraction': must be in [0, 1)",
    ),
    Case(
        "mode: nonsense",
        ["grid", "show", _g("mode")],
        2,
        "field 'steps.sft.mode': must be one of lora, qlora, full",
    ),
    Case(
        "grpo num_generations: 1",
        ["grid", "show", _g("generations1")],
        2,
        "field 'steps.grpo.num_generations': must be at least 2",
    ),
    # the grid's own fields
    Case(
        "target: nosuch",
        ["grid", "show", _g("target")],
        2,
        "field 'target': unknown hardware target 'nosuch'",
    ),
    Case("seed: -1", ["grid", "show", _g("seed_neg")], 2, "field 'seed': must be at least 0"),
    Case(
        "duplicate YAML key",
        ["grid", "show", "{ws}/dup.yaml"],
        2,
        "duplicate key 'sft' (line 6; first on line 5)",
    ),
    Case("grid path is a directory", ["grid", "show", "{ws}/griddir.yaml"], 2, "is not a file"),
    Case("grid file is binary", ["grid", "show", "{ws}/binary.yaml"], 2, "not a text file"),
    # run options
    Case(
        "train+eval --limit 0",
        ["train+eval", "--grid", "smoke", "--limit", "0", "--dry-run"],
        2,
        "--limit 0: must be at least 1",
    ),
    Case(
        "train+eval --limit -1",
        ["train+eval", "--grid", "smoke", "--limit", "-1", "--dry-run"],
        2,
        "--limit -1: must be at least 1",
    ),
    Case(
        "train+eval --backend onnx",
        ["train+eval", "--grid", "smoke", "--backend", "onnx", "--dry-run"],
        2,
        "--backend onnx: must be hf or vllm",
    ),
    Case(
        "train+eval --workers 0",
        ["train+eval", "--grid", "smoke", "--workers", "0", "--dry-run"],
        2,
        "--workers 0: must be at least 1",
    ),
    Case(
        "--executor kubernetes --dry-run",
        ["train+eval", "--grid", "smoke", "--executor", "kubernetes", "--dry-run"],
        2,
        "--executor: unknown executor 'kubernetes'",
    ),
    Case(
        "--only matching nothing",
        ["train+eval", "--grid", "smoke", "--only", "nothing*", "--dry-run"],
        2,
        "--only nothing*: matches no cell of grid smoke",
    ),
    Case(
        "eval --limit 0",
        ["eval", "--model", "tiny-random-llama", "--limit", "0"],
        2,
        "--limit 0: must be at least 1",
    ),
    Case(
        "eval --limit -1",
        ["eval", "--model", "tiny-random-llama", "--limit", "-1"],
        2,
        "--limit -1: must be at least 1",
    ),
    Case(
        "eval --num-fewshot -1",
        ["eval", "--model", "tiny-random-llama", "--num-fewshot", "-1"],
        2,
        "--num-fewshot -1: must be at least 0",
    ),
    Case(
        "eval --backend onnx",
        ["eval", "--model", "tiny-random-llama", "--backend", "onnx"],
        2,
        "--backend onnx: must be hf or vllm",
    ),
    Case(
        "eval --batch-size 0",
        ["eval", "--model", "tiny-random-llama", "--batch-size", "0"],
        2,
        "--batch-size 0: must be at least 1",
    ),
    Case(
        "plan --seq beyond the context",
        ["plan", "--model", "tiny-random-llama", "--target", "cpu", "--seq", "100000"],
        2,
        "--seq 100000: beyond tiny-random-llama's context of 2048 tokens",
    ),
    # the model zoo
    Case(
        "zoo name ../../../victim",
        ["models", "fetch", "../../../victim"],
        2,
        "models.'../../../victim': a model name is lowercase letters",
        env={"BENCH_MODELS": "{ws}/zoo_traversal.yaml"},
    ),
    Case(
        "zoo name <script>",
        ["models"],
        2,
        "a model name is lowercase letters",
        env={"BENCH_MODELS": "{ws}/zoo_script.yaml"},
    ),
    Case(
        "zoo duplicate key",
        ["models"],
        2,
        "duplicate key 'mine'",
        env={"BENCH_MODELS": "{ws}/zoo_dup.yaml"},
    ),
    Case(
        "$BENCH_MODELS missing",
        ["models"],
        2,
        "cannot read the model zoo (No such file or directory)",
        env={"BENCH_MODELS": "{ws}/no-such-zoo.yaml"},
    ),
    Case(
        "$BENCH_MODELS is a directory",
        ["models"],
        2,
        "cannot read the model zoo (Is a directory)",
        env={"BENCH_MODELS": "{ws}/zoodir"},
    ),
    # files
    Case(
        "corrupt config.json",
        ["eval", "--model", "{ws}/bad-model", "--limit", "1"],
        2,
        "bad-model/config.json: not valid JSON",
    ),
    Case(
        "corrupt manifest.json",
        ["eval", "--checkpoint", "{ws}/ck-corrupt", "--limit", "1"],
        2,
        "ck-corrupt/manifest.json: not a bench stage manifest",
    ),
    Case(
        "manifest.json not an object",
        ["eval", "--checkpoint", "{ws}/ck-list", "--limit", "1"],
        2,
        "ck-list/manifest.json: not a bench stage manifest",
    ),
    Case(
        "JSONL rows not objects",
        ["tasks", "check", "causal_nli", "--data", "{ws}/not_objects.jsonl"],
        2,
        "not_objects.jsonl: line 1 is a JSON array, not an object",
    ),
    Case(
        "binary JSONL",
        ["tasks", "check", "causal_nli", "--data", "{ws}/binary.jsonl"],
        2,
        "binary.jsonl: not UTF-8 text",
    ),
    Case(
        "binary CSV",
        ["tasks", "check", "causal_nli", "--data", "{ws}/binary.csv"],
        2,
        "binary.csv: not a readable CSV",
    ),
    Case(
        "CSV field of 2 MB (read)",
        ["tasks", "check", "causal_nli", "--data", "{ws}/big_field.csv"],
        0,
        "n=1",
        stdout=True,
    ),
    # leaderboard and compare
    Case(
        "--out naming a directory",
        ["leaderboard", "--results", "{ws}/results", "--format", "md", "--out", "{ws}/outdir"],
        2,
        "--out {ws}/outdir: is a directory",
    ),
    Case(
        "corrupt bench.duckdb (rebuilt)",
        ["leaderboard", "--results", "{ws}/results-corrupt-db"],
        0,
        "bench.duckdb: corrupt; moved to bench.duckdb.corrupt-",
        setup=_corrupt_store,
    ),
    Case(
        "filter matching nothing",
        ["leaderboard", "--results", "{ws}/results", "--model", "nomodel*"],
        0,
        "no leaderboard rows match --model nomodel*",
    ),
    Case(
        "compare --task nosuchtask",
        ["compare", "a" * 16, "b" * 16, "--task", "nosuchtask", "--results", "{ws}/results"],
        2,
        "--task nosuchtask: neither cell has it",
    ),
    # issue 29: the zoo's lineage, defaults and numbers; $BENCH_MODELS that is not a file
    Case(
        "zoo lineage cycle",
        ["grid", "show", "smoke"],
        2,
        "models.a.lineage.parent: cycle through a -> b -> a",
        env={"BENCH_MODELS": "{ws}/zoo_cycle.yaml"},
    ),
    Case(
        "zoo model its own parent",
        ["models"],
        2,
        "models.a.lineage.parent: cycle through a -> a",
        env={"BENCH_MODELS": "{ws}/zoo_self.yaml"},
    ),
    Case(
        "zoo defaults: trust_remote_code",
        ["models"],
        2,
        "field 'defaults.trust_remote_code': not allowed in defaults",
        env={"BENCH_MODELS": "{ws}/zoo_trc.yaml"},
    ),
    Case(
        "zoo params: .nan",
        ["models"],
        2,
        "models.a.params: must be a finite number",
        env={"BENCH_MODELS": "{ws}/zoo_nan.yaml"},
    ),
    Case(
        "zoo context_length: -5",
        ["models"],
        2,
        "models.a.context_length: must be at least 1",
        env={"BENCH_MODELS": "{ws}/zoo_ctx.yaml"},
    ),
    Case(
        "zoo build_template: ../../etc/hostname",
        ["models"],
        2,
        "models.a.build_template: must be a file name under harness/templates/",
        env={"BENCH_MODELS": "{ws}/zoo_template.yaml"},
    ),
    Case(
        "zoo YAML alias bomb",
        ["models"],
        2,
        "expands to more than 100,000 values",
        env={"BENCH_MODELS": "{ws}/zoo_bomb.yaml"},
    ),
    Case(
        "$BENCH_MODELS is a FIFO",
        ["models"],
        2,
        "zoo_fifo: not a regular file (a FIFO or device?)",
        env={"BENCH_MODELS": "{ws}/zoo_fifo"},
    ),
    Case(
        "$BENCH_MODELS is /dev/zero",
        ["models"],
        2,
        "/dev/zero: not a regular file",
        env={"BENCH_MODELS": "/dev/zero"},
    ),
    # issue 29: grid names and eval settings
    Case(
        "grid name: ../../outside",
        ["grid", "show", "{ws}/grid_traversal.yaml"],
        2,
        "field 'name': must be letters, digits",
    ),
    Case("grid name: a/b", ["grid", "show", "{ws}/grid_slash.yaml"], 2, "field 'name': must be"),
    Case(
        "gen_kwargs alias bomb",
        ["grid", "show", "{ws}/gen_bomb.yaml"],
        2,
        "expands to more than 100,000 values",
    ),
    Case(
        "gen_kwargs nested mapping",
        ["grid", "show", "{ws}/gen_nested.yaml"],
        2,
        "field 'eval.gen_kwargs': until: must be a number, string, true/false or a list",
    ),
    Case("YAML nested 10,000 deep", ["grid", "show", "{ws}/deep.yaml"], 2, "nested deeper than"),
    Case(
        "learning_rate: .inf",
        ["grid", "show", "{ws}/lr_inf.yaml"],
        2,
        "field 'steps.sft.learning_rate': must be a finite number",
    ),
    Case(
        "seed: 2^32", ["grid", "show", "{ws}/seed_big.yaml"], 2, "field 'seed': must be less than"
    ),
    # issue 29: ranges at the CLI
    Case(
        "ci check --alpha nan",
        ["ci", "check", "--alpha", "nan", "--no-run", "--results", "{ws}/results"],
        2,
        "--alpha nan: must be in (0, 1)",
    ),
    Case(
        "ci check --alpha -1",
        ["ci", "check", "--alpha", "-1", "--no-run", "--results", "{ws}/results"],
        2,
        "--alpha -1.0: must be in (0, 1)",
    ),
    Case(
        "ci check malformed baseline",
        ["ci", "check", "--baselines", "{ws}/badbase", "--no-run", "--results", "{ws}/results"],
        2,
        "badbase/cell.json: not a baseline file",
    ),
    Case(
        "eval --seed -1",
        ["eval", "--model", "tiny-random-llama", "--seed", "-1"],
        2,
        "--seed -1: must be in [0, 2^32)",
    ),
    Case(
        "eval --seed 2^32",
        ["eval", "--model", "tiny-random-llama", "--seed", str(2**32)],
        2,
        "must be in [0, 2^32)",
    ),
    Case(
        "eval --model ''",
        ["eval", "--model", "", "--limit", "1"],
        2,
        "model name is empty",
    ),
    Case(
        "eval --tasks ''",
        ["eval", "--model", "tiny-random-llama", "--tasks", ""],
        2,
        "--tasks '': name at least one task",
    ),
    Case(
        "analyze behavior --k -3",
        ["analyze", "behavior", "--results", "{ws}/results", "--k", "-3"],
        2,
        "--k '-3': each value must be at least 1",
    ),
    Case(
        "analyze weights --out DIR",
        ["analyze", "weights", "a", "b", "--out", "{ws}/outdir"],
        2,
        "--out {ws}/outdir: is a directory",
    ),
    Case(
        "analyze weights --heatmap DIR",
        ["analyze", "weights", "a", "b", "--heatmap", "{ws}/outdir"],
        2,
        "--heatmap {ws}/outdir: is a directory",
    ),
    # issue 29: storage and names the OS refuses: one line, not a traceback
    Case(
        "leaderboard --out /dev/full",
        ["leaderboard", "--results", "{ws}/results", "--format", "md", "--out", "/dev/full"],
        2,
        "disk full (no space left on device)",
    ),
    Case(
        "--out name over 255 bytes",
        [
            "leaderboard",
            "--results",
            "{ws}/results",
            "--format",
            "md",
            "--out",
            "{ws}/" + "x" * 300,
        ],
        2,
        "name too long",
    ),
    Case(
        "$BENCH_CACHE under a file",
        ["models", "fetch", "tiny-random-llama"],
        2,
        "not a directory",
        env={"BENCH_CACHE": "{ws}/binary.csv/cache"},
    ),
    Case(
        "one edited record ([]) among good ones",
        ["leaderboard", "--results", "{ws}/results-one-bad", "--format", "md"],
        0,
        "eval-edited.json: record skipped: a run record is a JSON object, not list",
    ),
    Case(
        "rescore with one edited record",
        ["rescore", "--results", "{ws}/results-one-bad", "--dry-run"],
        0,
        "eval-edited.json: record skipped",
    ),
    Case(
        "markdown escapes raw HTML",
        ["leaderboard", "--results", "{ws}/results", "--format", "md"],
        0,
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        stdout=True,
        absent="<script>",
    ),
]


@dataclass
class Result:
    case: Case
    rc: int
    stdout: str
    stderr: str

    @property
    def line(self) -> str:
        """The line a user reads: the error (or warning) on stderr, else stdout's last line."""
        err = [x for x in self.stderr.strip().splitlines() if x.startswith(("error:", "warning:"))]
        if err:
            return err[0]
        out = self.stdout.strip().splitlines()
        hit = [x for x in out if self.case.needle in x]
        return (hit or out or [""])[0].strip()


def run_case(case: Case, ws: Path) -> Result:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("BENCH_MODELS", None)
    env |= {k: v.format(ws=ws) for k, v in case.env.items()}
    if case.setup is not None:
        case.setup(ws)
    args = [a.format(ws=ws) for a in case.args]
    proc = subprocess.run(
        [*BENCH, *args], capture_output=True, text=True, env=env, cwd=ws, timeout=300
    )
    return Result(case, proc.returncode, proc.stdout, proc.stderr)


def main() -> None:
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        build_workspace(ws)
        print("| case | exit | line |\n|---|---:|---|")
        for case in CASES:
            r = run_case(case, ws)
            line = r.line.replace(str(ws), "WS").replace("|", "\\|")
            print(f"| {case.name} | {r.rc} | `{line}` |")
        print(json.dumps({"cases": len(CASES)}), file=sys.stderr)


if __name__ == "__main__":
    main()
