"""``bench tasks check math FILE``: the verifier judges each reference solution.

GSM8K rows (``question``, ``answer`` ending ``#### N``): the completion is the solution
text and the gold is the ``####`` number. MATH rows (``problem``, ``solution``,
``answer``): the solution's last ``\\boxed{}`` against ``answer``. Agreement 1.0 means
the extractor and math-verify read every reference solution as its own gold answer.

A row that cannot be parsed (bad JSON, not an object, no ``####``) is a counted
failure; a row without a required field stops the check with one line naming the
file, the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_core.errors import BenchError
from bench_core.rows import read_rows
from tasks.math.verifier import verify
from tasks.scoring import CheckReport

__all__ = ["check_file"]

_FORMATS = {"gsm8k": ("question", "answer"), "math": ("problem", "solution", "answer")}
_FIX = "GSM8K rows need question and answer (ending '#### N'); MATH rows need problem, solution and answer"


def _format_of(rows: list[Any], path: Path) -> str:
    first = next((r for r in rows if isinstance(r, dict)), None)
    if first is None:
        raise BenchError(f"{path}: no JSON object rows; {_FIX}")
    if "problem" in first or "solution" in first:
        return "math"
    return "gsm8k"


def _pair(row: dict, fmt: str) -> tuple[str, str]:
    """(completion, gold) of a row; ValueError when the gold cannot be read."""
    if fmt == "gsm8k":
        answer = str(row["answer"])
        if "####" not in answer:
            raise ValueError("answer has no '#### N' line")
        gold = answer.rsplit("####", 1)[1].strip()
    else:
        answer, gold = str(row["solution"]), str(row["answer"]).strip()
    if not gold:
        raise ValueError("empty gold answer")
    return answer, gold


def check_file(path: str | Path, show: bool = False) -> CheckReport:
    """Judge every reference solution of a GSM8K or MATH file against its gold answer."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: no such file; give the path of a GSM8K or MATH .jsonl")
    rows = read_rows(path, strict=False)  # a line that is not JSON is None: a counted failure
    fmt = _format_of(rows, path)
    report = CheckReport(task="math", source=str(path), disagreements=[])
    for i, row in enumerate(rows, 1):
        report.n += 1
        if not isinstance(row, dict):
            report.failures += 1
            report.disagreements.append({"row": i, "reason": "not a JSON object"})
            continue
        missing = [f for f in _FORMATS[fmt] if f not in row]
        if missing:
            raise BenchError(f"{path}: row {i} has no field '{missing[0]}'; {_FIX}")
        try:
            completion, gold = _pair(row, fmt)
        except ValueError as err:
            report.failures += 1
            report.disagreements.append({"row": i, "reason": str(err)})
            continue
        score = verify(completion, gold)
        if score.value == 1.0:
            report.agree += 1
        else:
            report.disagreements.append(
                {"row": i, "gold": gold, "parsed": score.answer, "reason": score.reason}
            )
    if show:
        for d in report.disagreements:
            print(json.dumps(d, ensure_ascii=False))
    return report
