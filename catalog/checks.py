"""The catalog's field checks: each raises one `CatalogError` line naming the field (see catalog/model.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from common import strict_yaml

_GPU_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")


class CatalogError(ValueError):
    """A catalog (or a catalog setting from the environment) is invalid; the message is one line."""


def catalog_error(message: str) -> CatalogError:
    return CatalogError(f"catalog: {message}")


def _parse_yaml(text: str, source: str) -> object:
    return strict_yaml.load(text, source, catalog_error)


def _fields(data: object, at: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    """Check that `data` is a mapping with every required field and nothing unknown."""
    return strict_yaml.fields(data, at, required, optional, catalog_error)


_join = strict_yaml.join


def gpu_name(name: object, prefix: str = "gpus.") -> str:
    if not isinstance(name, str) or not _GPU_NAME.match(name):
        raise CatalogError(
            f"catalog: {prefix}{name}: GPU names are 1 to 31 characters of a-z, 0-9, '-' and '_', got {name!r}"
        )
    return name


def _number(value: object, at: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CatalogError(f"catalog: {at}: must be {what}, got {value!r}")
    return float(value)


def positive(value: object, at: str) -> float:
    number = _number(value, at, "a positive number")
    if number <= 0:
        raise CatalogError(f"catalog: {at}: must be a positive number, got {value!r}")
    return number


def _non_negative(value: object, at: str) -> float:
    number = _number(value, at, "a number >= 0")
    if number < 0:
        raise CatalogError(f"catalog: {at}: must be a number >= 0, got {value!r}")
    return number


def _optional(raw: dict[str, Any], key: str, at: str, check: Callable[[object, str], float]) -> float | None:
    """`check(raw[key])` when present and not null; None otherwise."""
    value = raw.get(key)
    return None if value is None else check(value, f"{at}.{key}")


def _count(value: object, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(f"catalog: {at}: must be a whole number >= 1, got {value!r}")
    return value


def _boolean(value: object, at: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError(f"catalog: {at}: must be true or false, got {value!r}")
    return value


def matching(value: object, at: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise CatalogError(f"catalog: {at}: must be {what}, got {value!r}")
    return value


def _zones(value: object, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise CatalogError(f"catalog: {at}: must be a non-empty list of zones, got {value!r}")
    zones = tuple(matching(zone, f"{at}[{i}]", _ZONE, "a zone like us-central1-a") for i, zone in enumerate(value))
    for i, zone in enumerate(zones):
        if zone in zones[:i]:
            raise CatalogError(f"catalog: {at}[{i}]: zone {zone} is listed twice")
    return zones
