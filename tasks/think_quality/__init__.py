"""The ``think_quality`` task: how well a completion reasons in ``<think>…</think>``.

See :mod:`tasks.think_quality.scorer` for the metrics and the composite. lm-eval tasks
(part of the ``tasks/`` include_path): ``think_quality_math`` (GSM8K prompts),
``think_quality_causal`` (causal_nli prompts) and the group ``think_quality``.
"""

from tasks.scoring import as_reward
from tasks.think_quality.scorer import (
    ThinkScore,
    count_steps,
    format_ok,
    score,
    think_content,
    verify,
)

reward = as_reward(verify)  # math prompts; wrap functools.partial(verify, task=...) for others

__all__ = ["ThinkScore", "score", "verify", "reward", "format_ok", "count_steps", "think_content"]
