"""Where a cell stands, from what is on disk: done, failed before, changed input, or new.

``changed`` means an earlier record exists for the same (kind, model, stage) under another
key; the reason names the first field of the key payload that differs
(``distill.learning_rate 0.0002 -> 0.0001``), or the parent whose change moved this key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.keys import first_difference

__all__ = [
    "CellStatus",
    "Previous",
    "cell_status",
    "is_finished",
    "previous_records",
    "failure_path",
    "record_file",
]


def record_file(results_dir: Path, kind: str, key: str) -> Path:
    return Path(results_dir) / "records" / f"{kind}-{key}.json"


def failure_path(results_dir: Path, kind: str, key: str) -> Path:
    return Path(results_dir) / "failures" / f"{kind}-{key}.json"


@dataclass(frozen=True)
class CellStatus:
    status: str  # done | failed | changed | new
    why: str

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class Previous:
    key: str
    inputs: dict[str, Any]
    finished_at: datetime


def previous_records(results_dir: str | Path) -> dict[tuple[str, str, str], Previous]:
    """(kind, model, stage) -> the latest record's key and payload: to tell 'changed' from 'new'."""
    from leaderboards.record import RecordHead

    out: dict[tuple[str, str, str], Previous] = {}
    for path in sorted((Path(results_dir) / "records").glob("*.json")):
        try:
            head = RecordHead.read(path)
        except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
            continue
        ident, prev = (
            (head.kind, head.model_id, head.stage),
            Previous(head.cell_key, head.inputs, head.finished_at),
        )
        if ident not in out or prev.finished_at > out[ident].finished_at:
            out[ident] = prev
    return out


def _loads(path: Path) -> str | None:
    """None when the record loads, else why not (a corrupt record makes its cell run again)."""
    from leaderboards.record import load_record

    try:
        load_record(path)
    except Exception as e:  # noqa: BLE001 - any unreadable record means: not done
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:100]
    return None


def is_finished(cell, results_dir: str | Path) -> bool:
    """A record that loads, and for a train cell its checkpoint: what lets a runner skip a cell.

    The same test as :func:`cell_status`'s ``done``, so a cell planned to run again (a corrupt
    record, a deleted checkpoint) is not skipped at run time because its record file exists.
    """
    results_dir = Path(results_dir)
    record = record_file(results_dir, cell.kind, cell.key)
    if not record.exists() or _loads(record) is not None:
        return False
    return cell.kind != "train" or (_checkpoint_ok(cell, results_dir) is None)


def _checkpoint_ok(cell, results_dir: Path) -> str | None:
    """None when a train cell's checkpoint stands, else why it must train again."""
    own = results_dir / "checkpoints" / cell.key / "manifest.json"
    if not own.exists():
        return (
            f"its checkpoint is missing (results/checkpoints/{cell.key}); it will be trained again"
        )
    broken = _weights_broken(own.parent)
    if broken:
        return f"its checkpoint is damaged ({broken}); it will be trained again"
    parent = results_dir / "checkpoints" / str(cell.parent_key) / "manifest.json"
    # its adapter is relative to the parent's merged weights: a parent trained after it is other
    # weights. The manifests' own created_at, not file times, so a copied results/ stays done.
    if cell.parent_key and parent.exists() and _created(parent) > _created(own):
        return f"parent {cell.parent_stage} was trained again after it; it will be trained again"
    return None


def _weights_broken(stage: Path) -> str | None:
    """What is wrong with a finished stage's weights, read from headers only (no tensor is
    loaded): the manifest, and each safetensors file of the adapter or merged folder it names,
    whose header must parse and whose size must be what the header says."""
    from trainers.manifest import read_manifest

    try:
        manifest = read_manifest(stage)
    except (OSError, ValueError):
        return "manifest.json does not load"
    folders = [f for f in (manifest.adapter, manifest.merged) if f]
    for folder in folders:
        files = sorted((stage / str(folder)).glob("*.safetensors"))
        if not files:
            return f"{folder}/ holds no weights"
        for f in files:
            if not _safetensors_ok(f):
                return f"{folder}/{f.name} is cut off or corrupt"
    return None


def _safetensors_ok(path: Path) -> bool:
    """The format's own invariant: 8-byte header length, a JSON header, and data exactly as
    long as the largest end offset it lists."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return False
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        return 8 + n + max(ends, default=0) == size
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return False


def _created(manifest: Path) -> str:
    from trainers.manifest import read_manifest

    try:
        return read_manifest(manifest.parent).created_at
    except (OSError, ValueError):
        return ""


def cell_status(
    cell,
    results_dir: str | Path,
    previous: dict | None = None,
    parent_status: CellStatus | None = None,
) -> CellStatus:
    results_dir = Path(results_dir)
    record = record_file(results_dir, cell.kind, cell.key)
    if record.exists():
        broken = _loads(record)
        if broken is None:
            stale = _checkpoint_ok(cell, results_dir) if cell.kind == "train" else None
            if stale:
                return CellStatus("changed", stale)
            return CellStatus("done", "record exists")
        return CellStatus("new", f"its record does not load ({broken}); it will run again")
    failed = failure_path(results_dir, cell.kind, cell.key)
    if failed.exists():
        from leaderboards.sidecar import read_failure

        try:
            reason = read_failure(failed).first_line
        except (OSError, ValueError) as e:  # still failed: the file says so, not why
            reason = f"{failed.name} does not load ({str(e).splitlines()[0] if str(e) else e})"
        return CellStatus("failed", f"failed before: {reason}"[:160])
    previous = previous_records(results_dir) if previous is None else previous
    prev = previous.get((cell.kind, cell.model, cell.stage))
    if prev is None:
        return CellStatus("new", "no record yet")
    if parent_status is not None and parent_status.status == "changed":
        what = "parent" if cell.kind == "train" else "stage"
        return CellStatus("changed", f"{what} changed: {parent_status.why}")
    if not prev.inputs:
        return CellStatus(
            "changed", f"input changed since record {prev.key} (it predates stored key inputs)"
        )
    return CellStatus(
        "changed",
        first_difference(prev.inputs, cell.inputs) or f"key changed since record {prev.key}",
    )
