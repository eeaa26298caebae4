"""Reading the Terraform module back for the tests: python-hcl2, with its quoting and marker keys taken off."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def clean(value: Any) -> Any:
    """python-hcl2 keeps a string literal's quotes and adds __is_block__ / __comments__ keys: drop them."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def parse_text(text: str) -> dict[str, Any]:
    import hcl2  # a test requirement (requirements-test.txt), not the product's

    return clean(hcl2.loads(text))


def parse_file(path: Path) -> dict[str, Any]:
    return parse_text(path.read_text())
