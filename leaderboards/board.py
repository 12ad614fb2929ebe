"""The leaderboard as data: rows model × stage, columns task@version, every renderer's input.

Values, stderrs and deltas come from the ``leaderboard_long`` view. Significance marks
come from an exact McNemar test on per-sample correctness over the doc_ids two cells
share: ``*`` marks a stage that differs from its model's base at p < alpha, ``†`` one
that differs from its previous stage (the parent, e.g. ``distill`` for
``distill+grpo``) when that is not the base.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import pyarrow as pa

from leaderboards.sql import pair_counts_sql
from leaderboards.stats import mcnemar_exact_many

__all__ = [
    "Column",
    "BoardCell",
    "BoardRow",
    "FailedCell",
    "Board",
    "build_board",
    "stage_depth",
    "task_label",
    "parent_stage",
    "SIG_BASE",
    "SIG_PARENT",
]

SIG_BASE = "*"
SIG_PARENT = "†"
TRUNCATED = "‡"
LOOPING = "↻"  # any sample that ends in a degenerate loop (a broken stage, not a hard task)
TRUNCATION_LIMIT = (
    0.05  # a cell with more cap-hitting samples than this is marked: its score is cut short
)


def task_label(task: str, version: str) -> str:
    """A leaderboard column: ``math_gsm8k@v2`` (the SQL view builds the same string)."""
    return f"{task}@{version if str(version).startswith('v') else f'v{version}'}"


def stage_depth(stage: str) -> int:
    return 0 if stage == "base" else len(stage.split("+"))


def parent_stage(stage: str) -> str | None:
    if stage == "base":
        return None
    return stage.rsplit("+", 1)[0] if "+" in stage else "base"


@dataclass(frozen=True)
class Column:
    label: str  # task@vN
    task: str
    version: str
    metric: str
    higher_is_better: bool = True


@dataclass
class BoardCell:
    value: float
    stderr: float | None
    n: int | None
    cell_key: str
    delta_base: float | None = None
    delta_parent: float | None = None
    p_base: float | None = None  # exact McNemar vs base over shared doc_ids
    p_parent: float | None = None
    alpha: float = 0.05
    truncated: float | None = None  # share of samples that hit the generation cap
    looping: float | None = None  # share of samples that end in a degenerate loop
    # share of the task's docs that Tulu 3's 8-gram rule finds in the lineage's training rows;
    # None: an untrained cell, or a stage that did not record its rows
    contamination: float | None = None

    @property
    def contaminated(self) -> bool:
        from leaderboards.contamination import TASK_THRESHOLD

        return self.contamination is not None and self.contamination > TASK_THRESHOLD

    @property
    def sig_base(self) -> bool:
        return self.p_base is not None and self.p_base < self.alpha

    @property
    def sig_parent(self) -> bool:
        return self.p_parent is not None and self.p_parent < self.alpha

    @property
    def marks(self) -> str:
        truncated = (
            TRUNCATED if self.truncated is not None and self.truncated > TRUNCATION_LIMIT else ""
        )
        loops = LOOPING if self.looping else ""
        return (
            (SIG_BASE if self.sig_base else "")
            + (SIG_PARENT if self.sig_parent else "")
            + truncated
            + loops
        )

    @property
    def tails(self) -> str:
        """The shares behind ‡ and ↻, shown whenever any sample hit the cap or looped
        (``cut 78%``, ``cut 5% loop 10%``): a mark alone does not say how much to trust a value."""
        parts = [
            f"{name} {share:.0%}"
            for name, share in (("cut", self.truncated), ("loop", self.looping))
            if share
        ]
        return " ".join(parts)


@dataclass
class RowCost:
    """What a row cost beside what it gained: its own stage's training time, the eval tokens
    it spent per correct answer, and its Δ score against its parent per training hour."""

    train_hours: float | None = None  # device-hours: wall hours × processes (GPUs, or 1 on CPU)
    device: str | None = None  # "GPU" or "CPU"
    tokens_per_correct: float | None = None  # generated tokens over correct answers, every task
    delta_per_hour: float | None = None  # mean Δ vs parent over the row's tasks / train_hours

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class BoardRow:
    model: str
    stage: str  # the stage label, with a short weights key when one (model, stage) has several
    depth: int
    parent: str | None
    cells: dict[str, BoardCell] = field(default_factory=dict)
    weights: str = ""
    cost: RowCost = field(default_factory=RowCost)


@dataclass(frozen=True)
class FailedCell:
    """A cell whose last run failed and that has no record: listed under the board, never
    left out silently (its row or column may be missing above)."""

    kind: str
    model: str
    stage: str
    cell_key: str
    error: str  # the first line

    def __str__(self) -> str:
        return f"{self.kind} {self.model}/{self.stage} [{self.cell_key}]: {self.error}"


@dataclass
class Board:
    columns: list[Column]
    rows: list[BoardRow]
    alpha: float = 0.05
    failures: list[FailedCell] = field(default_factory=list)
    analysis: dict | None = (
        None  # bench analyze's panels, attached for HTML (analysis_store.board_panels)
    )
    curves: list | None = None  # per leaf train lineage, its StageCurves (curves.board_curves)

    @property
    def failure_head(self) -> str:
        n = len(self.failures)
        return f"{n} failed cell(s) without a record (results/failures/; rerun to retry):"

    @property
    def legend(self) -> list[str]:
        a = f"{self.alpha:g}"
        return [
            "value ± stderr (mean of the primary metric; stderr as lm-eval computes it)",
            "(Δ vs base / Δ vs previous stage); one Δ when the previous stage is base",
            f"{SIG_BASE} differs from base at p < {a}; {SIG_PARENT} differs from the previous "
            f"stage at p < {a} (exact McNemar test on per-sample correctness, shared doc_ids)",
            f"{TRUNCATED} more than {TRUNCATION_LIMIT:.0%} of the samples hit the generation cap (truncated "
            "reasoning has no answer): raise max_gen_toks; "
            f"{LOOPING} some samples end in a degenerate loop (one short unit repeated to the end); "
            "cut N% / loop N%: the share of samples that hit the cap / loop, when any did",
            "columns are task@version: only equal task versions are compared; "
            "[...] names the eval settings when a task was measured more than one way",
            "contaminated N%: more than 2% of the task's docs have over half their 8-grams in "
            "the training rows of the cell's lineage (Tulu 3's rule); train: the stage's training "
            "device-hours; tok/correct: eval tokens per correct answer; Δ/train-h: Δ vs the "
            "parent per training hour",
        ]


def _as_list(x) -> list[str] | None:
    return [x] if isinstance(x, str) else (list(x) if x else None)


def _match(value: str, patterns) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def _row_kept(model: str, stage: str, models, methods) -> bool:
    if models and not _match(model, models):
        return False
    return not methods or any(m in stage.split("+") or m == stage for m in methods)


def _keep(row: tuple, models, methods, tasks) -> bool:
    model, stage, task, label = row[0], row[1], row[4], row[6]
    if not _row_kept(model, stage, models, methods):
        return False
    return not tasks or _match(task, tasks) or _match(label, tasks)


_COLS = (
    "model_id, stage, depth, parent_stage, task, task_version, label, metric, higher_is_better, "
    "value, stderr, n, cell_key, base_cell, delta_base, parent_cell, delta_parent, "
    "weights_key, parent_weights, base_weights, truncated, looping"
)


def build_board(con, *, models=None, methods=None, tasks=None, alpha: float = 0.05) -> Board:
    """Query the store; filters are glob patterns (a string or a list of them).

    ``models`` match the model id; ``methods`` keep stages whose method path contains the
    method (``grpo`` keeps ``grpo`` and ``distill+grpo``; ``base`` keeps the base);
    ``tasks`` match the task name or its ``task@vN`` label. Deltas and significance are
    computed before filtering, so hiding the base row keeps its deltas.
    """
    models, methods, tasks = (_as_list(x) for x in (models, methods, tasks))
    every = con.execute(
        f"SELECT {_COLS} FROM leaderboard_long ORDER BY model_id, depth, stage, label"
    ).fetchall()
    rows = [r for r in every if _keep(r, models, methods, tasks)]
    if every and not rows:  # an empty board would read as "no results", not "a filter typo"
        asked = " ".join(
            f"--{k} {','.join(v)}"
            for k, v in (("model", models), ("method", methods), ("task", tasks))
            if v
        )
        warnings.warn(
            f"no leaderboard rows match {asked}; models: "
            f"{', '.join(sorted({r[0] for r in every}))}; tasks: "
            f"{', '.join(sorted({r[4] for r in every}))}",
            stacklevel=2,
        )
    pvals = _paired_pvalues(con, rows)
    columns: dict[str, Column] = {}
    board_rows: dict[tuple[str, str, str], BoardRow] = {}
    variants: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        variants.setdefault((r[0], r[1]), set()).add(r[17])
    for (
        model,
        stage,
        depth,
        parent,
        task,
        version,
        label,
        metric,
        hib,
        value,
        se,
        n,
        cell,
        base_cell,
        d_base,
        parent_cell,
        d_parent,
        weights,
        parent_w,
        base_w,
        trunc,
        loops,
    ) in rows:
        columns.setdefault(label, Column(label, task, version, metric, bool(hib)))
        # Two sets of weights under one (model, stage) label (a changed config, a re-trained
        # stage) are two rows, told apart by their weights key: nothing is hidden.
        shown = (
            stage
            if len(variants[(model, stage)]) == 1
            else f"{stage} #{weights.rsplit('#', 1)[-1][:6]}"
        )
        row = board_rows.setdefault(
            (model, stage, weights), BoardRow(model, shown, depth, parent, weights=weights)
        )
        row.cells[label] = BoardCell(
            value=value,
            stderr=None if se is None or math.isnan(se) else se,
            n=n,
            cell_key=cell,
            delta_base=d_base,
            delta_parent=d_parent,
            p_base=pvals.get((cell, base_cell, task)) if base_cell else None,
            p_parent=(
                pvals.get((cell, parent_cell, task)) if parent_cell and parent_w != base_w else None
            ),
            alpha=alpha,
            truncated=trunc,
            looping=loops,
        )
    board = Board(sorted(columns.values(), key=lambda c: c.label), list(board_rows.values()), alpha)
    _add_cost_and_contamination(con, board)
    board.failures = _failures(con, models, methods)
    return board


def _failures(con, models, methods) -> list[FailedCell]:
    """The failed cells the row filters keep (a task filter keeps them all: a failed cell has
    no column yet)."""
    rows = con.execute(
        "SELECT kind, model_id, stage, cell_key, error FROM failed_cells "
        "ORDER BY model_id, stage, kind DESC, cell_key"
    ).fetchall()
    return [
        FailedCell(kind, model, stage, key, (error.splitlines() or [""])[0])
        for kind, model, stage, key, error in rows
        if _row_kept(model, stage, models, methods)
    ]


def _add_cost_and_contamination(con, board: Board) -> None:
    cells = [(c.cell_key, col) for r in board.rows for col, c in r.cells.items()]
    if not cells:
        return
    keys = sorted({k for k, _ in cells})
    with _registered(con, "_board_cells", pa.table({"cell_key": keys})):
        shares = {
            (k, t): s
            for k, t, s in con.execute(
                "SELECT cell_key, task, share FROM contamination "
                "WHERE cell_key IN (SELECT cell_key FROM _board_cells)"
            ).fetchall()
        }
        spent = dict(
            (k, (tok, right))
            for k, tok, right in con.execute(
                "SELECT cell_key, sum(gen_tokens), count(*) FILTER (WHERE correct) FROM samples "
                "WHERE cell_key IN (SELECT cell_key FROM _board_cells) AND gen_tokens IS NOT NULL "
                "GROUP BY cell_key"
            ).fetchall()
        )
        trained = {
            k: (wall, target, world)
            for k, wall, target, world in con.execute(
                "SELECT e.cell_key, t.wall_s, t.target, "
                "t.world_size "
                "FROM records e JOIN records t ON t.cell_key = e.parent_key AND t.kind = 'train' "
                "WHERE e.kind = 'eval' AND e.cell_key IN (SELECT cell_key FROM _board_cells)"
            ).fetchall()
        }
    tasks = {c.label: c.task for c in board.columns}
    for row in board.rows:
        for label, cell in row.cells.items():
            cell.contamination = shares.get((cell.cell_key, tasks[label]))
        own = {c.cell_key for c in row.cells.values()}
        tok = sum(spent[k][0] for k in own if k in spent)
        right = sum(spent[k][1] for k in own if k in spent)
        cost = row.cost
        if any(k in spent for k in own) and right:
            cost.tokens_per_correct = tok / right
        train = next((trained[k] for k in sorted(own) if k in trained), None)
        if train and train[0] is not None:
            wall, target, world = train
            cost.device = "CPU" if (target or "cpu").startswith("cpu") else "GPU"
            cost.train_hours = wall / 3600 * (world or 1)
            deltas = [c.delta_parent for c in row.cells.values() if c.delta_parent is not None]
            if deltas and cost.train_hours > 0:
                cost.delta_per_hour = sum(deltas) / len(deltas) / cost.train_hours


def _registered(con, name, table):
    from leaderboards._rows import registered

    return registered(con, name, table)


def _paired_pvalues(con, rows: list[tuple]) -> dict[tuple[str, str, str], float]:
    """Exact McNemar p for every (cell, reference cell, task) pair the board shows."""
    pairs = set()
    for r in rows:
        cell, task, base_cell, parent_cell = r[12], r[4], r[13], r[15]
        if base_cell:
            pairs.add((cell, base_cell, task))
        if parent_cell and r[18] != r[19]:
            pairs.add((cell, parent_cell, task))
    if not pairs:
        return {}
    cells, refs, tasks = zip(*sorted(pairs), strict=True)
    con.register("_pairs", pa.table({"cell": cells, "ref": refs, "task": tasks}))
    try:
        # Ingest caches the counts; a pair it has not seen is counted here (read-only).
        counts = con.execute(
            "SELECT q.cell, q.ref, q.task, c.n_shared, c.wins, c.losses FROM _pairs q "
            "JOIN paired_counts c USING (cell, ref, task)"
        ).fetchall()
        if len(counts) < len(pairs):
            counts += con.execute(
                pair_counts_sql(
                    "(SELECT * FROM _pairs EXCEPT SELECT cell, ref, task FROM paired_counts)"
                )
            ).fetchall()
    finally:
        con.unregister("_pairs")
    counts = [c for c in counts if c[3] > 0]  # no shared docs: no test
    if not counts:
        return {}
    pvals = mcnemar_exact_many([c[4] for c in counts], [c[5] for c in counts])
    return {(c[0], c[1], c[2]): float(p) for c, p in zip(counts, pvals, strict=True)}
