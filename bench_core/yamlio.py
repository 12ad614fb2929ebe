"""YAML for the files a user writes (grids, model zoos): a repeated key is an error.

PyYAML's ``safe_load`` keeps the last of two equal keys silently, so a grid with two
``max_steps:`` lines trains with whichever came last. :func:`load_strict` refuses it,
naming the key and its line. Merge keys (``<<: *anchor``) still override as YAML says.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "load_strict"]


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping states one key twice."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports an unhashable key
            if key in seen:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {key!r} (line {key_node.start_mark.line + 1}; first on line {seen[key]}); "
                    "keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` (a ``yaml.YAMLError``) on a repeated key."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
