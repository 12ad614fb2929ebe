"""What a re-scoring changed (``bench leaderboard --diff-scorer``): read from the records only.

A re-scored record names the record whose completions it scored again (``rescored_from``).
The *old* board is every eval record that is not a re-scoring; the *new* board swaps each
re-scored record for its re-scoring. Between the two: per-sample flips of correctness (with
the parsed answers), cells whose rank in a task column moved, and significance marks against
the base / parent row (exact McNemar, the board's own test) that appeared or vanished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leaderboards.board import SIG_BASE, SIG_PARENT
from leaderboards.record import RunRecord, read_records, record_path
from leaderboards.samples import read_samples, resolve_samples_file
from leaderboards.stats import mcnemar

__all__ = ["SampleFlip", "RankChange", "MarkChange", "ScorerDiff", "scorer_diff"]


@dataclass(frozen=True)
class SampleFlip:
    cell: str
    task: str
    doc_id: int
    old_answer: str | None
    new_answer: str | None
    now_correct: bool


@dataclass(frozen=True)
class RankChange:
    cell: str
    task: str
    old_rank: int
    new_rank: int
    old_value: float
    new_value: float


@dataclass(frozen=True)
class MarkChange:
    cell: str
    task: str
    mark: str  # SIG_BASE or SIG_PARENT
    appeared: bool
    p_old: float | None
    p_new: float | None


@dataclass
class ScorerDiff:
    pairs: list[tuple[str, str]]  # (old key, new key)
    flips: list[SampleFlip] = field(default_factory=list)
    ranks: list[RankChange] = field(default_factory=list)
    marks: list[MarkChange] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"{len(self.pairs)} re-scored records; {len(self.flips)} flipped samples, "
            f"{len(self.ranks)} rank changes, {len(self.marks)} significance marks changed"
        ]
        lines += [
            f"flip {f.cell} {f.task} doc {f.doc_id}: {f.old_answer!r} -> {f.new_answer!r} "
            f"(now {'right' if f.now_correct else 'wrong'})"
            for f in self.flips
        ]
        lines += [
            f"rank {r.cell} {r.task}: {r.old_rank} -> {r.new_rank} ({r.old_value:.4f} -> {r.new_value:.4f})"
            for r in self.ranks
        ]
        lines += [
            f"mark {m.mark} {m.cell} {m.task}: {'appeared' if m.appeared else 'vanished'} "
            f"(p {_p(m.p_old)} -> {_p(m.p_new)})"
            for m in self.marks
        ]
        return "\n".join(lines)


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _label(rec: RunRecord) -> str:
    return f"{rec.model_id}/{rec.stage}"


def _correct(results_dir: Path, rec: RunRecord, task: str) -> dict[int, dict]:
    t = next((t for t in rec.tasks if t.name == task), None)
    path = (
        resolve_samples_file(results_dir, record_path(results_dir, rec), t.samples_file)
        if t and t.samples_file
        else None
    )
    if path is None:
        return {}
    return {r["doc_id"]: r for r in read_samples(path).to_pylist() if not r.get("repeat")}


def _values(world: list[RunRecord]) -> dict[str, dict[str, float]]:
    """task -> cell label -> primary value."""
    out: dict[str, dict[str, float]] = {}
    for rec in world:
        for t in rec.tasks:
            if t.primary_metric in t.metrics:
                out.setdefault(t.name, {})[_label(rec)] = t.metrics[t.primary_metric].value
    return out


def _ranks(values: dict[str, float]) -> dict[str, int]:
    order = sorted(values, key=lambda c: (-values[c], c))
    return {c: i + 1 for i, c in enumerate(order)}


def _marks(
    results_dir: Path, world: list[RunRecord], alpha: float
) -> dict[tuple[str, str, str], float]:
    """(cell, task, mark) -> p for each cell vs its base (*) and its parent (†) row."""
    by_weights = {r.weights_key: r for r in world if r.weights_key}
    out = {}
    for rec in world:
        for mark, ref_key in ((SIG_BASE, rec.base_weights), (SIG_PARENT, rec.parent_weights)):
            ref = by_weights.get(ref_key or "")
            if (
                ref is None
                or ref is rec
                or (mark == SIG_PARENT and rec.parent_weights == rec.base_weights)
            ):
                continue
            for t in rec.tasks:
                a, b = _correct(results_dir, ref, t.name), _correct(results_dir, rec, t.name)
                shared = sorted(set(a) & set(b))
                if shared:
                    p = mcnemar(
                        [a[d]["correct"] for d in shared], [b[d]["correct"] for d in shared]
                    ).p_value
                    out[(_label(rec), t.name, mark)] = p
    return out


def _merged(old: RunRecord, new: RunRecord) -> RunRecord:
    rescored = {t.name for t in new.tasks}
    return new.model_copy(
        update={"tasks": [*new.tasks, *(t for t in old.tasks if t.name not in rescored)]}
    )


def scorer_diff(results_dir: str | Path, alpha: float = 0.05) -> ScorerDiff:
    results_dir = Path(results_dir)
    paths = sorted((results_dir / "records").glob("eval-*.json"))
    records = [rec for _, rec in read_records(paths)]
    by_key = {r.cell_key: r for r in records}
    new_of = {r.rescored_from: r for r in records if r.rescored_from in by_key}
    old_world = [r for r in records if r.rescored_from is None]
    # A re-scoring holds only the re-scored tasks: the other tasks of its cell stand as they were.
    new_world = [_merged(r, new_of[r.cell_key]) if r.cell_key in new_of else r for r in old_world]
    diff = ScorerDiff([(k, r.cell_key) for k, r in new_of.items()])
    for old_key, new in new_of.items():
        old = by_key[old_key]
        for t in new.tasks:
            a, b = _correct(results_dir, old, t.name), _correct(results_dir, new, t.name)
            diff.flips += [
                SampleFlip(
                    _label(new), t.name, d, a[d]["answer"], b[d]["answer"], bool(b[d]["correct"])
                )
                for d in sorted(set(a) & set(b))
                if bool(a[d]["correct"]) != bool(b[d]["correct"])
            ]
    old_values, new_values = _values(old_world), _values(new_world)
    for task in sorted(set(old_values) & set(new_values)):
        ro, rn = _ranks(old_values[task]), _ranks(new_values[task])
        diff.ranks += [
            RankChange(c, task, ro[c], rn[c], old_values[task][c], new_values[task][c])
            for c in sorted(set(ro) & set(rn))
            if ro[c] != rn[c]
        ]
    mo, mn = _marks(results_dir, old_world, alpha), _marks(results_dir, new_world, alpha)
    for key in sorted(set(mo) | set(mn)):
        was, now = mo.get(key), mn.get(key)
        sig_was, sig_now = was is not None and was < alpha, now is not None and now < alpha
        if sig_was != sig_now:
            diff.marks.append(MarkChange(key[0], key[1], key[2], sig_now, was, now))
    return diff
