"""YAML for the files a user writes (grids, model zoos): a repeated key is an error.

PyYAML's ``safe_load`` keeps the last of two equal keys silently, so a grid with two
``max_steps:`` lines trains with whichever came last. :func:`load_strict` refuses it,
naming the key and its line. Merge keys (``<<: *anchor``) still override as YAML says.

Aliases stay allowed (a grid may share a block), but what they expand to is bounded: a
1 KB "billion laughs" file is a few dozen nodes that expand to 10^9, and every reader
after the loader (a key's JSON, pydantic) walks the expansion. :func:`load_strict` counts
the expanded nodes and refuses a file past :data:`MAX_NODES` or :data:`MAX_DEPTH`.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "TooLargeError", "MAX_DEPTH", "MAX_NODES", "load_strict"]

MAX_NODES = 100_000  # a big grid or zoo is a few thousand
MAX_DEPTH = 50


class TooLargeError(yaml.YAMLError):
    """The document expands past the node or depth limit (an alias bomb, a runaway nesting)."""


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
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` (a ``yaml.YAMLError``) on a
    repeated key, and :class:`TooLargeError` on a document that expands past the limits."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise TooLargeError(f"nested deeper than {MAX_DEPTH} levels; flatten it") from None
    _check_size(data)
    return data


def _check_size(data: Any) -> None:
    """Walk the document as its readers will (aliases expanded), stopping at the limits."""
    stack, nodes = [(data, 0)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise TooLargeError(
                f"expands to more than {MAX_NODES:,} values (YAML aliases?); write it out plainly"
            )
        if depth > MAX_DEPTH:
            raise TooLargeError(f"nested deeper than {MAX_DEPTH} levels; flatten it")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for kv in value.items() for v in kv)
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
