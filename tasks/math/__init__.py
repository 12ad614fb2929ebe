"""The ``math`` task: GSM8K and generated arithmetic, answers compared with math-verify.

lm-eval tasks (this folder is part of the ``tasks/`` include_path): ``math_gsm8k``,
``math_arith`` and the group ``math``. Importing this package stays light: sympy and
math-verify load on the first comparison that needs them.
"""

from tasks.math.extract import extract_answer, reference_answer, strip_think
from tasks.math.generate import LEVELS, generate, make_item, think_trace
from tasks.math.gsm8k import data_dir, gsm8k_gold, gsm8k_solution, gsm8k_think_trace, load_gsm8k
from tasks.math.verifier import equivalent, reward, verify

__all__ = [
    "verify",
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
]
