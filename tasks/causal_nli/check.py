"""``bench tasks check causal_nli --data FILE``: the oracle against a file's gold labels.

Reads the released layout (CSV or JSON lines with ``input`` and ``label``; ``template``
and ``num_variables`` are shown when present). A row that does not parse, or whose
premise no DAG satisfies, is a failure: counted in ``n`` and ``failures``, never a crash.
Each disagreement carries the equivalence class that decides it and a diagnosis: when
replaying the original generator reproduces the file's label, the label is that
generator's error (see ``_replay``), otherwise it is unexplained and worth reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_core.errors import BenchError
from bench_core.rows import read_rows as read_file
from tasks.causal_nli._replay import original_label
from tasks.causal_nli.language import parse_input
from tasks.causal_nli.oracle import dag_text, entailed, equivalence_class
from tasks.causal_nli.verifier import normalize_label
from tasks.scoring import CheckReport

__all__ = ["REQUIRED", "read_rows", "check_file", "format_disagreement"]

REQUIRED = ("input", "label")
GENERATOR_ERROR = (
    "label error: replaying the original generator (with its defects) gives this label"
)
UNEXPLAINED = "unexplained: not reproduced by the original generator either"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON-lines file; a missing column is a one-line BenchError."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(
            f"{path}: no such file; pass a Corr2Cause CSV/JSONL with columns input,label"
        )
    rows = read_file(path)
    columns = set(rows[0]) if rows else set()
    for column in REQUIRED:
        if column not in columns:
            raise BenchError(
                f"{path}: missing column '{column}'; a Corr2Cause file needs columns input,label "
                f"(input = 'Premise: ...\\nHypothesis: ...', label 1 = valid)"
            )
    return rows


def _judge(index: int, row: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(agrees, disagreement or failure record); ``row`` is the 0-based data row."""
    base = {
        "row": index,
        "template": row.get("template"),
        "num_variables": row.get("num_variables"),
    }
    try:
        gold = normalize_label(row.get("label")) == "valid"
        premise, hypothesis = parse_input(str(row.get("input") or ""))
        oracle = entailed(premise, hypothesis)
    except ValueError as err:  # ParseError, InconsistentPremise and bad labels are all ValueErrors
        return False, {**base, "error": str(err), "input": str(row.get("input"))[:300]}
    if oracle == gold:
        return True, None
    head, _, hypothesis_text = str(row["input"]).rpartition("Hypothesis:")
    replay = original_label(premise, hypothesis)
    return False, {
        **base,
        "hypothesis": hypothesis_text.strip(),
        "premise": head.strip().removeprefix("Premise:").strip(),
        "gold": int(gold),
        "oracle": int(oracle),
        "diagnosis": GENERATOR_ERROR if replay == gold else UNEXPLAINED,
        "class": [dag_text(d) for d in equivalence_class(premise)],
    }


def format_disagreement(d: dict[str, Any]) -> str:
    head = f"row {d['row']} [{d.get('template')}, N={d.get('num_variables')}]"
    if "error" in d:
        return f"{head} FAILED: {d['error']}"
    lines = [
        f"{head} gold={'valid' if d['gold'] else 'invalid'} oracle={'valid' if d['oracle'] else 'invalid'}",
        f"  hypothesis: {d['hypothesis']}",
        f"  premise: {d['premise']}",
        f"  {d['diagnosis']}",
        f"  equivalence class ({len(d['class'])} DAGs):",
        *(f"    {g}" for g in d["class"]),
    ]
    return "\n".join(lines)


def check_file(path: str | Path, show: bool = False) -> CheckReport:
    """Oracle vs the file's labels; with ``show``, print every disagreement and failure."""
    rows = read_rows(path)
    report = CheckReport(task="causal_nli", source=str(path), disagreements=[])
    for index, row in enumerate(rows):
        agrees, record = _judge(index, row)
        report.n += 1
        report.agree += agrees
        if record is not None:
            report.failures += "error" in record
            report.disagreements.append(record)
            if show:
                print(format_disagreement(record))
    return report
