"""Reading the renderers' heartbeats (``jobs/<job_id>/progress/<renderer>.json``; fields in ``common/heartbeat.py``)."""

from __future__ import annotations

from google.api_core.exceptions import NotFound

from common import layout
from common.heartbeat import RendererHeartbeat
from functions import clients


def read_heartbeat(job_id: str, renderer: str) -> RendererHeartbeat | None:
    """The renderer's last heartbeat, or None if it has written none (or an unreadable one)."""
    blob = clients.storage_client().bucket(clients.config().staging_bucket).blob(layout.progress_object(job_id, renderer))
    try:
        return RendererHeartbeat.from_json(blob.download_as_bytes())
    except NotFound:
        return None
