"""``bench compare CELL_A CELL_B``: paired statistics of two eval cells, task by task.

Samples are paired by ``doc_id``; only tasks both cells ran *at the same version* are
compared (others are listed as skipped with the reason). ``diff`` is B − A. For 0/1
scores the p-value is the exact McNemar test; for graded scores, the paired bootstrap.
Cells may be named by a unique prefix of their key, like git commits.

The source is a DuckDB connection, a ``.duckdb`` path (opened read-only), or a results
dir (records and samples files are read directly, nothing is written).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench_core.errors import BenchError, closest
from leaderboards.board import task_label
from leaderboards.stats import McNemar, PairedBootstrap, mcnemar, paired_bootstrap

__all__ = ["TaskComparison", "Comparison", "compare"]


@dataclass
class TaskComparison:
    task: str
    version: str
    metric: str
    value_a: float | None  # the records' primary metric
    value_b: float | None
    n_shared: int
    mean_a: float  # mean score over shared docs
    mean_b: float
    diff: float
    diff_ci: tuple[float, float]
    binary: bool
    mcnemar: McNemar
    bootstrap: PairedBootstrap

    @property
    def p_value(self) -> float:
        return self.mcnemar.p_value if self.binary else self.bootstrap.p_value


@dataclass
class Comparison:
    cell_a: str
    cell_b: str
    label_a: str
    label_b: str
    tasks: list[TaskComparison] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (task, reason)
    alpha: float = 0.05

    def head(self) -> tuple[str, ...]:
        ci = f"{100 * (1 - self.alpha):g}% CI"
        return ("task", "n", "A", "B", "B−A", ci, "p", "test", "B wins", "A wins", f"OR ({ci})")

    def to_dict(self) -> dict:
        """JSON-ready (``bench compare --format json``); p_value included per task."""
        out = asdict(self)
        for d, t in zip(out["tasks"], self.tasks, strict=True):
            d["p_value"] = t.p_value
        return out

    def rows(self) -> list[tuple[str, ...]]:
        out = []
        for t in self.tasks:
            m = t.mcnemar
            star = "*" if t.p_value < self.alpha else ""
            out.append(
                (
                    task_label(t.task, t.version),
                    str(t.n_shared),
                    f"{t.mean_a:.4f}",
                    f"{t.mean_b:.4f}",
                    f"{t.diff:+.4f}",
                    f"[{t.diff_ci[0]:+.3f}, {t.diff_ci[1]:+.3f}]",
                    f"{t.p_value:.4g}{star}",
                    "McNemar" if t.binary else "paired bootstrap",
                    str(m.b_wins),
                    str(m.a_wins),
                    f"{_f(m.odds_ratio)} [{_f(m.odds_ratio_ci[0])}, {_f(m.odds_ratio_ci[1])}]",
                )
            )
        return out

    def to_table(self):
        from rich.table import Table

        table = Table(title=f"A = {self.label_a}   B = {self.label_b}")
        for h in self.head():
            table.add_column(h, justify="left" if h in ("task", "test") else "right")
        for r in self.rows():
            table.add_row(*r)
        if self.skipped:
            table.caption = "\n".join(f"skipped {t}: {why}" for t, why in self.skipped)
        return table

    def __rich__(self):
        """``console.print(comparison)``: two narrow tables (scores, effect sizes) fit 80 columns."""
        from rich import box
        from rich.console import Group
        from rich.table import Table

        head, rows = self.head(), self.rows()
        parts = []
        for title, cols in (
            (f"A = {self.label_a}\nB = {self.label_b}", (0, 1, 2, 3, 4, 6, 7)),
            ("effect sizes", (0, 5, 8, 9, 10)),
        ):
            table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
            for i in cols:
                table.add_column(head[i], justify="left" if i in (0, 7) else "right", no_wrap=True)
            for r in rows:
                table.add_row(*(r[i].replace("paired bootstrap", "bootstrap") for i in cols))
            parts.append(table)
        parts += [f"skipped {t}: {why}" for t, why in self.skipped]
        return Group(*parts)

    def __str__(self) -> str:
        rows = [self.head(), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"A = {self.label_a}", f"B = {self.label_b}"]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines += [f"skipped {t}: {why}" for t, why in self.skipped]
        lines.append(f"* p < {self.alpha:g}; OR = discordant odds ratio (B wins / A wins)")
        return "\n".join(lines)


def _f(x: float) -> str:
    return "—" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.3g}")


@dataclass
class _Task:
    version: str
    metric: str
    value: float | None


class _DB:
    def __init__(self, con):
        self.con = con

    def resolve(self, prefix: str) -> tuple[str, str]:
        rows = self.con.execute(
            "SELECT cell_key, model_id || ' / ' || stage FROM records "
            "WHERE kind = 'eval' AND starts_with(cell_key, ?)",
            [prefix],
        ).fetchall()
        return _one(prefix, rows, "the leaderboard database")

    def tasks(self, key: str) -> dict[str, _Task]:
        rows = self.con.execute(
            "SELECT task, task_version, metric, value FROM task_results "
            "WHERE cell_key = ? AND kind = 'eval' AND is_primary",
            [key],
        ).fetchall()
        return {t: _Task(v, m, x) for t, v, m, x in rows}

    def samples(self, key: str, task: str) -> dict[str, np.ndarray]:
        return self.con.execute(
            "SELECT doc_id, score, correct FROM samples WHERE cell_key = ? AND task = ?",
            [key, task],
        ).fetchnumpy()


class _Files:
    def __init__(self, results_dir: Path):
        from leaderboards.record import read_records

        self.dir = results_dir
        self.records = {}
        for p, rec in read_records(sorted((results_dir / "records").glob("eval-*.json"))):
            self.records[rec.cell_key] = (p, rec)

    def resolve(self, prefix: str) -> tuple[str, str]:
        rows = [
            (k, f"{r.model_id} / {r.stage}")
            for k, (_, r) in self.records.items()
            if k.startswith(prefix)
        ]
        return _one(prefix, rows, f"{self.dir}/records")

    def tasks(self, key: str) -> dict[str, _Task]:
        rec = self.records[key][1]
        return {
            t.name: _Task(
                t.version,
                t.primary_metric,
                t.metrics[t.primary_metric].value if t.primary_metric in t.metrics else None,
            )
            for t in rec.tasks
        }

    def samples(self, key: str, task: str) -> dict[str, np.ndarray]:
        from leaderboards.samples import read_samples, resolve_samples_file

        path, rec = self.records[key]
        rel = next((t.samples_file for t in rec.tasks if t.name == task), None)
        sf = resolve_samples_file(self.dir, path, rel) if rel else None
        if sf is None:
            return {"doc_id": np.array([], dtype=np.int64)}
        t = read_samples(sf)
        return {
            c: t.column(c).to_numpy(zero_copy_only=False) for c in ("doc_id", "score", "correct")
        }


def _one(prefix: str, rows: list[tuple[str, str]], where: str) -> tuple[str, str]:
    keys = sorted(set(rows))
    exact = [k for k in keys if k[0] == prefix]
    if exact:
        return exact[0]
    if not keys:
        raise BenchError(
            f"{where}: no eval cell key starts with '{prefix}'; `bench leaderboard --format json` lists cell keys"
        )
    if len(keys) > 1:
        raise BenchError(
            f"{where}: cell '{prefix}' is ambiguous ({len(keys)} matches); give more of the key"
        )
    return keys[0]


def _source(src):
    if isinstance(src, str | Path):
        p = Path(src)
        if p.is_dir():
            return _Files(p.resolve()), None
        from leaderboards.store import connect

        con = connect(p, read_only=True)
        return _DB(con), con
    return _DB(src), None


def compare(
    db_or_results,
    cell_a: str,
    cell_b: str,
    task: str | None = None,
    *,
    alpha: float = 0.05,
    n_boot: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare two eval cells (B against A) on every shared task, or only ``task``."""
    src, owned = _source(db_or_results)
    try:
        (ka, la), (kb, lb) = src.resolve(cell_a), src.resolve(cell_b)
        ta, tb = src.tasks(ka), src.tasks(kb)
        if task is not None and task not in ta and task not in tb:  # else: exit 0, empty tables
            known = sorted(set(ta) | set(tb))
            raise BenchError(
                f"--task {task}: neither cell has it{closest(task, known)}; "
                f"their tasks: {', '.join(known) or 'none'}"
            )
        comp = Comparison(ka, kb, f"{la} [{ka[:12]}]", f"{lb} [{kb[:12]}]", alpha=alpha)
        names = sorted(set(ta) | set(tb)) if task is None else [task]
        for name in names:
            if name not in ta or name not in tb:
                comp.skipped.append(
                    (name, f"only in {'A' if name in ta else 'B' if name in tb else 'neither'}")
                )
                continue
            if ta[name].version != tb[name].version:
                comp.skipped.append(
                    (name, f"versions differ ({ta[name].version} vs {tb[name].version})")
                )
                continue
            tc = _paired(
                name,
                ta[name],
                tb[name],
                src.samples(ka, name),
                src.samples(kb, name),
                alpha,
                n_boot,
                seed,
            )
            if tc is None:
                comp.skipped.append((name, "no shared doc_ids in per-sample rows"))
            else:
                comp.tasks.append(tc)
        return comp
    finally:
        if owned is not None:
            owned.close()


def _paired(name, ta: _Task, tb: _Task, sa, sb, alpha, n_boot, seed) -> TaskComparison | None:
    if len(sa["doc_id"]) == 0 or len(sb["doc_id"]) == 0:
        return None
    shared, ia, ib = np.intersect1d(sa["doc_id"], sb["doc_id"], return_indices=True)
    if shared.size == 0:
        return None
    a_score, b_score = np.asarray(sa["score"], float)[ia], np.asarray(sb["score"], float)[ib]
    a_ok, b_ok = np.asarray(sa["correct"], bool)[ia], np.asarray(sb["correct"], bool)[ib]
    binary = bool(np.isin(a_score, (0.0, 1.0)).all() and np.isin(b_score, (0.0, 1.0)).all())
    boot = paired_bootstrap(a_score, b_score, alpha=alpha, n_boot=n_boot, seed=seed)
    return TaskComparison(
        task=name,
        version=ta.version,
        metric=ta.metric,
        value_a=ta.value,
        value_b=tb.value,
        n_shared=int(shared.size),
        mean_a=float(a_score.mean()),
        mean_b=float(b_score.mean()),
        diff=boot.diff,
        diff_ci=boot.ci,
        binary=binary,
        mcnemar=mcnemar(a_ok, b_ok, alpha=alpha),
        bootstrap=boot,
    )
