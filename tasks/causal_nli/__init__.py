"""causal_nli: Corr2Cause-format causal inference from (in)dependence statements.

A symbolic oracle (premise -> Markov equivalence class -> does the hypothesis hold in
every member?) labels generated problems and audits real Corr2Cause files; the verifier
reads a valid/invalid verdict out of model output for lm-eval metrics and RL rewards.
A trainable family of ``tasks.FAMILIES``: the training side (source ``causal``, the teacher)
is :mod:`tasks.causal_nli.train`.
"""

from tasks.causal_nli.check import check_file
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
from tasks.causal_nli.train import SOURCES, held_out, prompts, teacher
from tasks.causal_nli.verifier import (
    VERSION,
    breakdown,
    f1_valid,
    normalize_label,
    parse_answer,
    verify,
)

__all__ = [
    "VERSION",
    "verify",
    "sample_fields",
    "held_out",
    "check_file",
    "SOURCES",
    "prompts",
    "teacher",
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
    "write_csv",
]


def sample_fields(doc: dict, completion: str) -> dict:
    """The harness's fields of one sample (``tasks.causal_nli.utils.sample_fields``). The lm-eval
    hooks module binds the verifier when it is imported, on first use here as in lm-eval."""
    from tasks.causal_nli import utils

    return utils.sample_fields(doc, completion)
