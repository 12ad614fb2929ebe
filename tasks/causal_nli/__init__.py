"""causal_nli: Corr2Cause-format causal inference from (in)dependence statements.

A symbolic oracle (premise -> Markov equivalence class -> does the hypothesis hold in
every member?) labels generated problems and audits real Corr2Cause files; the verifier
reads a valid/invalid verdict out of model output for lm-eval metrics and RL rewards.
"""

from tasks.causal_nli.generator import generate, write_csv
from tasks.causal_nli.language import (
    KINDS,
    Hypothesis,
    ParseError,
    Premise,
    parse_hypothesis,
    parse_input,
    parse_premise,
)
from tasks.causal_nli.oracle import (
    InconsistentPremise,
    entailed,
    equivalence_class,
    holds,
    label_input,
)
from tasks.causal_nli.verifier import breakdown, f1_valid, normalize_label, parse_answer, verify

__all__ = [
    "KINDS",
    "Hypothesis",
    "InconsistentPremise",
    "ParseError",
    "Premise",
    "breakdown",
    "entailed",
    "equivalence_class",
    "f1_valid",
    "generate",
    "holds",
    "label_input",
    "normalize_label",
    "parse_answer",
    "parse_hypothesis",
    "parse_input",
    "parse_premise",
    "verify",
    "write_csv",
]
