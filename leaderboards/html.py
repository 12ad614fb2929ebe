"""One static, self-contained HTML leaderboard page: no network, inline CSS/JS, PNG plots.

The table sorts by clicking a header (or by ``#sort=<column>:<asc|desc>`` in the URL,
which also lets a headless browser test sorting). Plots are matplotlib (Agg, imported
lazily) embedded as base64 PNG: per task, score by stage (bars, one per model, stderr
whiskers); per model, stage trajectories (one line per task along each recipe chain).
"""

from __future__ import annotations

import base64
import io
from html import escape

from leaderboards._cells import deltas as _deltas
from leaderboards._cells import num as _num
from leaderboards.analysis_render import panels_html
from leaderboards.board import Board, BoardRow, parent_stage, stage_depth
from leaderboards.curves import curves_html
from leaderboards.sample_page import SAMPLES_DIR, sample_page_name

__all__ = ["to_html", "MAX_PLOTS", "MAX_SERIES"]

MAX_PLOTS = 8  # per kind; a huge board links to filters instead of drawing 10,000 bars
MAX_SERIES = 8

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6475;margin-bottom:14px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid #dfe3ea;text-align:right;white-space:nowrap}
th{background:#22314d;color:#fff;cursor:pointer;user-select:none;position:sticky;top:0}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#f3f6fb}tbody tr:hover{background:#fff4d6}
.se{color:#6b7385}.up{color:#13795b}.down{color:#b42318}.sig{color:#7a3ed8;font-weight:700}.tail{color:#b54708;font-size:.85em}
.d{font-size:12px}.legend{color:#4a5163;font-size:13px;margin-top:10px}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;border:1px solid #dfe3ea;padding:8px}
figcaption{font-size:12px;color:#5b6475}
td a{color:inherit}.badge{background:#b42318;color:#fff;border-radius:3px;padding:0 4px;font-size:11px;margin-left:4px}
.contam{color:#6b7385;font-size:11px;margin-left:4px}.cost{color:#4a5163}
.curves svg{border:1px solid #dfe3ea;background:#fff}
"""

_JS = """
function sortTable(table, col, dir) {
  const tbody = table.tBodies[0];
  const num = table.tHead.rows[0].cells[col].dataset.type === 'num';
  const key = r => { const c = r.cells[col]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; };
  const rows = Array.from(tbody.rows);
  rows.sort((a, b) => {
    let x = key(a), y = key(b);
    if (num) {
      x = x === '' ? NaN : parseFloat(x); y = y === '' ? NaN : parseFloat(y);
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);  // missing cells last
      return dir === 'asc' ? x - y : y - x;
    }
    return dir === 'asc' ? x.localeCompare(y) : y.localeCompare(x);
  });
  rows.forEach(r => tbody.appendChild(r));
  Array.from(table.tHead.rows[0].cells).forEach((th, i) =>
    th.setAttribute('aria-sort', i === col ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'));
}
document.querySelectorAll('table.sortable').forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => th.addEventListener('click', () => {
    const dir = th.getAttribute('aria-sort') === 'descending' ? 'asc' : 'desc';
    sortTable(table, i, th.dataset.type === 'num' ? dir : (dir === 'desc' ? 'asc' : 'desc'));
  }));
});
const m = location.hash.match(/sort=(\\d+):(asc|desc)/);
if (m) sortTable(document.getElementById('lb'), parseInt(m[1]), m[2]);
document.body.dataset.ready = 'yes';
"""


def _td(row: BoardRow, label: str, higher_is_better: bool, task: str = "") -> str:
    cell = row.cells.get(label)
    if cell is None:
        return '<td data-v="">—</td>'
    d = _deltas(cell, row.parent)
    if d:
        delta = cell.delta_base or 0.0
        cls = "" if delta == 0 else ("up" if (delta > 0) == higher_is_better else "down")
        d = f' <span class="d {cls}">{escape(d)}</span>'
    se = f' <span class="se">± {_num(cell.stderr)}</span>' if cell.stderr is not None else ""
    marks = f'<span class="sig">{cell.marks}</span>' if cell.marks else ""
    tails = f' <span class="tail">{escape(cell.tails)}</span>' if cell.tails else ""
    contam = ""
    if cell.contamination is not None:
        share = f"{cell.contamination:.1%}"
        contam = (
            f'<span class="badge" title="{share} of the docs are in the training rows '
            f'(8-gram rule)">contaminated {share}</span>'
            if cell.contaminated
            else f'<span class="contam" title="docs found in the training rows">overlap {share}</span>'
        )
    href = f"{SAMPLES_DIR}/{sample_page_name(cell.cell_key, task)}"
    value = f'<a href="{escape(href)}" title="samples across the lineage">{_num(cell.value)}</a>'
    return f'<td data-v="{cell.value!r}" title="{escape(cell.cell_key)}">{value}{se}{marks}{d}{tails}{contam}</td>'


def _cost_tds(row: BoardRow) -> str:
    c = row.cost
    hours = f"{c.train_hours:.3g} {c.device}-h" if c.train_hours is not None else "—"
    tok = f"{c.tokens_per_correct:.4g}" if c.tokens_per_correct is not None else "—"
    rate = f"{c.delta_per_hour:+.4g}" if c.delta_per_hour is not None else "—"
    return "".join(
        f'<td class="cost" data-v="{"" if v is None else repr(v)}">{t}</td>'
        for v, t in (
            (c.train_hours, hours),
            (c.tokens_per_correct, tok),
            (c.delta_per_hour, rate),
        )
    )


_COST = (
    ("train", "this stage's training wall time × processes: GPU-hours on GPU, CPU-hours on CPU"),
    ("tok/correct", "eval tokens generated per correct answer, over the row's tasks"),
    ("Δ/train-h", "mean Δ score vs the parent row over its tasks, per training hour"),
)


def _table(board: Board) -> str:
    head = (
        '<th data-type="str">model</th><th data-type="str">stage</th>'
        + "".join(
            f'<th data-type="num" title="metric: {escape(c.metric)}">{escape(c.label)}</th>'
            for c in board.columns
        )
        + "".join(f'<th data-type="num" title="{escape(t)}">{escape(h)}</th>' for h, t in _COST)
    )
    body = []
    for row in board.rows:
        tds = "".join(_td(row, c.label, c.higher_is_better, c.task) for c in board.columns)
        tds += _cost_tds(row)
        body.append(
            f"<tr><td>{escape(row.model)}</td>"
            f'<td data-v="{row.depth:03d} {escape(row.stage)}">{escape(row.stage)}</td>{tds}</tr>'
        )
    return (
        f'<table id="lb" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _stage_order(stages) -> list[str]:
    return sorted(set(stages), key=lambda s: (stage_depth(s), s))


def _bar_plots(board: Board, plt) -> list[tuple[str, str]]:
    import numpy as np

    out = []
    models = list(dict.fromkeys(r.model for r in board.rows))[:MAX_SERIES]
    for col in board.columns[:MAX_PLOTS]:
        rows = [r for r in board.rows if r.model in models and col.label in r.cells]
        stages = _stage_order(r.stage for r in rows)[:24]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(stages) + 2), 3.4))
        width = 0.8 / max(1, len(models))
        x = np.arange(len(stages))
        for i, model in enumerate(models):
            got = {r.stage: r.cells[col.label] for r in rows if r.model == model}
            ys = [got[s].value if s in got else np.nan for s in stages]
            es = [(got[s].stderr or 0) if s in got else 0 for s in stages]
            ax.bar(
                x + (i - (len(models) - 1) / 2) * width, ys, width, yerr=es, capsize=2, label=model
            )
        ax.set_xticks(x, stages, rotation=30, ha="right")
        ax.set_ylabel(col.metric)
        ax.set_title(col.label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        out.append((f"{col.label}: score by stage", _png(fig)))
    return out


def _chains(stages: set[str]) -> list[list[str]]:
    """Recipe chains base → … → leaf for every stage that no other stage extends."""
    parents = {parent_stage(s) for s in stages}
    chains = []
    for leaf in _stage_order(s for s in stages if s not in parents):
        chain, s = [], leaf
        while s is not None:
            if s in stages:
                chain.append(s)
            s = parent_stage(s)
        chains.append(chain[::-1])
    return chains


def _trajectory_plots(board: Board, plt) -> list[tuple[str, str]]:
    """x = recipe depth; colour = task, line style = recipe chain (legend names the chain's leaf)."""
    from matplotlib.lines import Line2D

    out = []
    models = list(dict.fromkeys(r.model for r in board.rows))[:MAX_PLOTS]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for model in models:
        rows = {r.stage: r for r in board.rows if r.model == model}
        chains = _chains(set(rows))[: len(styles)]
        depth = max((stage_depth(s) for s in rows), default=0)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * depth + 3.5), 3.4))
        cols = board.columns[:MAX_SERIES]
        for ci, col in enumerate(cols):
            for k, chain in enumerate(chains):
                pts = [
                    (stage_depth(s), rows[s].cells[col.label].value)
                    for s in chain
                    if col.label in rows[s].cells
                ]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, styles[k], marker="o", color=colors[ci % len(colors)])
        handles = [
            Line2D([], [], color=colors[i % len(colors)], marker="o", label=c.label)
            for i, c in enumerate(cols)
        ]
        if len(chains) > 1:
            handles += [
                Line2D([], [], color="0.3", ls=styles[k], label=" → ".join(ch[-1:]) or "base")
                for k, ch in enumerate(chains)
            ]
        ax.set_xticks(range(depth + 1), ["base"] + [f"stage {d}" for d in range(1, depth + 1)])
        ax.set_xlabel("recipe depth")
        ax.set_title(f"{model}: trajectory over stages")
        ax.set_ylabel("score")
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=7, loc="best")
        out.append((f"{model}: stage trajectory", _png(fig)))
    return out


def _plots(board: Board) -> str:
    if not board.rows:
        return ""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figs = _bar_plots(board, plt) + _trajectory_plots(board, plt)
    items = "".join(
        f'<figure><img alt="{escape(cap)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{escape(cap)}</figcaption></figure>"
        for cap, b64 in figs
    )
    return f'<h2>Plots</h2><div class="plots">{items}</div>'


def to_html(board: Board, title: str = "bench leaderboard") -> str:
    models = len({r.model for r in board.rows})
    meta = f"{models} model(s), {len(board.rows)} model × stage row(s), {len(board.columns)} task column(s)"
    if models > MAX_PLOTS or len(board.columns) > MAX_PLOTS:
        meta += f"; plots show the first {MAX_PLOTS} — filter with --model/--task for others"
    legend = "".join(f"<div>{escape(x)}</div>" for x in board.legend)
    if board.failures:
        items = "".join(f"<li>failed {escape(str(f))}</li>" for f in board.failures)
        legend += f'<div id="failures">{escape(board.failure_head)}<ul>{items}</ul></div>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="meta">{escape(meta)}</div>'
        f'{_table(board)}<div class="legend">{legend}</div>{_plots(board)}'
        f"{curves_html(board.curves)}{panels_html(board.analysis)}"
        f"<script>{_JS}</script></body></html>\n"
    )
