"""The ``math`` task: GSM8K and generated arithmetic, answers compared with math-verify.

lm-eval tasks (this folder is part of the ``tasks/`` include_path): ``math_gsm8k``,
``math_arith`` and the group ``math``. Importing this package stays light: sympy and
math-verify load on the first comparison that needs them.
"""

from functools import cache
from pathlib import Path

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
    "test_seed",
    "test_questions",
]


@cache
def test_questions() -> frozenset[str]:
    """The questions of math_arith's test items (every level): training sets leave them out, so
    a generated training item never repeats a question the leaderboard tests on."""
    from tasks.math.generate import generate

    return frozenset(i["question"] for i in generate(100, test_seed()))


def test_seed() -> int:
    """The seed of math_arith's test items (``dataset_kwargs.seed`` in math_arith.yaml, the
    one place it is written): the default of the loader, and the seed training must not use."""
    import yaml  # lazy: importing the task stays light

    class _Loader(yaml.SafeLoader):  # lm-eval's ``!function`` tags are not needed here
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load(Path(__file__).with_name("math_arith.yaml").read_text(), _Loader)
    return int(config["dataset_kwargs"]["seed"])
