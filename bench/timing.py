"""CPU and load figures every benchmark section prints beside its wall-clock seconds."""

from __future__ import annotations

import os
import resource


def cpu_seconds() -> float:
    """CPU time of this process and every finished descendant (workers, ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"
