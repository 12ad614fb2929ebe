"""What each stage of a lineage wrote, doc by doc (``bench samples CELL``, the board's sample pages).

For an eval cell and a task, the lineage is the cell and its parent rows on the same board
column (``leaderboard_long.parent_cell``), root first. Each doc shows the prompt, every
stage's completion, parsed answer and verdict, and whether the completion hit the token cap
(truncated) or ends in a degenerate loop. A doc *flipped* when the cell's verdict differs from
its parent's: wrong → right (a win) or right → wrong (a loss). Over the doc_ids both cells
share these are exactly the discordant pairs of the McNemar test the board marks with †.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from bench_core.errors import BenchError
from leaderboards.behavior import looping

__all__ = [
    "StageSample",
    "DocSamples",
    "TaskSamples",
    "resolve_eval_cell",
    "resolve_train_or_eval_cell",
    "lineage_samples",
    "to_rich",
    "to_dict",
]

WIN, LOSS = "wrong → right", "right → wrong"


@dataclass
class StageSample:
    completion: str | None
    answer: str | None
    correct: bool
    score: float
    truncated: bool | None
    looping: bool
    gen_tokens: int | None


@dataclass
class DocSamples:
    doc_id: int
    prompt: str
    target: str | None
    by_stage: list[StageSample | None]  # aligned with TaskSamples.stages; None: not evaluated
    flip: str | None = None  # WIN or LOSS vs the parent stage


@dataclass
class TaskSamples:
    cell_key: str
    task: str
    stages: list[tuple[str, str]]  # (stage, eval cell key), root first; the last is the cell
    docs: list[DocSamples] = field(default_factory=list)
    wins: int = 0  # wrong → right vs the parent, over shared docs
    losses: int = 0

    @property
    def parent(self) -> str | None:
        return self.stages[-2][1] if len(self.stages) > 1 else None


def prompt_text(prompt: str | None) -> str:
    """The prompt as the model saw it: lm-eval's arguments are stored as JSON ``[context, {gen
    kwargs}]``; anything else is shown as is."""
    if not prompt:
        return ""
    try:
        args = json.loads(prompt)
    except ValueError:
        return prompt
    if isinstance(args, list) and args and isinstance(args[0], str):
        return args[0]
    return prompt


def resolve_eval_cell(con, prefix: str) -> str:
    """An eval cell key from a unique prefix of an eval or a train cell key (a train cell names
    the eval cell of its weights)."""
    rows = con.execute(
        "SELECT DISTINCT cell_key FROM records WHERE kind = 'eval' AND starts_with(cell_key, $p) "
        "UNION SELECT DISTINCT cell_key FROM records WHERE kind = 'eval' AND parent_key IN "
        "(SELECT cell_key FROM records WHERE kind = 'train' AND starts_with(cell_key, $p))",
        {"p": prefix},
    ).fetchall()
    keys = sorted(k for (k,) in rows)
    if prefix in keys:
        return prefix
    if not keys:
        raise BenchError(
            f"no eval or train cell key starts with '{prefix}'; "
            "`bench leaderboard --format json` lists cell keys"
        )
    if len(keys) > 1:
        raise BenchError(
            f"cell '{prefix}' is ambiguous ({len(keys)} matches); give more of the key"
        )
    return keys[0]


def resolve_train_or_eval_cell(con, prefix: str) -> str:
    """A train or eval cell key from a unique prefix (``bench curves`` takes either)."""
    keys = sorted(
        k
        for (k,) in con.execute(
            "SELECT DISTINCT cell_key FROM records WHERE starts_with(cell_key, ?)", [prefix]
        ).fetchall()
    )
    if prefix in keys:
        return prefix
    if len(keys) != 1:
        raise BenchError(
            f"cell '{prefix}' is ambiguous ({len(keys)} matches); give more of the key"
            if keys
            else f"no cell key starts with '{prefix}'; `bench leaderboard --format json` lists them"
        )
    return keys[0]


def lineage_parents(con) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(cell, task) -> (stage, parent cell) for every board cell: one query of the board view."""
    return {
        (k, t): (st, p)
        for k, t, st, p in con.execute(
            "SELECT cell_key, task, stage, parent_cell FROM leaderboard_long"
        ).fetchall()
    }


def _lineage(con, cell_key: str, task: str, parents=None) -> list[tuple[str, str]]:
    chain, key, seen = [], cell_key, set()
    while key and key not in seen:
        seen.add(key)
        if parents is not None:
            got = [parents[(key, task)]] if (key, task) in parents else []
        else:
            got = con.execute(
                "SELECT stage, parent_cell FROM leaderboard_long WHERE cell_key = ? AND task = ? "
                "LIMIT 1",
                [key, task],
            ).fetchall()
        if not got:
            break
        chain.append((got[0][0], key))
        key = got[0][1]
    return chain[::-1]


def lineage_samples(
    con,
    cell: str,
    task: str | None = None,
    *,
    flipped: bool = False,
    doc: int | None = None,
    parents: dict | None = None,
) -> list[TaskSamples]:
    """Per task of the cell (or only ``task``): its lineage's samples, doc by doc. ``parents``
    (:func:`lineage_parents`) saves a query of the board view per stage when many are shown."""
    key = cell if parents is not None else resolve_eval_cell(con, cell)
    tasks = [
        t
        for (t,) in con.execute(
            "SELECT DISTINCT task FROM samples WHERE cell_key = ? ORDER BY task", [key]
        ).fetchall()
    ]
    if task is not None:
        if task not in tasks:
            raise BenchError(
                f"cell {key[:12]} has no samples of task '{task}'; it has: {', '.join(tasks) or 'none'}"
            )
        tasks = [task]
    return [_task_samples(con, key, t, flipped, doc, parents) for t in tasks]


def _task_samples(con, key, task, flipped, doc, parents=None) -> TaskSamples:
    stages = _lineage(con, key, task, parents) or [("?", key)]
    out = TaskSamples(key, task, stages)
    index = {k: i for i, (_, k) in enumerate(stages)}
    # cell_key IN (?, ...), not list_contains: DuckDB prunes row groups on a plain IN list
    rows = con.execute(
        "SELECT cell_key, doc_id, prompt, target, completion, answer, correct, score, truncated, "
        f"gen_tokens FROM samples WHERE task = ? AND cell_key IN ({', '.join('?' * len(index))}) "
        "ORDER BY doc_id",
        [task, *index],
    ).fetchall()
    docs: dict[int, DocSamples] = {}
    for ck, doc_id, prompt, target, completion, answer, correct, score, trunc, ntok in rows:
        d = docs.get(doc_id)
        if d is None:
            d = docs[doc_id] = DocSamples(doc_id, "", target, [None] * len(stages))
        if ck == key or not d.prompt:
            d.prompt, d.target = prompt_text(prompt), target
        d.by_stage[index[ck]] = StageSample(
            completion, answer, bool(correct), score, trunc, looping(completion), ntok
        )
    for d in docs.values():
        own = d.by_stage[-1]
        par = d.by_stage[-2] if len(stages) > 1 else None
        if own is not None and par is not None and own.correct != par.correct:
            d.flip = WIN if own.correct else LOSS
            out.wins += own.correct
            out.losses += not own.correct
    out.docs = [
        d
        for d in docs.values()
        if d.by_stage[-1] is not None
        and (not flipped or d.flip)
        and (doc is None or d.doc_id == doc)
    ]
    return out


def _flags(s: StageSample) -> str:
    return " ".join(f for f, on in (("truncated", s.truncated), ("looping", s.looping)) if on)


def to_rich(samples: list[TaskSamples], max_chars: int = 600):
    """Renderables for the terminal: per doc a table, one column per lineage stage."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = []
    for ts in samples:
        head = f"{ts.task} · {' → '.join(s for s, _ in ts.stages)} · {len(ts.docs)} doc(s)"
        if ts.parent:
            head += f" · vs parent: {ts.wins} {WIN}, {ts.losses} {LOSS}"
        parts.append(Text(head, style="bold"))
        for d in ts.docs:
            title = f"doc {d.doc_id}" + (f"  [{d.flip}]" if d.flip else "")
            table = Table(title=Text(title), title_justify="left", show_lines=True, expand=True)
            table.add_column("", style="dim", no_wrap=True)
            for stage, key in ts.stages:
                table.add_column(Text(f"{stage} ({key[:8]})"), overflow="fold")
            table.add_row("prompt", Text(_clip(d.prompt, max_chars)), *[""] * (len(ts.stages) - 1))
            table.add_row("target", Text(d.target or "—"), *[""] * (len(ts.stages) - 1))
            cells = [s or None for s in d.by_stage]
            table.add_row(
                "completion",
                *(Text(_clip(s.completion or "", max_chars)) if s else "—" for s in cells),
            )
            table.add_row("answer", *(Text(str(s.answer)) if s else "—" for s in cells))
            table.add_row(
                "verdict",
                *(
                    Text(
                        "✓ right" if s.correct else "✗ wrong", style="green" if s.correct else "red"
                    )
                    if s
                    else "—"
                    for s in cells
                ),
            )
            table.add_row("flags", *(Text(_flags(s)) if s else "—" for s in cells))
            parts.append(table)
    return Group(*parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"… (+{len(text) - n} chars)"


def to_dict(ts: TaskSamples) -> dict:
    """What a sample page embeds (and ``bench samples --json`` prints)."""
    return {
        "cell_key": ts.cell_key,
        "task": ts.task,
        "stages": [{"stage": s, "cell_key": k} for s, k in ts.stages],
        "wins": ts.wins,
        "losses": ts.losses,
        "docs": [
            {
                "doc_id": d.doc_id,
                "prompt": d.prompt,
                "target": d.target,
                "flip": d.flip,
                "by_stage": [
                    None
                    if s is None
                    else {
                        "completion": s.completion,
                        "answer": s.answer,
                        "correct": s.correct,
                        "truncated": bool(s.truncated),
                        "looping": s.looping,
                    }
                    for s in d.by_stage
                ],
            }
            for d in ts.docs
        ],
    }
