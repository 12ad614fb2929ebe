"""Does `bench ci check` catch a silent regression? A planted verifier change on a real fresh run.

Takes a results dir from `bench ci check` / `bench ci update` (the regression grid, greedy), plants
a verifier bug (``--plant causal``: causal_nli rejects every "valid" verdict, flipping exactly the
docs whose right answer was "valid"; ``math``: the math verifier rejects every answer; ``both``),
re-scores the stored completions with it and compares them with the
baselines as a fresh run would be compared: the key inputs are left as they were, since a silent
bug moves no version. Greedy generation does not depend on the verifier, so this equals running
the grid again with the bug, at the cost of re-scoring. Prints the check's table and the flips,
and writes them to ci/perf/RESULTS.md.

    python ci/perf/planted_regression.py --results results/ci [--baselines ci/baselines] [--plant both]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def plant(which: str) -> None:
    """Patch the verifiers before the task hooks import them (they bind them at import), and
    their families' exports (tasks.FAMILIES: keys read a family's VERSION)."""
    import tasks.causal_nli
    import tasks.math
    from tasks.scoring import Score

    if which in (
        "causal",
        "both",
    ):  # every "valid" verdict rejected: flips the docs whose answer was valid
        import tasks.causal_nli.verifier as causal

        real_causal = causal.verify

        def buggy_causal(completion, reference):
            score = real_causal(completion, reference)
            return Score(0.0, score.answer, "planted") if score.answer == "valid" else score

        causal.verify, causal.VERSION = buggy_causal, "1-planted"
        tasks.causal_nli.verify, tasks.causal_nli.VERSION = buggy_causal, "1-planted"
    if which in ("math", "both"):  # every number rejected: flips every right math answer
        import tasks.math.verifier as math

        real_math = math.verify

        def buggy_math(completion, reference):
            return Score(0.0, real_math(completion, reference).answer, "planted")

        math.verify, math.VERSION = buggy_math, "1-planted"
        tasks.math.verify, tasks.math.VERSION = buggy_math, "1-planted"
    # The VERSION moves only so that bench rescore re-scores; the key inputs are restored below.


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, default=Path("results/ci"))
    ap.add_argument("--baselines", type=Path, default=None)
    ap.add_argument("--plant", choices=("causal", "math", "both"), default="both")
    args = ap.parse_args()
    plant(args.plant)
    from _results import Printed  # ci/perf/_results.py, beside this script

    from harness.regression import (
        BASELINES_DIR,
        POOLED,
        check_records,
        eval_records,
        load_baselines,
    )
    from harness.rescore import rescore_record
    from leaderboards.record import write_record

    work = Path(tempfile.mkdtemp(prefix="planted-"))
    shutil.copytree(args.results / "records", work / "records")
    shutil.copytree(args.results / "samples", work / "samples")
    fresh = []
    out = Printed()
    for record in eval_records(work):
        done = rescore_record(record, work)
        new = next(r for r in eval_records(work) if r.cell_key == done.new_key) if done else record
        silent = new.model_copy(update={"inputs": record.inputs, "rescored_from": None})
        write_record(silent, work)  # same key inputs as the baseline: a silent change
        fresh.append(silent)
        out.say(
            f"{record.model_id}: re-scored {done.rows if done else 0} rows with the planted verifier, "
            f"{done.flips if done else 0} flipped"
        )
    report = check_records(fresh, work, load_baselines(args.baselines or BASELINES_DIR))
    for c in report.checks:
        out.say(
            f"{c.cell:30} {c.task:22} n={c.n:3} {c.old_mean:.3f} -> {c.new_mean:.3f} lost={c.losses} "
            f"won={c.gains} p={c.p_value:.3g} {c.status}"
        )
        for f in c.flips:
            out.say(f"    flip doc {f.doc_id}: {f.old_answer!r} -> {f.new_answer!r}")
    caught = report.regressions
    out.say(
        f"caught: {bool(caught)} ({', '.join(f'{c.cell} {c.task}' for c in caught) or 'nothing'}); "
        f"pooled rows: {[(c.cell, c.losses, round(c.p_value, 5)) for c in report.checks if c.task == POOLED]}"
    )
    out.record(__file__, sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
