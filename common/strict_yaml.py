"""Configuration YAML read strictly: one line naming the field for a duplicate key, an unknown or a missing field.

Shared by the GPU catalog (``catalog/model.py``) and the experiments
(``functions/experiments.py``). Each passes ``fail``, which turns a message
into its own error (with its own prefix), so their messages stay theirs.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import yaml

Fail = Callable[[str], Exception]


def load(text: str, source: str, fail: Fail) -> object:
    """Parse ``text`` (from ``source``); a duplicate key is an error (PyYAML would silently keep the last)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise fail(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise fail(f"{source}: not valid YAML{where}: {err.problem}") from None
    except yaml.YAMLError as err:
        raise fail(f"{source}: not valid YAML: {err}") from None


def fields(data: object, at: str, required: set[str], optional: set[str], fail: Fail, *,
           list_allowed: bool = False) -> dict[str, Any]:
    """``data`` if it is a mapping with every required field and nothing unknown (a misspelt field must not be ignored).

    An unknown field names the closest allowed one; with ``list_allowed``, all
    of them when none is close.
    """
    if not isinstance(data, dict):
        raise fail(f"{at or 'top level'}: must be a mapping, got {type(data).__name__}")
    allowed = required | optional
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else (
                f" (allowed: {', '.join(sorted(allowed))})" if list_allowed else "")
            raise fail(f"{join(at, key)}: unknown field{suggestion}")
    for key in sorted(required):
        if key not in data:
            raise fail(f"{join(at, key)}: required field is missing")
    return data


def join(at: str, key: object) -> str:
    return f"{at}.{key}" if at else str(key)
