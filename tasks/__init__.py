"""lm-eval tasks of bench: this folder is an lm-eval ``include_path``.

Each task folder holds its YAML, a small ``utils.py`` hooked with ``!function``, and
its verifier. A folder is a task *family*, and :data:`FAMILIES` is the one table of them:
the harness (keys, per-sample rows, rescoring, ``bench tasks check``) and the trainers
(training prompts, teacher traces, rewards) look a family up there and nowhere else.
This package must not import ``harness`` or ``trainers``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

TASKS_DIR = Path(__file__).resolve().parent

# task family (its folder) -> its package, imported on first use. Every family exports:
#   VERSION                          its verifier's version; part of every key it scores
#   verify(completion, reference)    -> tasks.scoring.Score: the metric and the GRPO reward
#   sample_fields(doc, completion)   -> {answer, correct, score}: the harness's per-sample rows
#   held_out()                       -> frozenset of its test items' user turns (eval prompts)
# and may export:
#   USES                             the families whose verifiers its scores call (think_quality)
#   check_file(path, show=False)     -> tasks.scoring.CheckReport: ``bench tasks check``
# A trainable family also exports:
#   SOURCES                          {``sources=`` name: the method-config fields its rows read}
#   prompts(source, seed, n=None, **fields)
#                                    -> [{id, prompt (messages), reference, ...}], seeded,
#                                       never one of held_out(); the first n when n is given
#   teacher(item, direct=False)      -> a trace its verify scores 1.0; direct: the answer alone
FAMILIES = {
    "math": "tasks.math",
    "causal_nli": "tasks.causal_nli",
    "think_quality": "tasks.think_quality",
}

__all__ = [
    "TASKS_DIR",
    "FAMILIES",
    "family",
    "source_family",
    "training_sources",
    "verifier_versions",
    "all_verifier_versions",
    "task_config",
]


def family(name: str) -> ModuleType:
    """The package of task family ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"task family {name!r} unknown; use one of {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name])


def training_sources() -> dict[str, str]:
    """``{source: family}`` for every ``sources=`` name a trainable family offers."""
    return {s: name for name in FAMILIES for s in getattr(family(name), "SOURCES", {})}


def source_family(source: str) -> str:
    """The family whose training source ``source`` is; a one-line error naming the known ones."""
    sources = training_sources()
    if source not in sources:
        raise ValueError(f"sources {source!r} unknown; use one of {', '.join(sources)}")
    return sources[source]


def verifier_versions(name: str) -> dict[str, str]:
    """``{family: VERSION}`` of the verifiers that score family ``name``'s completions ({} for a
    folder that is not a family)."""
    if name not in FAMILIES:
        return {}
    return {f: str(family(f).VERSION) for f in (name, *getattr(family(name), "USES", ()))}


def all_verifier_versions() -> dict[str, str]:
    return {f: v for name in FAMILIES for f, v in verifier_versions(name).items()}


def task_config(path: Path) -> dict[str, Any]:
    """A task YAML's own keys (no ``include:`` merged); lm-eval's ``!function`` tags read as None."""
    import yaml  # lazy: importing the tasks stays light

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(Path(path).read_text(), _Loader) or {}  # noqa: S506 - a SafeLoader subclass
