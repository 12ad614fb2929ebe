"""CI regression checks (``bench ci check`` / ``bench ci update``): fresh per-sample outcomes of
a small grid against committed baselines under ``ci/baselines/``.

A baseline file holds one eval cell (``model/stage``): per task its version, the largest drop of
the mean it tolerates (``delta``), and per doc the correctness, score and parsed answer, plus
the key inputs that produced them. A check pairs docs by id and per task runs the exact McNemar
test (leaderboards.stats) on correctness: a task regresses when p < alpha and the mean drops by
more than its delta. Greedy cells are deterministic, so every flipped doc is listed even when the
test does not fire. A cell whose key inputs moved (a package or task version) is reported as
changed, never as a regression: its outcomes are another experiment, `bench ci update` takes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import BenchError
from harness.keys import first_difference
from leaderboards.record import RunRecord, read_records, record_path
from leaderboards.samples import read_samples, resolve_samples_file
from leaderboards.stats import mcnemar

__all__ = [
    "BASELINES_DIR",
    "ALPHA",
    "POOLED",
    "DEFAULT_DELTA",
    "Flip",
    "TaskCheck",
    "CheckReport",
    "baseline_of",
    "write_baselines",
    "load_baselines",
    "compare_cell",
    "check_records",
    "eval_records",
    "run_grid_fresh",
    "changed_inputs",
    "baseline_name",
]

BASELINES_DIR = Path(__file__).resolve().parents[1] / "ci" / "baselines"
ALPHA = 0.01
DEFAULT_DELTA = 0.05
ANSWER_CHARS = 40  # parsed answers are short; a runaway one is cut so baselines stay small
POOLED = "(all tasks)"  # the cell's row that pools its tasks' docs
# Payload fields that decide every task of a cell; "tasks" and "verifiers" are per task.
_PER_TASK = ("tasks", "verifiers")


@dataclass(frozen=True)
class Flip:
    doc_id: int
    old_correct: bool
    new_correct: bool
    old_answer: str | None
    new_answer: str | None


@dataclass(kw_only=True)
class TaskCheck:
    cell: str
    task: str
    n: int  # docs in both the baseline and the fresh run
    old_mean: float
    new_mean: float
    losses: int  # baseline right, now wrong
    gains: int  # baseline wrong, now right
    p_value: float
    delta_limit: float
    alpha: float = ALPHA
    flips: list[Flip] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # key inputs that moved
    missing: int = 0  # baseline docs the fresh run lacks
    answers_moved: int = 0  # docs whose parsed answer changed, flipped or not (greedy: should be 0)

    @property
    def delta(self) -> float:
        return self.new_mean - self.old_mean

    @property
    def status(self) -> str:
        if self.changed:
            return "changed inputs"
        if self.p_value < self.alpha and self.delta < -self.delta_limit:
            return "regression"
        if self.missing:
            return "missing docs"
        return "flips" if self.flips else "ok"


@dataclass
class CheckReport:
    checks: list[TaskCheck]
    missing_cells: list[str] = field(default_factory=list)  # baselines with no fresh record
    new_cells: list[str] = field(default_factory=list)  # fresh records with no baseline

    @property
    def regressions(self) -> list[TaskCheck]:
        return [c for c in self.checks if c.status in ("regression", "missing docs")]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.missing_cells)


def baseline_name(cell: str) -> str:
    """``smollm2-135m-instruct/base`` -> ``smollm2-135m-instruct__base.json``."""
    return cell.replace("/", "__") + ".json"


def _cell(record: RunRecord) -> str:
    return f"{record.model_id}/{record.stage}"


def _rows(record: RunRecord, results_dir: Path, task: str) -> dict[int, dict[str, Any]]:
    t = next(t for t in record.tasks if t.name == task)
    path = (
        resolve_samples_file(results_dir, record_path(results_dir, record), t.samples_file)
        if t.samples_file
        else None
    )
    if path is None:
        raise BenchError(
            f"{results_dir}: cell {_cell(record)} task {task} has no samples file; rerun the grid"
        )
    return {r["doc_id"]: r for r in read_samples(path).to_pylist() if not r.get("repeat")}


def baseline_of(
    record: RunRecord, results_dir: Path, deltas: dict[str, float] | None = None
) -> dict[str, Any]:
    """A cell's baseline document: per task its docs' outcomes; ``deltas`` keep earlier tolerances."""
    tasks = {}
    for t in record.tasks:
        docs = [
            [d, int(bool(r["correct"])), round(float(r["score"]), 4), _answer(r.get("answer"))]
            for d, r in sorted(_rows(record, results_dir, t.name).items())
        ]
        mean = sum(d[2] for d in docs) / len(docs) if docs else 0.0
        tasks[t.name] = {
            "version": t.version,
            "metric": t.primary_metric,
            "mean": round(mean, 4),
            "delta": (deltas or {}).get(t.name, DEFAULT_DELTA),
            "docs": docs,
        }
    return {"cell": _cell(record), "key": record.cell_key, "inputs": record.inputs, "tasks": tasks}


def _answer(answer: Any) -> str | None:
    return None if answer is None else str(answer)[:ANSWER_CHARS]


def load_baselines(directory: Path) -> dict[str, dict[str, Any]]:
    """cell -> baseline document; a malformed file is one line naming it."""
    out = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            _check_baseline(doc)
            out[doc["cell"]] = doc | {"file": str(path)}
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise BenchError(
                f"{path}: not a baseline file ({type(e).__name__}: {e}); rewrite it with "
                "`bench ci update`"
            ) from None
    return out


def _check_baseline(doc: Any) -> None:
    """The shape check_cell reads: {cell, tasks: {task: {docs: [[doc_id, correct, score,
    answer], ...]}}}; anything else is named here, not as a traceback mid-check."""
    if not isinstance(doc, dict) or not isinstance(doc.get("cell"), str):
        raise ValueError("not an object with a 'cell' name")
    if not isinstance(doc.get("tasks"), dict):
        raise ValueError("field 'tasks' must be an object of task -> docs")
    for task, t in doc["tasks"].items():
        docs = t.get("docs") if isinstance(t, dict) else None
        if not isinstance(docs, list) or not all(
            isinstance(d, list) and len(d) >= 4 and isinstance(d[0], int) for d in docs
        ):
            raise ValueError(
                f"field 'tasks.{task}.docs' must be a list of [doc_id, correct, score, answer]"
            )
        for k in ("mean", "delta"):
            if k in t and not isinstance(t[k], int | float):
                raise ValueError(f"field 'tasks.{task}.{k}' must be a number")


def _dump(doc: dict[str, Any]) -> str:
    """Indented JSON with one doc per line: a baseline's diff reads as the docs that changed."""
    head = {k: v for k, v in doc.items() if k != "tasks"}
    lines = [json.dumps(head, indent=1, sort_keys=True, default=str)[:-2] + ',\n "tasks": {']
    for i, (task, t) in enumerate(sorted(doc["tasks"].items())):
        meta = json.dumps({k: v for k, v in t.items() if k != "docs"}, sort_keys=True)[:-1]
        docs = ",\n".join("   " + json.dumps(d) for d in t["docs"])
        comma = "," if i < len(doc["tasks"]) - 1 else ""
        lines.append(f'  {json.dumps(task)}: {meta}, "docs": [\n{docs}\n  ]}}{comma}')
    return "\n".join(lines) + "\n }\n}\n"


def write_baselines(records: list[RunRecord], results_dir: Path, directory: Path) -> list[str]:
    """Rewrite the baselines from ``records``; returns one line per cell saying what changed."""
    old = load_baselines(directory) if Path(directory).is_dir() else {}
    Path(directory).mkdir(parents=True, exist_ok=True)
    said = []
    for record in records:
        prev = old.get(_cell(record))
        deltas = {
            t: v.get("delta", DEFAULT_DELTA) for t, v in (prev or {}).get("tasks", {}).items()
        }
        doc = baseline_of(record, results_dir, deltas)
        if prev is None:
            said.append(f"{doc['cell']}: new baseline ({len(doc['tasks'])} tasks)")
        else:
            checks = compare_cell(prev, record, results_dir)
            moved = changed_inputs(prev.get("inputs") or {}, record.inputs)
            flips = sum(len(c.flips) for c in checks)
            said.append(
                f"{doc['cell']}: {flips} flipped docs"
                + (f"; inputs: {'; '.join(moved)}" if moved else "")
            )
        (Path(directory) / baseline_name(doc["cell"])).write_text(_dump(doc))
    return said


def changed_inputs(old: dict[str, Any], new: dict[str, Any], task: str | None = None) -> list[str]:
    """Every top-level key input that moved (for ``task``: its own version and verifiers only)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if task is not None and k in _PER_TASK:
            a, b = (a or {}).get(task), (b or {}).get(task)
        found = first_difference(a, b, k if task is None or k not in _PER_TASK else f"{k}.{task}")
        if found:
            out.append(found)
    return out


def compare_cell(
    baseline: dict[str, Any], record: RunRecord, results_dir: Path, alpha: float = ALPHA
) -> list[TaskCheck]:
    """One TaskCheck per task of the baseline (a task the fresh record lacks: every doc missing)."""
    checks, pooled = [], []
    fresh = {t.name: t for t in record.tasks}
    for task, base in baseline["tasks"].items():
        changed = changed_inputs(baseline.get("inputs") or {}, record.inputs, task)
        if task not in fresh:
            checks.append(
                TaskCheck(
                    cell=baseline["cell"],
                    task=task,
                    n=0,
                    old_mean=base.get("mean", 0.0),
                    new_mean=0.0,
                    losses=0,
                    gains=0,
                    p_value=1.0,
                    delta_limit=base.get("delta", DEFAULT_DELTA),
                    alpha=alpha,
                    changed=changed,
                    missing=len(base["docs"]),
                )
            )
            continue
        if fresh[task].version != base.get("version"):
            changed = changed or [f"tasks.{task} {base.get('version')} -> {fresh[task].version}"]
        rows = _rows(record, results_dir, task)
        old = {int(d[0]): d for d in base["docs"]}
        shared = sorted(set(old) & set(rows))
        a = [bool(old[d][1]) for d in shared]
        b = [bool(rows[d]["correct"]) for d in shared]
        test = mcnemar(a, b)
        flips = [
            Flip(
                d,
                bool(old[d][1]),
                bool(rows[d]["correct"]),
                old[d][3],
                _answer(rows[d].get("answer")),
            )
            for d in shared
            if bool(old[d][1]) != bool(rows[d]["correct"])
        ]
        olds, news = [float(old[d][2]) for d in shared], [float(rows[d]["score"]) for d in shared]
        # A tiny random model is wrong everywhere, so only its answers can show that generation moved.
        moved = sum(old[d][3] != _answer(rows[d].get("answer")) for d in shared)
        checks.append(
            TaskCheck(
                cell=baseline["cell"],
                task=task,
                n=len(shared),
                old_mean=_mean(olds),
                new_mean=_mean(news),
                losses=test.a_wins,
                gains=test.b_wins,
                p_value=test.p_value,
                delta_limit=float(base.get("delta", DEFAULT_DELTA)),
                alpha=alpha,
                flips=flips,
                changed=changed,
                missing=len(set(old) - set(rows)),
                answers_moved=moved,
            )
        )
        if not changed:
            pooled.append((a, b, olds, news, float(base.get("delta", DEFAULT_DELTA))))
    if len(pooled) > 1:
        checks.append(_pooled(baseline["cell"], pooled, alpha))
    return checks


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _pooled(cell: str, parts: list[tuple], alpha: float) -> TaskCheck:
    """Every task's docs of a cell as one paired sample: a few docs per task cannot reach p < 0.01
    alone (8 discordant pairs, all one way, are the fewest that can), a cell-wide drop can."""
    a = [x for p in parts for x in p[0]]
    b = [x for p in parts for x in p[1]]
    test = mcnemar(a, b)
    olds, news = [x for p in parts for x in p[2]], [x for p in parts for x in p[3]]
    return TaskCheck(
        cell=cell,
        task=POOLED,
        n=len(a),
        old_mean=_mean(olds),
        new_mean=_mean(news),
        losses=test.a_wins,
        gains=test.b_wins,
        p_value=test.p_value,
        delta_limit=min(p[4] for p in parts),
        alpha=alpha,
    )


def eval_records(results_dir: Path, keys: list[str] | None = None) -> list[RunRecord]:
    """The eval records of ``keys`` (all in the dir when None; the latest per cell)."""
    records_dir = Path(results_dir) / "records"
    paths = (
        [records_dir / f"eval-{k}.json" for k in keys]
        if keys is not None
        else sorted(records_dir.glob("eval-*.json"))
    )
    latest: dict[str, RunRecord] = {}
    for _, rec in read_records(p for p in paths if p.exists()):
        if _cell(rec) not in latest or rec.finished_at > latest[_cell(rec)].finished_at:
            latest[_cell(rec)] = rec
    return list(latest.values())


def check_records(
    records: list[RunRecord],
    results_dir: Path,
    baselines: dict[str, dict[str, Any]],
    alpha: float = ALPHA,
) -> CheckReport:
    fresh = {_cell(r): r for r in records}
    checks = [
        c
        for cell, base in baselines.items()
        if cell in fresh
        for c in compare_cell(base, fresh[cell], results_dir, alpha)
    ]
    return CheckReport(
        checks, sorted(set(baselines) - set(fresh)), sorted(set(fresh) - set(baselines))
    )


def run_grid_fresh(grid: str, results_dir: Path, view=None) -> list[RunRecord]:
    """Run every eval cell of ``grid`` again (a check must not reuse cached outcomes) and return
    the records it wrote; a cell that failed has none, and its baseline shows as missing.
    ``view(cells)``, when given, is a context manager yielding the run's progress callback
    (the CLI's live view, which also sends third-party output to ``results/logs/``)."""
    import contextlib

    from harness.api import RunSpec, load_plan, run_plan

    spec = RunSpec(grid=grid, results=results_dir, force=True)
    plan = load_plan(spec)
    with view(plan.todo) if view else contextlib.nullcontext() as progress:
        run_plan(plan, spec, progress=progress)
    return eval_records(results_dir, [c.key for c in plan.expansion.eval])
