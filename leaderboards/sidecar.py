"""The files a cell writes beside its run record, typed and versioned like the record.

- :class:`FailureRecord`: ``results/failures/<kind>-<key>.json``, written when a cell fails
  (removed when it later succeeds). Ingest loads these into the store's ``failures`` table, so
  the board lists every failed cell beside the finished ones; ``bench grid show`` reads them
  for its ``failed`` status.
- :class:`StageCell`: ``results/checkpoints/<key>/cell.json``, which grid cell trained a stage
  (``bench eval --checkpoint`` names its row with it).

Each has a ``version``; a file of an older version loads through the ``_UPGRADES`` steps (the
first files had no version field: version 1), and a parse error is one ValueError naming the
field, as for records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench_core.errors import BenchError
from bench_core.names import check_cell_key, strip_control

__all__ = [
    "FAILURE_VERSION",
    "FailureRecord",
    "parse_failure",
    "read_failure",
    "STAGE_CELL_VERSION",
    "StageCell",
    "read_stage_cell",
]

FAILURE_VERSION = 2
STAGE_CELL_VERSION = 1


class FailureRecord(BaseModel):
    """A cell that failed: which one, why (one line) and the traceback being handled."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[2] = FAILURE_VERSION
    kind: Literal["train", "eval"]
    cell_key: str
    model_id: str
    stage: str
    error: str  # one line: the exception type and message, or 'disk full ...'
    traceback: str | None = None  # None: left out so the file fit on a full disk
    at: datetime | None = None

    @property
    def cell(self) -> str:
        """The cell as the CLI names it: model/stage."""
        return f"{self.model_id}/{self.stage}"

    @property
    def first_line(self) -> str:
        return (self.error.splitlines() or ["(no error text)"])[0]

    _key = field_validator("cell_key")(lambda v: check_cell_key(v))
    _text = field_validator("model_id", "stage")(lambda v: strip_control(v))


def _failure_v1_to_v2(data: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """Version 1 (no version field): ``cell`` (model/stage), ``key``, ``error``, and when the disk
    had room ``traceback`` and ``at``; its kind was only in the file name."""
    if not isinstance(data.get("cell"), str) or "/" not in data["cell"]:
        raise BenchError("field 'cell': a version 1 failure file names its cell model/stage")
    model, stage = data["cell"].rsplit("/", 1)
    out = {k: v for k, v in data.items() if k not in ("cell", "key")}
    return {
        **out,
        "version": 2,
        "kind": kind,
        "cell_key": data.get("key"),
        "model_id": model,
        "stage": stage,
    }


_FAILURE_UPGRADES: dict[int, Callable[[dict[str, Any], str | None], dict[str, Any]]] = {
    1: _failure_v1_to_v2,
}  # each version adds one step here (never edit old steps)


def parse_failure(data: bytes | str, kind: str | None = None) -> FailureRecord:
    """A failure file's bytes as a :class:`FailureRecord`; ``kind`` (from the file name) is
    what a version 1 file needs. Anything else is a ValueError."""
    doc = _object(data, "failure file")
    while doc.get("version", 1) in _FAILURE_UPGRADES:
        doc = _FAILURE_UPGRADES[doc.get("version", 1)](doc, kind)
    return FailureRecord.model_validate(doc)


def read_failure(path: str | Path) -> FailureRecord:
    """``results/failures/<kind>-<key>.json`` (its kind read from the name for old files)."""
    path = Path(path)
    return parse_failure(path.read_bytes(), path.name.split("-", 1)[0])


class StageCell(BaseModel):
    """The grid cell that trained a stage, beside its ``manifest.json``."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = STAGE_CELL_VERSION
    cell_key: str
    grid: str | None = None
    model: str
    stage: str
    recipe: list[str] = Field(default_factory=list)
    parent_key: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)  # the key payload (harness.keys)

    _keys = field_validator("cell_key")(lambda v: check_cell_key(v))
    _parent = field_validator("parent_key")(lambda v: v if v is None else check_cell_key(v))
    _text = field_validator("model", "stage")(lambda v: strip_control(v))


_STAGE_CELL_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
# version 1 is the first (files without a version field are version 1)


def read_stage_cell(path: str | Path) -> StageCell:
    """A stage's ``cell.json``; a ValueError when it is not one."""
    doc = _object(Path(path).read_bytes(), "cell.json")
    while doc.get("version", 1) in _STAGE_CELL_UPGRADES:
        doc = _STAGE_CELL_UPGRADES[doc.get("version", 1)](doc)
    return StageCell.model_validate({"version": 1, **doc})


def _object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise BenchError(f"JSON nested too deeply; not a {what}") from None
    if not isinstance(doc, dict):
        raise BenchError(f"a {what} is a JSON object, not {type(doc).__name__}")
    return doc
