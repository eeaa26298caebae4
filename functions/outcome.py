"""After a job ends: clean up once and tell the main app once, re-driven until both are done.

A terminal state is written first; what must follow it (deleting the VM,
cancelling a primary that lost, publishing ``render-completed`` or
``render-failed``) happens after, and any of it may be cut short by a crash or
a failing call. So each step leaves a mark in the state (``cleaned_up``,
``outcome_published``) and the watchdog calls :func:`finish_job` for every
terminal job whose marks are not both set.

Publishing is claimed first (``outcome_claim``), so two deliveries racing to
finish the same job publish once; a claimant that crashed between its publish
and its mark is the one case where the main app hears twice (it keys on
``job_id``).
"""

from __future__ import annotations

import json
import time
import uuid

from google.api_core.exceptions import GoogleAPICallError, NotFound

from common import layout
from common.logs import get_logger
from functions import clients
from functions.state import Claim, JobState, Status, claim_is_live, claimed_by

log = get_logger("outcome")

ACTIVE_VERTEX_STATES = ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING")


def _store():
    from functions.jobs import store

    return store()


def finish_job(state: JobState) -> JobState:
    """Clean up after a terminal job and publish its outcome, each at most once; safe to repeat."""
    if not state.status.terminal:
        return state
    if not state.cleaned_up:
        state = clean_up(state)
    if not state.outcome_published:
        state = publish_outcome(state)
    return state


def needs_finishing(state: JobState) -> bool:
    return state.status.terminal and not (state.cleaned_up and state.outcome_published)


def outcome_message(state: JobState) -> tuple[str, dict]:
    """The topic and body the main app gets for a finished job."""
    cfg = clients.config()
    if state.status is Status.SUCCEEDED:
        body = {"job_id": state.job_id, "status": "succeeded", "video": state.result.video,
                "rendered_by": state.result.rendered_by}
        return cfg.topic_completed, body
    return cfg.topic_failed, {"job_id": state.job_id, "status": state.status.value, "reason": state.error}


def publish_outcome(state: JobState) -> JobState:
    """Claim the outcome, publish it, then record that it was published."""
    token, now = uuid.uuid4().hex, time.time()
    timeout_s = clients.config().claim_timeout_s

    def claim(current: JobState | None) -> JobState | None:
        if current is None or not current.status.terminal or current.outcome_published:
            return None
        if claim_is_live(current.outcome_claim, timeout_s, now):
            return None  # another delivery is publishing it right now
        current.outcome_claim = Claim.new(token, now, status=current.status.value)
        return current

    current, claimed = _store().update(state.job_id, claim)
    if not claimed or current is None:
        return current or state
    topic, body = outcome_message(current)
    clients.publish(topic, body, job_id=current.job_id)

    def mark(latest: JobState | None) -> JobState | None:
        if latest is None or not claimed_by(latest.outcome_claim, token):
            return None
        if latest.status.value != current.status.value:
            latest.outcome_claim = None  # it changed meanwhile (a late video): the new outcome is still owed
            return latest
        latest.outcome_published, latest.outcome_claim = True, None
        return latest

    marked, _ = _store().update(state.job_id, mark)
    log.info("outcome published", job_id=state.job_id, status=body["status"], topic=topic)
    return marked or current


def clean_up(state: JobState) -> JobState:
    """Delete the job's VM and cancel a primary still running; both may be gone already."""
    cfg = clients.config()
    done, vm_gone_at = True, None
    instance, zone = state.fallback.instance, state.fallback.zone
    if instance and zone:
        try:
            clients.instances_client().delete(project=cfg.project, zone=zone, instance=instance)
            vm_gone_at = time.time()
            log.info("fallback VM deleted", job_id=state.job_id, instance=instance)
        except NotFound:
            vm_gone_at = time.time()  # it deleted itself, as it should (at this time at the latest)
        except GoogleAPICallError as err:
            done = False
            log.warning("could not delete the fallback VM; retried later", job_id=state.job_id, error=str(err))
    custom_job = state.primary.custom_job
    if custom_job and state.result.rendered_by != "vertex":
        try:
            if clients.job_client().get_custom_job(name=custom_job).state.name in ACTIVE_VERTEX_STATES:
                clients.job_client().cancel_custom_job(name=custom_job)
                log.info("primary cancelled: the job is finished", job_id=state.job_id, custom_job=custom_job)
        except NotFound:
            pass
        except GoogleAPICallError as err:
            done = False
            log.warning("could not cancel the primary; retried later", job_id=state.job_id, error=str(err))
    if state.status is Status.SUCCEEDED:
        _keep_render_report(state)
    if not done:
        return state

    def mark(current: JobState | None) -> JobState | None:
        if current is None or not current.status.terminal or current.cleaned_up:
            return None
        current.cleaned_up = True
        if vm_gone_at is not None and current.fallback.instance == instance:
            current.fallback.deleted_at = current.fallback.deleted_at or vm_gone_at  # the end of its billed life
        return current

    marked, _ = _store().update(state.job_id, mark)
    return marked or state


def _keep_render_report(state: JobState) -> None:
    """``render.json`` beside the video, from the report the video carries (create-only).

    The worker writes it too, after the video; a VM deleted in between would
    otherwise leave a video without its report.
    """
    report = state.result.report
    if not report.get("rendered_by"):
        return
    from google.api_core.exceptions import PreconditionFailed

    blob = clients.storage_client().bucket(clients.config().output_bucket).blob(layout.render_report_object(state.job_id))
    try:
        blob.upload_from_string(json.dumps(report, indent=1), content_type="application/json", if_generation_match=0)
    except PreconditionFailed:
        pass  # the renderer wrote it
