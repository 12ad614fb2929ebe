"""The ``math`` task: GSM8K and generated arithmetic, answers compared with math-verify.

lm-eval tasks (this folder is part of the ``tasks/`` include_path): ``math_gsm8k``,
``math_arith`` and the group ``math``. A trainable family of ``tasks.FAMILIES``: the
training side (sources ``arithmetic`` and ``gsm8k``, the teacher) is :mod:`tasks.math.train`.
Importing this package stays light: sympy and math-verify load on the first comparison that
needs them.
"""

from tasks.math.check import check_file
from tasks.math.extract import extract_answer, reference_answer, strip_think
from tasks.math.generate import LEVELS, generate, make_item, test_seed, think_trace
from tasks.math.gsm8k import data_dir, gsm8k_gold, gsm8k_solution, gsm8k_think_trace, load_gsm8k
from tasks.math.train import SOURCES, held_out, prompts, teacher, test_questions
from tasks.math.verifier import VERSION, equivalent, reward, verify

__all__ = [
    "VERSION",
    "verify",
    "sample_fields",
    "held_out",
    "check_file",
    "SOURCES",
    "prompts",
    "teacher",
    "reward",
    "equivalent",
    "extract_answer",
    "reference_answer",
    "strip_think",
    "LEVELS",
    "generate",
    "make_item",
    "think_trace",
    "data_dir",
    "load_gsm8k",
    "gsm8k_gold",
    "gsm8k_solution",
    "gsm8k_think_trace",
    "test_seed",
    "test_questions",
]


def sample_fields(doc: dict, completion: str) -> dict:
    """The harness's fields of one sample (``tasks.math.utils.sample_fields``). The lm-eval
    hooks module binds the verifier when it is imported, on first use here as in lm-eval."""
    from tasks.math import utils

    return utils.sample_fields(doc, completion)
