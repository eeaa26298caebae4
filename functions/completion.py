"""The video arrived: complete the job once, clean up, resume the main pipeline.

Triggered by the output bucket's finalize notification for
``renders/<job_id>/video.mp4``. Whoever rendered it (Vertex AI or our VM),
the job is marked succeeded once, and then finished (``outcome.finish_job``):
the fallback VM is deleted if it is still up, a primary still running (a
hedge that lost) is cancelled, and ``render-completed`` is published: the
main pipeline's resume signal. The render report rides on the video object
itself (its ``fast-render-report`` metadata), so it is there the moment the
video is; ``render.json`` is written after the video and may not be yet.
"""

from __future__ import annotations

import json

from common import layout
from common.logs import get_logger
from functions import clients, memory
from functions.jobs import store
from functions.outcome import finish_job
from functions.state import JobState, RenderResult, Status

log = get_logger("completion")


def complete_from_output(object_name: str, generation: str | None = None) -> JobState | None:
    job_id = layout.job_id_of_video_object(object_name)
    if job_id is None:
        return None  # render.json or anything else in renders/: not the signal
    cfg = clients.config()
    blob = clients.storage_client().bucket(cfg.output_bucket).get_blob(object_name)
    if blob is None:
        log.warning("video event for a video that is not there", job_id=job_id, object=object_name)
        return None
    report = render_report(blob.metadata or {})
    video_uri = f"gs://{cfg.output_bucket}/{object_name}"

    def succeed(state: JobState | None) -> JobState | None:
        if state is None or state.status in (Status.SUCCEEDED, Status.CANCELLED):
            return None  # delivered already; or an operator cancelled it: a late video changes nothing
        # A video beats an earlier verdict: if a watchdog gave up on a job
        # whose VM then delivered, the user still gets the video (and hears so).
        if state.status is Status.FAILED:
            state.outcome_published, state.cleaned_up = False, False
        state.error = None
        state.result = RenderResult.from_report(video_uri, generation or str(blob.generation), report)
        state.move_to(Status.SUCCEEDED, f"video delivered by {report.get('rendered_by', 'a renderer')}", video=video_uri)
        return state

    state, changed = store().update(job_id, succeed)
    if state is None:
        log.warning("video for an unknown job", job_id=job_id, video=video_uri)
        return None
    if changed:
        log.info("job succeeded", job_id=job_id, video=video_uri, rendered_by=report.get("rendered_by"))
        _learn_speed(job_id, report)
    return finish_job(state)


def render_report(metadata: dict[str, str]) -> dict:
    """The report the worker attached to its video ({} if none, or unreadable)."""
    try:
        report = json.loads(metadata.get(layout.VIDEO_REPORT_METADATA) or "{}")
    except (ValueError, RecursionError):
        return {}
    return report if isinstance(report, dict) else {}


def _learn_speed(job_id: str, report: dict) -> None:
    """Feed the selector: seconds of rendering per second of video on this GPU type.

    Only whole renders count: one that reused segments was faster than the GPU is.
    """
    gpu, render_s, video_s = report.get("gpu"), report.get("wall_s"), report.get("video_s")
    if gpu and render_s and video_s and not report.get("segments_reused"):
        memory.learn_speed(gpu, float(render_s), float(video_s))
        log.info("speed learned", job_id=job_id, gpu=gpu, s_per_s=round(render_s / video_s, 4))
