"""Renderers for ``bench analyze``: Markdown tables, the layer × module heatmap, pass@k curves.

They take the typed documents (``leaderboards.analysis_doc``: ``WeightDiff.document()``,
``BehaviorDoc``), so the board renders the same panels from what the store holds. matplotlib (Agg) is imported lazily.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape
from pathlib import Path

from leaderboards.analysis_doc import BehaviorComparison, BehaviorDoc, TensorRow, WeightsDoc
from leaderboards.weights import MODULE_ORDER

__all__ = [
    "weights_markdown",
    "behavior_markdown",
    "heat_grid",
    "heatmap_png",
    "passk_png",
    "panels_html",
]


def _f(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def weights_markdown(doc: WeightsDoc) -> str:
    tols, s = doc.tolerances, doc.summary
    out = [
        f"### Weights: {doc.a} → {doc.b}",
        "",
        f"{s.n_tensors} tensors, {s.numel:,} parameters; Δ in {doc.dtype} ({doc.mode}); "
        f"rel ‖ΔW‖ = {_f(s.rel_norm)}; sparsity "
        + ", ".join(f"@{k}: {_f(v)}" for k, v in s.sparsity.items())
        + (f"; rank ratio {_f(s.rank_ratio)}" if s.rank_ratio is not None else ""),
        "",
    ]
    head = [
        "",
        "tensors",
        "rel ‖ΔW‖",
        *(f"sparsity@{k}" for k in tols),
        "rank/min",
        "σ drift",
        "overlap",
    ]
    for key, groups in (("module", doc.modules), ("layer", doc.layers)):
        rows = [
            [
                g.name,
                str(g.n_tensors),
                _f(g.rel_norm),
                *(_f(g.sparsity.get(k)) for k in tols),
                _f(g.rank_ratio),
                _f(g.spectral_drift),
                _f(g.overlap),
            ]
            for g in groups
        ]
        out += _table([key, *head[1:]], rows) + [""]
    if doc.skipped:
        first = doc.skipped[0]
        out.append(f"skipped: {len(doc.skipped)} tensor(s), e.g. {first.name} ({first.reason})")
    return "\n".join(out) + "\n"


_BEHAVIOR_COLS = (
    ("score", "score"),
    ("pass@1", None),
    ("pass@n", None),
    ("reason len", "reasoning_len_mean"),
    ("answer len", "answer_len_mean"),
    ("trunc", "truncation_rate"),
    ("score done", "score_completed"),
    ("distinct", "distinct_answers"),
    ("entropy", "answer_entropy"),
    ("conf", "sc_confidence"),
    ("ECE", "ece"),
    ("Brier", "brier"),
    ("rep", "repetition"),
)


def _behavior_cells(doc: BehaviorDoc) -> list[str]:
    vals = {"pass@1": doc.pass_at_1, "pass@n": doc.pass_at_n}
    return [
        _f(vals[name] if key is None else getattr(doc.figures, key), 3)
        for name, key in _BEHAVIOR_COLS
    ]


def behavior_markdown(docs: list[BehaviorDoc]) -> str:
    out = [f"### Behaviour ({docs[0].length_unit})" if docs else "### Behaviour", ""]
    head = ["model", "stage", "task", "n", *(c for c, _ in _BEHAVIOR_COLS)]
    out += _table(
        head,
        [
            [d.model_id, d.stage, d.task, str(d.figures.samples_per_prompt), *_behavior_cells(d)]
            for d in docs
        ],
    )
    for d in docs:
        c = d.vs_parent
        if c is None:
            continue
        out += [
            "",
            f"**{d.model_id}/{d.stage} vs parent on {d.task}** ({c.n_shared} shared prompts; "
            f"crossover k: {c.crossover_k or 'none'})",
            "",
        ]
        out += _table(
            ["figure", "Δ", "95% CI"],
            [
                [k, _f(v.delta, 3), f"[{_f(v.ci[0], 3)}, {_f(v.ci[1], 3)}]"]
                for k, v in c.deltas.items()
            ],
        )
        out += [""] + _table(
            ["k", "both", "parent only", "child only", "neither", "McNemar p"],
            [
                [
                    k,
                    str(t.both),
                    str(t.parent_only),
                    str(t.child_only),
                    str(t.neither),
                    _f(t.p, 3),
                ]
                for k, t in c.solved_at_k.items()
            ],
        )
    return "\n".join(out) + "\n"


def heat_grid(tensors: list[TensorRow], field: str = "rel_norm", tol: str | None = None):
    """(row labels, module labels, values): mean over the tensors of each layer × module; '-' holds
    the tensors outside layers (embeddings, final norm, lm_head)."""
    mods = [m for m in MODULE_ORDER if any(t.module == m for t in tensors)]
    layers = sorted({t.layer for t in tensors if t.layer is not None})
    rows = ([None] if any(t.layer is None for t in tensors) else []) + layers

    def value(t: TensorRow):
        return t.sparsity.get(tol) if field == "sparsity" else getattr(t, field)

    grid = []
    for r in rows:
        line = []
        for m in mods:
            vs = [
                value(t) for t in tensors if t.layer == r and t.module == m and value(t) is not None
            ]
            line.append(sum(vs) / len(vs) if vs else math.nan)
        grid.append(line)
    return ["-" if r is None else str(r) for r in rows], mods, grid


def _png(fig, path: str | Path | None) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def heatmap_png(doc: WeightsDoc, path: str | Path | None = None) -> bytes:
    """Two panels, layer × module: relative ‖ΔW‖ and update density (1 − sparsity) at the first tolerance."""
    import numpy as np

    plt = _plt()
    tol = doc.tolerances[0]
    rows, mods, rel = heat_grid(doc.tensors, "rel_norm")
    _, _, sp = heat_grid(doc.tensors, "sparsity", tol)
    fig, axes = plt.subplots(
        1, 2, figsize=(3 + 0.9 * len(mods), 1.6 + 0.22 * len(rows)), squeeze=False
    )
    for ax, data, title, cmap in (
        (axes[0][0], np.array(rel), "relative ‖ΔW‖", "viridis"),
        (axes[0][1], 1 - np.array(sp), f"density (|ΔW| > {tol}, {doc.dtype})", "magma"),
    ):
        im = ax.imshow(data, aspect="auto", cmap=cmap, interpolation="nearest")
        ax.set_xticks(range(len(mods)), mods, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(doc.label, fontsize=9)
    return _png(fig, path)


def passk_png(
    cmp: BehaviorComparison,
    path: str | Path | None = None,
    labels: tuple[str, str] = ("parent", "child"),
) -> bytes:
    plt = _plt()
    ks = sorted(int(k) for k in cmp.pass_at_k)
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for who, label in zip(("parent", "child"), labels, strict=True):
        ax.plot(ks, [getattr(cmp.pass_at_k[str(k)], who) for k in ks], marker="o", label=label)
    if cmp.crossover_k:
        ax.axvline(cmp.crossover_k, color="0.5", ls=":", label=f"crossover k={cmp.crossover_k}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k")
    ax.set_title(cmp.task, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig, path)


def _img(data: bytes, caption: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def panels_html(panels: dict | None) -> str:
    """The board's analysis sections (``analysis_store.board_panels``): a weight panel per stage
    transition, a behaviour panel per cell."""
    if not panels or not (panels.get("weights") or panels.get("behavior")):
        return ""
    out = []
    weights: list[WeightsDoc] = panels.get("weights") or []
    if weights:
        out.append('<h2>Weights: stage transitions</h2><div class="plots" id="weights">')
        for doc in weights:
            s = doc.summary
            sp = ", ".join(f"@{k}: {_f(v)}" for k, v in s.sparsity.items())
            out.append(
                _img(
                    heatmap_png(doc),
                    f"{doc.label}: rel ‖ΔW‖ {_f(s.rel_norm)}; sparsity {sp} ({doc.dtype}, {doc.mode})",
                )
            )
        out.append("</div>")
    docs: list[BehaviorDoc] = panels.get("behavior") or []
    if docs:
        head = "".join(
            f"<th>{escape(h)}</th>"
            for h in ("model", "stage", "task", "n", *(c for c, _ in _BEHAVIOR_COLS))
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape(str(x))}</td>"
                for x in [
                    d.model_id,
                    d.stage,
                    d.task,
                    d.figures.samples_per_prompt,
                    *_behavior_cells(d),
                ]
            )
            + "</tr>"
            for d in docs
        )
        out.append(
            f'<h2>Behaviour</h2><table id="behavior"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
        figs = [
            _img(
                passk_png(d.vs_parent, labels=(d.vs_parent.parent_stage or "parent", d.stage)),
                f"{d.model_id}/{d.stage} vs parent, {d.task}: pass@k (crossover k: {d.vs_parent.crossover_k or 'none'})",
            )
            for d in docs
            if d.vs_parent is not None and d.vs_parent.pass_at_k
        ]
        if figs:
            out.append(f'<div class="plots" id="passk">{"".join(figs)}</div>')
    return "".join(out)
