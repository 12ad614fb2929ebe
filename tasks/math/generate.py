"""Generated arithmetic and word problems with exact answers, at graded difficulty.

Levels: 1 one-digit addition; 2 two-digit addition/subtraction; 3 three-digit
addition/subtraction or multiplication by one digit; 4 two or three chained operations;
5 short word problems with several steps. Every answer is a non-negative integer.

Each item is seeded by ``(seed, level, index)`` alone, so item *i* of a level is the
same whatever ``n`` is asked for, on every machine and Python version (``random.Random``
seeded with a string is deterministic). Items carry ``steps`` — one arithmetic fact
per step — so :func:`think_trace` can write a teacher's reasoning trace.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["LEVELS", "generate", "make_item", "think_trace", "test_seed"]

LEVELS = (1, 2, 3, 4, 5)
_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo")
_THINGS = ("apples", "pencils", "stickers", "marbles", "cookies", "cards")


def _fact(a: int, op: str, b: int) -> tuple[int, str]:
    result = _OPS[op](a, b)
    return result, f"{a} {op} {b} = {result}"


def _binary(rng: random.Random, lo: int, hi: int, ops: str) -> dict:
    op = rng.choice(ops)
    a = rng.randint(lo, hi)
    if op == "*":
        b = rng.randint(2, 9)
    else:
        b = rng.randint(lo, hi)
        if op == "-" and b > a:
            a, b = b, a
    result, step = _fact(a, op, b)
    return {"question": f"What is {a} {op} {b}?", "answer": str(result), "steps": [step]}


def _chain(rng: random.Random) -> dict:
    value = rng.randint(2, 50)
    expr, steps = str(value), []
    for _ in range(rng.choice((2, 3))):
        op = rng.choice("+-*") if value <= 100 else rng.choice("+-")
        b = rng.randint(2, 9) if op == "*" else rng.randint(2, min(50, max(2, value)))
        if op == "-" and b > value:
            op = "+"
        value, step = _fact(value, op, b)
        expr = f"({expr}) {op} {b}" if steps else f"{expr} {op} {b}"
        steps.append(step)
    return {"question": f"What is {expr}?", "answer": str(value), "steps": steps}


def _word(rng: random.Random) -> dict:
    name, things = rng.choice(_NAMES), rng.choice(_THINGS)
    kind = rng.randrange(4)
    if kind == 0:
        have, boxes, per = rng.randint(5, 40), rng.randint(2, 9), rng.randint(3, 12)
        bought, s1 = _fact(boxes, "*", per)
        total, s2 = _fact(have, "+", bought)
        give = rng.randint(1, total - 1)
        left, s3 = _fact(total, "-", give)
        question = (
            f"{name} has {have} {things}. {name} buys {boxes} boxes with {per} {things} in each "
            f"box, then gives {give} {things} to a friend. How many {things} does {name} have now?"
        )
        steps = [
            f"{name} buys {s1} {things}.",
            f"{name} then has {s2} {things}.",
            f"After giving some away, {name} has {s3} {things}.",
        ]
        answer = left
    elif kind == 1:
        price, count = rng.randint(2, 15), rng.randint(2, 9)
        cost, s1 = _fact(count, "*", price)
        bill = next(b for b in (10, 20, 50, 100, 200) if b > cost)
        answer, s2 = _fact(bill, "-", cost)
        question = (
            f"A shop sells {things} for ${price} each. {name} buys {count} {things} and pays "
            f"with a ${bill} bill. How much change, in dollars, does {name} get?"
        )
        steps = [f"The {things} cost {s1} dollars.", f"The change is {s2} dollars."]
    elif kind == 2:
        monday = rng.randint(5, 40)
        tuesday, s1 = _fact(2, "*", monday)
        read, s2 = _fact(monday, "+", tuesday)
        book = read + rng.randint(10, 200)
        answer, s3 = _fact(book, "-", read)
        question = (
            f"{name} reads {monday} pages of a {book}-page book on Monday and twice as many "
            f"pages on Tuesday. How many pages are left to read?"
        )
        steps = [
            f"On Tuesday {name} reads {s1} pages.",
            f"In two days {name} reads {s2} pages.",
            f"Pages left: {s3}.",
        ]
    else:
        friends, each = rng.randint(2, 8), rng.randint(3, 12)
        total = friends * each
        share = total // friends
        eaten = rng.randint(1, share - 1)
        answer, s2 = _fact(share, "-", eaten)
        question = (
            f"{friends} friends share {total} {things} equally. Each friend then uses {eaten} of "
            f"their {things}. How many {things} does each friend have left?"
        )
        steps = [
            f"Each friend gets {total} / {friends} = {share} {things}.",
            f"Each friend has {s2} {things} left.",
        ]
    return {"question": question, "answer": str(answer), "steps": steps}


_GENERATORS: dict[int, Callable[[random.Random], dict]] = {
    1: lambda rng: _binary(rng, 1, 9, "+"),
    2: lambda rng: _binary(rng, 10, 99, "+-"),
    3: lambda rng: _binary(rng, 100, 999, "+-*"),
    4: _chain,
    5: _word,
}


def make_item(level: int, index: int, seed: int = 0) -> dict:
    """Problem ``index`` of ``level``: question, answer (exact, a string), level, steps, id."""
    if level not in _GENERATORS:
        raise ValueError(f"math level {level!r} does not exist; use one of {LEVELS}")
    rng = random.Random(f"bench-math:{seed}:{level}:{index}")
    item = _GENERATORS[level](rng)
    return {"id": f"arith-{seed}-L{level}-{index}", "level": level, **item}


def generate(
    n_per_level: int = 100, seed: int = 0, levels: Iterable[int] | Mapping[int, int] = LEVELS
) -> list[dict]:
    """``n_per_level`` items of each level, interleaved (1, 2, …, 5, 1, 2, …) so any prefix
    — lm-eval's ``limit`` — covers every level. ``levels`` may map a level to its own
    count (a curriculum mix); that level stops after its count."""
    counts = dict(levels) if isinstance(levels, Mapping) else dict.fromkeys(levels, n_per_level)
    return [
        make_item(level, i, seed)
        for i in range(max(counts.values(), default=0))
        for level, n in counts.items()
        if i < n
    ]


def think_trace(item: dict, *, direct: bool = False) -> str:
    """The programmatic teacher: ``<think>`` with one "Step n:" line per step, then the answer.
    ``direct``: an empty ``<think></think>`` and the answer alone (a teacher that did not
    show its work, as in distillation mixes of reasoning and non-reasoning answers)."""
    if direct:
        return f"<think>\n</think>\nThe answer is {item['answer']}."
    steps = "\n".join(f"Step {i}: {step}" for i, step in enumerate(item["steps"], 1))
    return f"<think>\n{steps}\n</think>\nThe answer is {item['answer']}."


def test_seed() -> int:
    """The seed of math_arith's test items (``dataset_kwargs.seed`` in math_arith.yaml, the
    one place it is written): the default of the loader, and the seed training must not use."""
    from tasks import task_config

    return int(task_config(Path(__file__).with_name("math_arith.yaml"))["dataset_kwargs"]["seed"])
