"""Rows of a local data file (.jsonl, .json, .csv, .parquet) as a list of dicts.

The one reader for training sets, task data and checked files. pyarrow is imported only
for .csv/.parquet, so reading JSON lines stays light. CSV values come typed (pyarrow's
inference: ``1`` is an int), the same as the parquet a CSV is often converted to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_rows", "ROW_SUFFIXES"]

ROW_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _json_lines(path: Path, text: str, strict: bool) -> list[Any]:
    rows: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if strict:
                raise ValueError(f"{path}: line {number} is not JSON ({err.msg})") from None
            rows.append(None)
    return rows


def read_rows(path: str | Path, *, strict: bool = True) -> list[Any]:
    """The rows of ``path``; ValueError (one line) for a missing file or an unknown suffix.

    A ``.json`` file holds a list of rows, or JSON lines (released datasets use both).
    ``strict=False`` keeps an unparseable JSON line as ``None`` so a checker can count it
    as a failure instead of stopping.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".jsonl":
            return _json_lines(path, text, strict)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _json_lines(path, text, strict)
        if not isinstance(data, list):
            raise ValueError(f"{path}: top level is not a list of rows; give a JSON list or JSON lines")
        return data
    if suffix == ".csv":
        import pyarrow.csv

        # quoted cells may span lines (Corr2Cause premises do)
        options = pyarrow.csv.ParseOptions(newlines_in_values=True)
        return pyarrow.csv.read_csv(path, parse_options=options).to_pylist()
    if suffix == ".parquet":
        import pyarrow.parquet

        return pyarrow.parquet.read_table(path).to_pylist()
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use {', '.join(ROW_SUFFIXES)}")
