"""The ``think_quality`` task: how well a completion reasons in ``<think>…</think>``.

See :mod:`tasks.think_quality.scorer` for the metrics and the composite. lm-eval tasks
(part of the ``tasks/`` include_path): ``think_quality_math`` (GSM8K prompts),
``think_quality_causal`` (causal_nli prompts) and the group ``think_quality``. A family of
``tasks.FAMILIES`` that trains nothing itself: its prompts are those of the families it ``USES``.
"""

from tasks.scoring import as_reward
from tasks.think_quality.scorer import (
    USES,
    VERSION,
    ThinkScore,
    count_steps,
    format_ok,
    score,
    think_content,
    verify,
)

reward = as_reward(verify)  # math prompts; wrap functools.partial(verify, task=...) for others

__all__ = [
    "VERSION",
    "verify",
    "sample_fields",
    "held_out",
    "USES",
    "ThinkScore",
    "score",
    "reward",
    "format_ok",
    "count_steps",
    "think_content",
]


def held_out() -> frozenset[str]:
    """The user turns of its test items: those of the families whose prompts it asks."""
    from tasks import family

    return frozenset().union(*(family(name).held_out() for name in USES))


def sample_fields(doc: dict, completion: str) -> dict:
    """The harness's fields of one sample (``tasks.think_quality.utils.sample_fields``). The lm-eval
    hooks module binds the verifier when it is imported, on first use here as in lm-eval."""
    from tasks.think_quality import utils

    return utils.sample_fields(doc, completion)
