"""Training curves: every train stage's logged steps, in the store and along the lineage.

A train stage writes ``log_history.json`` (trl's ``state.log_history``) beside its weights in
``results/checkpoints/<cell_key>/``. Ingest loads each train record's file into
``train_curves`` (one row per step and metric, every numeric key trl logged); the curve of a
cell is the curves of its lineage's stages, root first, with x the cumulative step over the
recipe (a stage's steps start where its parent's ended).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench_core.errors import BenchError

__all__ = [
    "LOG_HISTORY",
    "StageCurve",
    "curve_rows",
    "read_log_history",
    "train_lineage",
    "lineage_curves",
    "sparkline",
    "curves_text",
    "curves_dict",
]

LOG_HISTORY = "log_history.json"
# trl's end-of-training summary (train_runtime, train_loss, ...) is one entry, not a step
_SUMMARY = "train_runtime"
_SKIP = {"step", "epoch", "total_flos"}
# Shown first, in this order; every other metric a method logged follows by name.
PREFERRED = (
    "loss",
    "grad_norm",
    "learning_rate",
    "reward",
    "reward_std",
    "kl",
    "nll",
    "completions/mean_length",
    "completions/clipped_ratio",
    "rewards/margins",
    "rewards/accuracies",
    "rewards/chosen",
    "rewards/rejected",
    "eval_loss",
)
_KEY = re.compile(r"[0-9A-Za-z_-]{1,128}")


def curve_rows(cell_key: str, history: list) -> list[dict]:
    """Rows (cell_key, step, metric, value) of a ``log_history`` list; non-numbers are skipped."""
    rows = []
    for entry in history:
        if not isinstance(entry, dict) or _SUMMARY in entry or "step" not in entry:
            continue
        step = int(entry["step"])
        for metric, value in entry.items():
            if metric in _SKIP or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            rows.append(
                {
                    "cell_key": cell_key,
                    "step": step,
                    "metric": str(metric),
                    "value": float(value) if math.isfinite(value) else None,
                }
            )
    return rows


def stage_dir(results_dir: str | Path, cell_key: str) -> Path | None:
    """``results/checkpoints/<cell_key>`` (where the harness trains a stage); None for a key
    that could name anything else."""
    if not _KEY.fullmatch(cell_key):
        return None
    return Path(results_dir) / "checkpoints" / cell_key


def read_log_history(results_dir: str | Path, cell_key: str) -> list | None:
    d = stage_dir(results_dir, cell_key)
    file = d / LOG_HISTORY if d else None
    if file is None or not file.is_file():
        return None
    history = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(history, list):
        raise BenchError(f"{file}: not a list of logged steps")
    return history


@dataclass
class StageCurve:
    cell_key: str  # the train cell
    stage: str
    offset: int  # steps of the stages before it in the lineage
    metrics: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)  # by step

    @property
    def steps(self) -> int:
        return max((s for pts in self.metrics.values() for s, _ in pts), default=0)


def train_lineage(con, cell_key: str) -> list[tuple[str, str]]:
    """(train cell key, stage) root first for an eval or train cell; [] for a base model."""
    row = con.execute(
        "SELECT kind, parent_key, stage FROM records WHERE cell_key = ? "
        "ORDER BY kind = 'train' DESC LIMIT 1",
        [cell_key],
    ).fetchall()
    if not row:
        return []
    kind, parent, stage = row[0]
    key = cell_key if kind == "train" else parent
    chain, seen = [], set()
    while key and key not in seen:
        seen.add(key)
        got = con.execute(
            "SELECT parent_key, stage FROM records WHERE cell_key = ? AND kind = 'train'", [key]
        ).fetchall()
        if not got:
            break
        chain.append((key, got[0][1]))
        key = got[0][0]
    return chain[::-1]


def lineage_curves(con, cell_key: str) -> list[StageCurve]:
    out, offset = [], 0
    for key, stage in train_lineage(con, cell_key):
        curve = StageCurve(key, stage, offset)
        for metric, step, value in con.execute(
            "SELECT metric, step, value FROM train_curves WHERE cell_key = ? ORDER BY metric, step",
            [key],
        ).fetchall():
            curve.metrics.setdefault(metric, []).append((step, value))
        out.append(curve)
        offset += curve.steps
    return out


def metric_order(names) -> list[str]:
    names = set(names)
    first = [m for m in PREFERRED if m in names]
    return first + sorted(names - set(first))


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int = 40) -> str:
    """One character per value (values averaged into ``width`` buckets when there are more);
    a missing value is a space, a flat series the lowest bar."""
    if len(values) > width:
        buckets = [
            values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)
        ]
        values = [
            (sum(v) / len(v)) if (v := [x for x in b if x is not None]) else None for b in buckets
        ]
    real = [v for v in values if v is not None]
    if not real:
        return " " * len(values)
    lo, hi = min(real), max(real)
    span = hi - lo
    return "".join(
        " " if v is None else _BARS[0 if span == 0 else round((v - lo) / span * (len(_BARS) - 1))]
        for v in values
    )


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def curves_text(curves: list[StageCurve], width: int = 40) -> str:
    """Per metric, one line per stage: the sparkline over its steps, first → last value, and
    the cumulative steps it spans."""
    if not curves:
        return "no train stages in this cell's lineage (a base model): no training curves\n"
    lines = [" → ".join(c.stage for c in curves)]
    names = metric_order(m for c in curves for m in c.metrics)
    if not names:
        return lines[0] + "\nno logged steps (no log_history.json in the stage dirs)\n"
    label = max(len(c.stage) for c in curves)
    for metric in names:
        lines.append(f"\n{metric}")
        for c in curves:
            pts = c.metrics.get(metric)
            if not pts:
                continue
            vals = [v for _, v in pts]
            span = f"steps {c.offset + pts[0][0]}–{c.offset + pts[-1][0]}"
            lines.append(
                f"  {c.stage:<{label}}  {sparkline(vals, width):<{width}}  "
                f"{_fmt(vals[0])} → {_fmt(vals[-1])}  ({span}, {len(vals)} logged)"
            )
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("stage", "cell_key", "step", "cumulative_step", "metric", "value")


def curves_csv(curves: list[StageCurve]) -> str:
    """Long CSV: a row per stage, step and metric (``cumulative_step`` is x over the recipe)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for c in curves:
        for metric in metric_order(c.metrics):
            for step, value in c.metrics[metric]:
                w.writerow(
                    [
                        c.stage,
                        c.cell_key,
                        step,
                        c.offset + step,
                        metric,
                        "" if value is None else repr(value),
                    ]
                )
    return buf.getvalue()


def curves_dict(curves: list[StageCurve]) -> list[dict]:
    """JSON-ready: per stage, per metric, [cumulative step, value] pairs."""
    return [
        {
            "cell_key": c.cell_key,
            "stage": c.stage,
            "offset": c.offset,
            "metrics": {m: [[c.offset + s, v] for s, v in pts] for m, pts in c.metrics.items()},
        }
        for c in curves
    ]


MAX_LINEAGES = 8  # curve panels on the board; `bench curves CELL` shows any other
PANEL_METRICS = 6
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def board_curves(
    con, board, limit: int | None = MAX_LINEAGES
) -> list[tuple[str, list[StageCurve]]]:
    """(model, curves) for each leaf train lineage among the board's rows (the first ``limit``).

    Batched: the train records' parents are read once and the curves of the shown lineages in
    one query, so a board of 10,000 cells costs three queries, not one per cell."""
    import pyarrow as pa

    from leaderboards._rows import registered

    keys = sorted({c.cell_key for r in board.rows for c in r.cells.values()})
    if not keys:
        return []
    with registered(con, "_curve_cells", pa.table({"cell_key": keys})):
        evals = con.execute(
            "SELECT DISTINCT model_id, parent_key FROM records WHERE kind = 'eval' "
            "AND parent_key IS NOT NULL AND cell_key IN (SELECT cell_key FROM _curve_cells) "
            "ORDER BY 1, 2"
        ).fetchall()
    trains = {
        k: (p, st)
        for k, p, st in con.execute(
            "SELECT cell_key, parent_key, stage FROM records WHERE kind = 'train'"
        ).fetchall()
    }
    chains = []
    for model, key in evals:
        chain, k = [], key
        while k in trains and k not in chain:
            chain.append(k)
            k = trains[k][0]
        if chain:
            chains.append((model, chain[::-1]))
    inner = {k for _, chain in chains for k in chain[:-1]}
    leaves = [(m, c) for m, c in chains if c[-1] not in inner][:limit]
    wanted = sorted({k for _, c in leaves for k in c})
    points: dict[str, dict[str, list]] = {}
    if wanted:
        with registered(con, "_curve_keys", pa.table({"cell_key": wanted})):
            for k, metric, step, value in con.execute(
                "SELECT cell_key, metric, step, value FROM train_curves "
                "WHERE cell_key IN (SELECT cell_key FROM _curve_keys) ORDER BY 1, 2, 3"
            ).fetchall():
                points.setdefault(k, {}).setdefault(metric, []).append((step, value))
    out = []
    for model, chain in leaves:
        curves, offset = [], 0
        for k in chain:
            curve = StageCurve(k, trains[k][1], offset, points.get(k, {}))
            curves.append(curve)
            offset += curve.steps
        out.append((model, curves))
    return out


def _svg(metric: str, curves: list[StageCurve], w: int = 320, h: int = 150) -> str:
    from html import escape

    pts = [
        (c.offset + s, v, i)
        for i, c in enumerate(curves)
        for s, v in c.metrics.get(metric, [])
        if v is not None
    ]
    if not pts:
        return ""
    total = max(sum(c.steps for c in curves), 1)
    lo, hi = min(p[1] for p in pts), max(p[1] for p in pts)
    span = (hi - lo) or 1.0
    pad_l, pad_b, pad_t = 44, 18, 16

    def xy(step, v):
        x = pad_l + (w - pad_l - 6) * step / total
        y = pad_t + (h - pad_t - pad_b) * (1 - (v - lo) / span)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'data-metric="{escape(metric)}"><title>{escape(metric)}</title>',
        f'<text x="{pad_l}" y="12" font-size="11">{escape(metric)}</text>',
        f'<text x="2" y="{pad_t + 8}" font-size="9">{hi:.3g}</text>',
        f'<text x="2" y="{h - pad_b}" font-size="9">{lo:.3g}</text>',
        f'<text x="{w - 40}" y="{h - 4}" font-size="9">step {total}</text>',
    ]
    for i, c in enumerate(curves):
        if i:  # a stage boundary
            x = pad_l + (w - pad_l - 6) * c.offset / total
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pad_t}" y2="{h - pad_b}" stroke="#999" '
                'stroke-dasharray="3,3"/>'
            )
        mine = [p for p in pts if p[2] == i]
        if mine:
            color = _COLORS[i % len(_COLORS)]
            line = " ".join(xy(s, v) for s, v, _ in mine)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{line}" '
                f'data-stage="{escape(c.stage)}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def curves_html(lineages: list[tuple[str, list[StageCurve]]] | None) -> str:
    """The board's training-curve panels: per leaf lineage, a small chart per metric, x the
    cumulative step over the recipe, one colour per stage, dashed lines at stage boundaries."""
    from html import escape

    if not lineages:
        return ""
    out = ['<h2>Training curves</h2><div class="curves">']
    for model, curves in lineages:
        names = metric_order(m for c in curves for m in c.metrics)[:PANEL_METRICS]
        legend = " → ".join(
            f'<span style="color:{_COLORS[i % len(_COLORS)]}">{escape(c.stage)}</span>'
            for i, c in enumerate(curves)
        )
        charts = "".join(_svg(m, curves) for m in names)
        out.append(
            f'<figure data-lineage="{escape(curves[-1].cell_key)}"><figcaption>{escape(model)}: '
            f"{legend} (x: cumulative step over the recipe)</figcaption>"
            f'<div class="plots">{charts}</div></figure>'
        )
    out.append("</div>")
    return "".join(out)
