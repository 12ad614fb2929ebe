"""Rows of a local data file (.jsonl, .json, .csv, .parquet) as a list of dicts.

The one reader for training sets, task data and checked files. pyarrow is imported only
for .csv/.parquet, so reading JSON lines stays light. CSV values come typed (pyarrow's
inference: ``1`` is an int), the same as the parquet a CSV is often converted to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_core.errors import BenchError

__all__ = ["read_rows", "ROW_SUFFIXES"]

ROW_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _json_lines(path: Path, text: str, strict: bool) -> list[Any]:
    rows: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_object(path, f"line {number}", json.loads(line), strict))
        except json.JSONDecodeError as err:
            if strict:
                raise BenchError(f"{path}: line {number} is not JSON ({err.msg})") from None
            rows.append(None)
    return rows


def _object(path: Path, where: str, row: Any, strict: bool) -> Any:
    """A row is a JSON object (column -> value); anything else is a one-line error (or None)."""
    if isinstance(row, dict):
        return row
    if strict:
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
            type(row), "null"
        )
        raise BenchError(
            f"{path}: {where} is a JSON {kind}, not an object; "
            'write one {"column": value, ...} per row'
        )
    return None


def _reason(err: Exception) -> str:
    """pyarrow's message without the offending bytes it quotes (binary garbage in a terminal)."""
    return ": ".join(str(err).splitlines()[0].split(": ")[:2])[:160]


def _csv(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv

    # quoted cells may span lines (Corr2Cause premises do)
    options = pyarrow.csv.ParseOptions(newlines_in_values=True)
    try:
        return pyarrow.csv.read_csv(path, parse_options=options).to_pylist()
    except pa.ArrowInvalid as err:
        if "straddl" not in str(err):
            raise BenchError(f"{path}: not a readable CSV ({_reason(err)})") from None
    # a value longer than pyarrow's 1 MB block: read the file as one block
    read = pyarrow.csv.ReadOptions(
        block_size=max(1 << 20, min(path.stat().st_size + 1, 1 << 31 - 1))
    )
    try:
        return pyarrow.csv.read_csv(path, read_options=read, parse_options=options).to_pylist()
    except pa.ArrowInvalid as err:
        raise BenchError(f"{path}: not a readable CSV ({_reason(err)})") from None


def read_rows(path: str | Path, *, strict: bool = True) -> list[Any]:
    """The rows of ``path``; BenchError (one line) for a missing file or an unknown suffix.

    A ``.json`` file holds a list of rows, or JSON lines (released datasets use both).
    ``strict=False`` keeps an unparseable JSON line as ``None`` so a checker can count it
    as a failure instead of stopping.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise BenchError(
                f"{path}: not UTF-8 text (byte {err.start}); a {suffix} file is JSON text"
            ) from None
        if suffix == ".jsonl":
            return _json_lines(path, text, strict)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _json_lines(path, text, strict)
        if not isinstance(data, list):
            raise BenchError(
                f"{path}: top level is not a list of rows; give a JSON list or JSON lines"
            )
        return [_object(path, f"row {i}", row, strict) for i, row in enumerate(data)]
    if suffix == ".csv":
        return _csv(path)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet

        try:
            return pyarrow.parquet.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as err:
            raise BenchError(f"{path}: not a readable Parquet file ({_reason(err)})") from None
    raise BenchError(f"{path}: unsupported file type {suffix!r}; use {', '.join(ROW_SUFFIXES)}")
