"""How a command's result reaches the operator: a rich table or text, or ``--json``; errors as one line."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

from rich.console import Console

# A terminal's own width; piped output (a log, a test, `| less`) gets COLUMNS or 160
# rather than rich's 80, which would squeeze a job table into unreadable stubs.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
console = Console(highlight=False, width=_WIDTH)
errors = Console(stderr=True, highlight=False)


def emit(as_json: bool, data: Any, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON (``--json``) or through ``render`` (tables, for people)."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")
    else:
        render(data)


def fail(message: str) -> int:
    """One clear line on stderr; the exit code for it."""
    errors.print(f"avmonitor: {message}", markup=False, soft_wrap=True)  # one line, however narrow the terminal
    return 1


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    sign, value = ("-" if value < 0 else ""), abs(value)
    return f"{sign}${value:,.2f}" if value >= 0.01 else f"{sign}${value:.4f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"
