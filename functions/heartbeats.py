"""Reading the renderers' heartbeats (``jobs/<job_id>/progress/<renderer>.json``).

The worker (render_vm/worker.py) writes its heartbeat every few seconds while
it works: stage, frames done of total, and ``updated_at`` (epoch seconds). The
watchdog judges a VM by it (a silent VM is hung), and the renderer's verdict on
an invalid job reaches the functions through it.
"""

from __future__ import annotations

import json
import time

from google.api_core.exceptions import NotFound

from common import layout
from functions import clients


def read_heartbeat(job_id: str, renderer: str) -> dict:
    """The renderer's last heartbeat, or {} if it has written none (or an unreadable one)."""
    blob = clients.storage_client().bucket(clients.config().staging_bucket).blob(layout.progress_object(job_id, renderer))
    try:
        beat = json.loads(blob.download_as_bytes())
    except (NotFound, ValueError):
        return {}
    return beat if isinstance(beat, dict) else {}


def heartbeat_age_s(beat: dict, now: float | None = None) -> float | None:
    """Seconds since the heartbeat was written; None if there is none."""
    written = beat.get("updated_at")
    if not isinstance(written, (int, float)):
        return None
    return (time.time() if now is None else now) - float(written)
