"""``extends:`` in a YAML mapping of named entries: an entry states only what differs.

One resolver for the model zoo (``models.yaml``) and the hardware targets
(``targets.yaml``), with the same one-line errors for an unknown parent and a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bench_core.errors import BenchError, closest

__all__ = ["resolve_extends"]


def resolve_extends(
    name: str,
    entries: Mapping[str, Any],
    where: str,
    section: str,
    never_inherited: Iterable[str] = (),
) -> dict[str, Any]:
    """Entry ``name`` with its ``extends:`` chain merged in (the entry's own keys win).

    ``where`` (the file) and ``section`` (``models``, ``targets``) make the error name the
    field: ``FILE: targets.a100.extends: unknown target 'h10' (did you mean: h100?)``.
    Keys in ``never_inherited`` are facts of one entry only (a model's lineage).
    """
    chain = [name]
    entry = dict(entries[name] or {})
    while (parent := entry.pop("extends", None)) is not None:
        field = f"{where}: {section}.{chain[-1]}.extends"
        if parent not in entries:
            raise BenchError(
                f"{field}: unknown {section.removesuffix('s')} '{parent}'{closest(parent, entries)}"
            )
        if parent in chain:
            raise BenchError(f"{field}: cycle through {' -> '.join([*chain, parent])}")
        chain.append(parent)
        base = {k: v for k, v in dict(entries[parent] or {}).items() if k not in never_inherited}
        entry = {**base, **entry, "extends": base.get("extends")}
        if entry["extends"] is None:
            entry.pop("extends")
    return entry
