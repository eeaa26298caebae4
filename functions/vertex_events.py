"""React to Vertex AI custom-job state changes.

In the cloud a Cloud Logging sink may route the custom jobs' log entries to
the ``vertex-events`` topic; no public page documents a state-change entry for
custom jobs, so the watchdog's poll of each job (``watchdog._check_primary``,
the same code path) is the signal relied on, and these events only make it
faster. Locally the Vertex stand-in publishes such entries. An entry is only a
hint that *something* changed: the handler reads the job from Vertex for the
truth, and acts only if it concerns the job's current Vertex job while the job
is still with the primary, so duplicated, reordered or stale entries cannot
mislead it.
"""

from __future__ import annotations

import json
import re

from google.api_core.exceptions import NotFound
from google.cloud import aiplatform_v1

from common.logs import get_logger
from functions import clients
from functions.failures import CRASH, Action, classify
from functions.jobs import about_current_primary, fail_job, request_fallback, retry_primary, store
from functions.primary import JOB_LABEL
from functions.state import PRIMARY_STATES, JobState, Status

log = get_logger("vertex_events")

VERTEX_RENDERER = "vertex"  # the heartbeat name of the primary's renderer (render_vm/worker.py)

_CUSTOM_JOB_NAME = re.compile(r"projects/[^/\"\s]+/locations/[^/\"\s]+/customJobs/[0-9A-Za-z_-]+")
VertexState = aiplatform_v1.JobState


def custom_job_name(entry: bytes, project: str) -> str | None:
    """The custom job's full resource name, wherever the log entry carries it.

    Entries routed by our own code carry the full name; Vertex AI's own job log
    lines carry ``resource.labels.job_id`` and ``location`` instead.
    """
    text = entry.decode("utf-8", "replace")
    match = _CUSTOM_JOB_NAME.search(text)
    if match:
        return match.group(0)
    try:
        labels = json.loads(text).get("resource", {}).get("labels", {})
    except (ValueError, AttributeError, RecursionError):
        return None
    if labels.get("job_id") and labels.get("location"):
        return f"projects/{project}/locations/{labels['location']}/customJobs/{labels['job_id']}"
    return None


def handle_vertex_event(entry: bytes) -> JobState | None:
    name = custom_job_name(entry, clients.config().project)
    if name is None:
        log.warning("vertex event without a custom job name ignored")
        return None
    try:
        vertex_job = clients.job_client().get_custom_job(name=name)
    except NotFound:
        log.warning("vertex event for a job that no longer exists", custom_job=name)
        return None
    job_id = vertex_job.labels.get(JOB_LABEL)
    if not job_id:
        return None  # not one of ours
    return apply_primary_state(job_id, vertex_job)


def apply_primary_state(job_id: str, vertex_job: aiplatform_v1.CustomJob) -> JobState | None:
    state = vertex_job.state
    if state == VertexState.JOB_STATE_RUNNING:
        return _advance(job_id, Status.PRIMARY_RUNNING, "Vertex AI job running", vertex_job.name)
    if state == VertexState.JOB_STATE_SUCCEEDED:
        # The video's arrival in the output bucket completes the job; nothing to do here.
        log.info("primary succeeded", job_id=job_id, custom_job=vertex_job.name)
        return store().get(job_id)
    if state in (VertexState.JOB_STATE_FAILED, VertexState.JOB_STATE_CANCELLED, VertexState.JOB_STATE_EXPIRED):
        return _primary_failed(job_id, vertex_job)
    return store().get(job_id)  # queued / pending: the watchdog watches for slow queues


def _advance(job_id: str, status: Status, note: str, custom_job: str) -> JobState | None:
    def change(state: JobState | None) -> JobState | None:
        if state is None or not state.can_advance_to(status) or not about_current_primary(state, custom_job):
            return None
        state.move_to(status, note)
        return state

    state, _ = store().update(job_id, change)
    return state


def _primary_failed(job_id: str, vertex_job: aiplatform_v1.CustomJob) -> JobState | None:
    code, message = vertex_job.error.code, vertex_job.error.message
    if vertex_job.state == VertexState.JOB_STATE_CANCELLED and not code:
        code, message = 1, message or "cancelled"
    rule = classify(code, message)
    reason = failure_reason(rule.kind, code, message)
    if rule.action is Action.FAIL and rule.kind == "invalid":
        verdict = _renderers_verdict(job_id)
        if verdict is None:
            # Exit 2 without the renderer saying "invalid" (a wrong command line
            # exits 2 too): let a VM's renderer judge the job.
            rule, reason = CRASH, failure_reason(CRASH.kind, code, message)
        else:
            reason = f"invalid job: {verdict}"
    custom = vertex_job.name

    def about_the_current_primary(state: JobState) -> bool:
        # A late event about an earlier attempt, or about a primary that has a
        # hedge VM rendering beside it, must not end the job.
        return state.status in PRIMARY_STATES and about_current_primary(state, custom)

    if rule.action is Action.FAIL:
        return fail_job(job_id, reason, when=about_the_current_primary, custom_job=custom, code=code)
    if rule.action is Action.RETRY_PRIMARY:
        return retry_primary(job_id, reason, kind=rule.kind, custom_job=custom)
    return request_fallback(job_id, reason, kind=rule.kind, custom_job=custom)


def _renderers_verdict(job_id: str) -> str | None:
    """The renderer's one-line reason, if the primary's renderer found the job invalid (its heartbeat)."""
    from functions.heartbeats import read_heartbeat

    beat = read_heartbeat(job_id, VERTEX_RENDERER)
    if beat is not None and beat.found_invalid:
        return beat.error or "rejected by the renderer"
    return None


def _first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def failure_reason(kind: str, code: int, message: str) -> str:
    """One line for the job's history: Vertex's first line."""
    line = _first_line(message)
    return f"primary {kind}: {line}" if line else f"primary {kind}: code {code}"
