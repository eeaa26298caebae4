"""Where a job's objects live (the contract's bucket layout).

Staging bucket::

    jobs/<job_id>/job.json           the manifest; its finalize event starts a render
    jobs/<job_id>/images/... audio/  the assets the manifest names
    jobs/<job_id>/segments/          finished video segments (a resumed render reuses them)
    jobs/<job_id>/progress/<renderer>.json  each renderer's heartbeat (``vertex``, or the VM's
                                     instance name): stage, frames done of total, when

Output bucket::

    renders/<job_id>/video.mp4       the result; its finalize event resumes the main pipeline
    renders/<job_id>/render.json     what was rendered, where, how fast, at what cost

Job state and the fleet's memory are not files: they live in Firestore
(``functions/store.py``, ``functions/memory.py``).
"""

from __future__ import annotations

import re

JOB_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

JOBS_PREFIX = "jobs/"
RENDERS_PREFIX = "renders/"
# Labels on the Vertex AI jobs and VMs we create: whose job, which attempt.
JOB_LABEL = "fast-render-job"
ATTEMPT_LABEL = "fast-render-attempt"
GPU_LABEL = "fast-render-gpu"

# The video object's custom metadata key holding the render report (JSON): the
# report arrives with the video, never after it.
VIDEO_REPORT_METADATA = "fast-render-report"

_MANIFEST_OBJECT = re.compile(r"^jobs/([^/]+)/job\.json$")
_VIDEO_OBJECT = re.compile(r"^renders/([^/]+)/video\.mp4$")


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/"


def manifest_object(job_id: str) -> str:
    return f"{job_prefix(job_id)}job.json"


def asset_object(job_id: str, relative_path: str) -> str:
    return f"{job_prefix(job_id)}{relative_path}"


def segments_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}segments/"


def progress_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}progress/"


def progress_object(job_id: str, renderer: str) -> str:
    """One heartbeat per renderer: a hedge's VM and the primary beside it must not overwrite each other's."""
    return f"{progress_prefix(job_id)}{renderer}.json"


def video_object(job_id: str) -> str:
    return f"{RENDERS_PREFIX}{job_id}/video.mp4"


def render_report_object(job_id: str) -> str:
    return f"{RENDERS_PREFIX}{job_id}/render.json"


def job_id_of_manifest_object(name: str) -> str | None:
    """``jobs/<id>/job.json`` -> ``<id>``; anything else -> None."""
    match = _MANIFEST_OBJECT.match(name)
    return match.group(1) if match else None


def job_id_of_video_object(name: str) -> str | None:
    """``renders/<id>/video.mp4`` -> ``<id>``; anything else -> None."""
    match = _VIDEO_OBJECT.match(name)
    return match.group(1) if match else None


def is_valid_job_id(job_id: object) -> bool:
    return isinstance(job_id, str) and bool(JOB_ID_PATTERN.match(job_id))
