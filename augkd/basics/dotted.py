"""Dotted config keys (``module2.temperature``) over nested dicts: the one home of
reading, writing and flattening them, for configs, search spaces, overrides and reports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from augkd.basics.errors import ConfigError

LEAF_SECTIONS = ("split",)
"""Keys whose value is a structure of its own, kept whole when flattening."""


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Write ``value`` at ``key``, creating sections on the way."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{key}': '{part}' is a value, not a section.")
        node = child
    node[parts[-1]] = value


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value at ``key``, or ``default`` when any part is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten_dotted(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"module3": {"a": 0.6}} -> {"module3.a": 0.6}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in LEAF_SECTIONS:
            flat.update(flatten_dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def short_names(keys: list[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Each key's shortest dotted suffix that no other key ends with and that is not one of
    the ``taken`` headings: module3.a -> a, but module2.temperature and module3.temperature
    keep their sections, and so does module2.steps beside a table's own "steps"."""
    taken = set(taken)
    names = {}
    for key in keys:
        parts = key.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            if suffix not in taken and not any(
                other != key and _ends_with(other, suffix) for other in keys
            ):
                break
        names[key] = suffix
    return names


def _ends_with(key: str, suffix: str) -> bool:
    return key == suffix or key.endswith("." + suffix)
