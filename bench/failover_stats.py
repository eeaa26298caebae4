"""The failover benchmark's arithmetic and tables: percentiles, the machine's load and CPU time."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

Figures = dict[str, float | int]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: Sequence[float]) -> Figures:
    """n, p50, p90, p99, max (ms), and how many were negative (a clock-order violation)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    figures: Figures = {"n": len(ordered)}
    for p in (50, 90, 99):
        figures[f"p{p}_ms"] = round(percentile(ordered, p), 1)
    figures["max_ms"] = round(ordered[-1], 1)
    figures["negative"] = sum(1 for v in ordered if v < -0.5)  # half a millisecond of rounding allowed
    return figures


def format_table(title: str, stages: dict[str, Figures]) -> str:
    lines = [title, f"  {'stage (ms)':<52}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    for label, figures in stages.items():
        if not figures["n"]:
            lines.append(f"  {label:<52}{0:>5}")
            continue
        flag = f"  ({figures['negative']} negative!)" if figures["negative"] else ""
        decimals = 1 if figures["max_ms"] < 100 else 0
        cells = "".join(f"{figures[k]:>9.{decimals}f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
        lines.append(f"  {label:<52}{figures['n']:>5}{cells}{flag}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the machine


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tree_cpu_s(root: int | None = None) -> float:
    """CPU seconds used so far by this process and every live descendant (the local cloud is one)."""
    tree, total, todo = _children(), 0.0, [root or os.getpid()]
    while todo:
        pid = todo.pop()
        total += _cpu_s(pid)
        todo.extend(tree.get(pid, []))
    return total


@dataclass
class Phase:
    """A phase's wall and CPU seconds and the load average around it."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process and the local cloud's
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def line(self) -> str:
        def fmt(load: tuple[float, float, float]) -> str:
            return " ".join(f"{x:.2f}" for x in load)

        return (f"{self.name}: wall {self.wall_s:.1f} s, CPU {self.cpu_s:.1f} s (bench + local cloud); "
                f"load average {fmt(self.load_start)} at start, {fmt(self.load_end)} at end")


class measure:
    """``with measure("burst") as phase: ...`` fills ``phase`` with the block's wall, CPU and load."""

    def __init__(self, name: str) -> None:
        self.phase = Phase(name)

    def __enter__(self) -> Phase:
        self._wall, self._cpu = time.monotonic(), tree_cpu_s()
        self.phase.load_start = os.getloadavg()
        return self.phase

    def __exit__(self, *exc: object) -> None:
        self.phase.wall_s = time.monotonic() - self._wall
        self.phase.cpu_s = tree_cpu_s() - self._cpu
        self.phase.load_end = os.getloadavg()
