"""The video arrived: complete the job once, clean up, resume the main pipeline.

Triggered by the output bucket's finalize notification for
``renders/<job_id>/video.mp4``. Whoever rendered it (Vertex AI or our VM),
the job is marked succeeded once, the fallback VM is deleted if it is still up,
a primary still running (a hedge that lost) is cancelled, and
``render-completed`` is published: the main pipeline's resume signal.
"""

from __future__ import annotations

import json

from google.api_core.exceptions import GoogleAPICallError, NotFound

from common import layout
from common.logs import get_logger
from functions import clients, memory
from functions.jobs import publish_outcome, store
from functions.state import JobState, Status

log = get_logger("completion")


def complete_from_output(object_name: str, generation: str | None = None) -> JobState | None:
    job_id = layout.job_id_of_video_object(object_name)
    if job_id is None:
        return None  # render.json or anything else in renders/: not the signal
    cfg = clients.config()
    report = _render_report(cfg.output_bucket, job_id)
    video_uri = f"gs://{cfg.output_bucket}/{object_name}"

    def succeed(state: JobState | None) -> JobState | None:
        if state is None or state.status is Status.SUCCEEDED:
            return None
        # A video beats an earlier verdict: if a watchdog gave up on a job
        # whose VM then delivered, the user still gets the video (and hears so).
        if state.status is Status.FAILED:
            state.outcome_published = False
        state.error = None
        state.result = {"video": video_uri, "generation": generation, **report}
        state.move_to(Status.SUCCEEDED, f"video delivered by {report.get('rendered_by', 'a renderer')}", video=video_uri)
        return state

    state, changed = store().update(job_id, succeed)
    if state is None:
        log.warning("video for an unknown job", job_id=job_id, video=video_uri)
        return None
    if changed:
        log.info("job succeeded", job_id=job_id, video=video_uri, rendered_by=report.get("rendered_by"))
        _learn_speed(job_id, report)
    _clean_up(state)
    if not state.outcome_published:
        body = {"job_id": job_id, "status": "succeeded", "video": video_uri, "rendered_by": report.get("rendered_by")}
        state = publish_outcome(state, cfg.topic_completed, body)
    return state


def _learn_speed(job_id: str, report: dict) -> None:
    """Feed the selector: seconds of rendering per second of video on this GPU type.

    Only whole renders count: one that reused segments was faster than the GPU is.
    """
    gpu, render_s, video_s = report.get("gpu"), report.get("wall_s"), report.get("video_s")
    if gpu and render_s and video_s and not report.get("segments_reused"):
        memory.learn_speed(gpu, float(render_s), float(video_s))
        log.info("speed learned", job_id=job_id, gpu=gpu, s_per_s=round(render_s / video_s, 4))


def _render_report(bucket: str, job_id: str) -> dict:
    """``render.json`` if the renderer left it (it is written right after the video)."""
    try:
        raw = clients.storage_client().bucket(bucket).blob(layout.render_report_object(job_id)).download_as_bytes()
        return json.loads(raw)
    except (NotFound, ValueError):
        return {}


def _clean_up(state: JobState) -> None:
    """Delete the fallback VM and cancel a still-running primary; both may be gone already."""
    cfg = clients.config()
    instance, zone = state.fallback.get("instance"), state.fallback.get("zone")
    if instance and zone:
        try:
            clients.instances_client().delete(project=cfg.project, zone=zone, instance=instance)
            log.info("fallback VM deleted", job_id=state.job_id, instance=instance)
        except NotFound:
            pass  # it deleted itself, as it should
        except GoogleAPICallError as err:
            log.warning("could not delete the fallback VM; the watchdog's reaper will", job_id=state.job_id, error=str(err))
    custom_job = state.primary.get("custom_job")
    if custom_job and state.result.get("rendered_by") != "vertex":
        try:
            vertex_job = clients.job_client().get_custom_job(name=custom_job)
            if vertex_job.state.name in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                clients.job_client().cancel_custom_job(name=custom_job)
                log.info("primary cancelled: the fallback won", job_id=state.job_id, custom_job=custom_job)
        except NotFound:
            pass
