"""A renderer's heartbeat (``jobs/<job_id>/progress/<renderer>.json``): its fields, named once.

The worker (``render_vm/worker.py``) writes it every few seconds while it
works; the watchdog judges a VM by its age (a silent VM is hung), the
renderer's verdict on an invalid job reaches the functions through it, and the
operators' view shows its progress. All of them read and write it through
:class:`RendererHeartbeat`, so they agree on every name.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class RendererHeartbeat:
    job_id: str
    rendered_by: str | None = None  # "vertex" or "vm"
    instance: str | None = None  # the VM's name (None on Vertex AI)
    stage: str = "starting"  # downloading, rendering, muxing, uploading, done, failed, lost-race
    frames_done: int = 0
    frames_total: int = 0
    segments_done: int = 0
    segments_total: int = 0
    segments_reused: int = 0
    elapsed_s: float = 0.0  # rendering so far
    fps: float = 0.0  # frames rendered (not reused) per second
    invalid: bool = False  # with stage "failed": the job itself is invalid (retrying cannot help)
    error: str | None = None
    updated_at: float | None = None  # epoch seconds, set on every write

    def with_progress(self, progress: dict[str, Any]) -> "RendererHeartbeat":
        """This heartbeat with the renderer's progress figures (fields it does not know are ignored)."""
        return replace(self, **_known(progress))

    def stamped(self, now: float | None = None) -> "RendererHeartbeat":
        return replace(self, updated_at=time.time() if now is None else now)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "RendererHeartbeat | None":
        """The heartbeat written, or None if it is unreadable (not JSON, not an object, no job id)."""
        try:
            data = json.loads(raw)
            return cls(**_known(data)) if isinstance(data, dict) and data.get("job_id") else None
        except (ValueError, TypeError, RecursionError):
            return None

    def age_s(self, now: float | None = None) -> float | None:
        """Seconds since it was written; None if it carries no time."""
        if not isinstance(self.updated_at, (int, float)):
            return None
        return (time.time() if now is None else now) - float(self.updated_at)

    @property
    def found_invalid(self) -> bool:
        """The renderer's verdict: the job cannot be rendered as given."""
        return self.stage == "failed" and self.invalid

    @property
    def progress(self) -> float | None:
        """Frames done of total, 0..1 (None before the renderer knows the total)."""
        return min(self.frames_done / self.frames_total, 1.0) if self.frames_total else None


_NAMES = {f.name for f in fields(RendererHeartbeat)}


def _known(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in _NAMES}
