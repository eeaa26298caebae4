"""Job steps shared by several functions: the state store, failing a job, falling back."""

from __future__ import annotations

import functools
import json

from common import layout
from common.logs import get_logger
from functions import clients
from functions.state import PRIMARY_STATES, JobState, StateStore, Status

log = get_logger("jobs")


class NotYet(RuntimeError):
    """An event arrived before the step it follows was recorded; Pub/Sub delivers it again shortly."""


def about_current_primary(state: JobState, custom_job: str) -> bool:
    """Whether an event about ``custom_job`` concerns the job's current Vertex job.

    A quota failure can be reported before the primary step has recorded the
    Vertex job it created; such an event is not stale, only early.
    """
    recorded = state.primary.get("custom_job")
    if recorded is None and state.status is Status.PRIMARY_SUBMITTING:
        raise NotYet(f"{state.job_id}: event about {custom_job} before the primary recorded it")
    return recorded == custom_job


@functools.lru_cache(maxsize=1)
def store() -> StateStore:
    return StateStore(clients.storage_client(), clients.config().staging_bucket)


def fail_job(job_id: str, reason: str, **details: object) -> JobState | None:
    """Mark a job failed for good, with its one-line reason, and tell the main app once.

    A job that is already finished stays as it is: a late failure report (an
    old VM's, a stale event) must not undo a delivered video.
    """

    def change(state: JobState | None) -> JobState | None:
        if state is None:
            state = JobState(job_id=job_id, status=Status.RECEIVED)
        elif state.status.terminal:
            return None
        state.error = reason
        state.move_to(Status.FAILED, reason, **details)
        return state

    state, changed = store().update(job_id, change)
    if changed:
        log.error("job failed", job_id=job_id, reason=reason, **details)
    if state is not None and state.status is Status.FAILED and not state.outcome_published:
        body = {"job_id": job_id, "status": "failed", "reason": state.error}
        state = publish_outcome(state, clients.config().topic_failed, body)
    return state


def publish_outcome(state: JobState, topic: str, body: dict) -> JobState:
    """Tell the main app how the job ended, then record that it was told.

    The state is written first, the message second: a crash in between is
    mended by the next delivery, which finds ``outcome_published`` still false.
    (So the main app may, rarely, hear twice; it keys on ``job_id``.)
    """
    clients.publish(topic, body, job_id=state.job_id)

    def mark(current: JobState | None) -> JobState | None:
        if current is None or current.outcome_published:
            return None
        current.outcome_published = True
        return current

    marked, _ = store().update(state.job_id, mark)
    return marked or state


def request_fallback(job_id: str, reason: str, *, kind: str, custom_job: str | None = None) -> JobState | None:
    """Move a job still with the primary to the fallback, once, and tell the launcher."""

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status not in PRIMARY_STATES:
            return None
        if custom_job and not about_current_primary(state, custom_job):
            return None  # an event about an older Vertex job of ours
        state.primary.update(failure=kind, error=reason)
        state.move_to(Status.FALLBACK_REQUESTED, reason, failure=kind)
        return state

    state, changed = store().update(job_id, change)
    if changed or (state is not None and state.status is Status.FALLBACK_REQUESTED):
        # Re-announcing on a redelivery covers a crash between the write and the publish.
        clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": reason}, job_id=job_id)
        log.warning("primary failed, falling back", job_id=job_id, failure=kind, reason=reason)
    return state


def retry_primary(job_id: str, reason: str, *, kind: str, custom_job: str) -> JobState | None:
    """Submit to Vertex AI once more after a passing fault; past the limit, fall back instead."""

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status not in PRIMARY_STATES or not about_current_primary(state, custom_job):
            return None
        attempt = int(state.primary.get("attempt", 1))
        if attempt >= clients.config().primary_max_attempts:
            return None
        previous = [*state.primary.get("previous", []), {"custom_job": custom_job, "error": reason}]
        state.primary = {"attempt": attempt + 1, "previous": previous}
        state.move_to(Status.RECEIVED, f"{reason}: submitting to Vertex AI again", attempt=attempt + 1)
        return state

    state, changed = store().update(job_id, change)
    if changed or (state is not None and state.status is Status.RECEIVED):
        clients.publish(clients.config().topic_primary, {"job_id": job_id}, job_id=job_id)
        log.warning("primary failed, retrying it", job_id=job_id, failure=kind, reason=reason)
        return state
    return request_fallback(job_id, reason, kind=kind, custom_job=custom_job)


def give_up_on_message(data: bytes, attributes: dict[str, str]) -> JobState | None:
    """A message some function failed on again and again: fail its job, so it is not stuck silently.

    Pub/Sub moves a message to ``dead-letters`` after its last delivery attempt;
    the attributes say from where and how often.
    """
    job_id = _job_id_of_message(data, attributes)
    source = attributes.get("CloudPubSubDeadLetterSourceSubscription", "a subscription")
    count = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "several")
    if job_id is None:
        log.error("dead letter without a job", source=source, deliveries=count, attributes=attributes)
        return None
    return fail_job(job_id, f"gave up after {count} failed deliveries from {source} (see that function's logs)")


def _job_id_of_message(data: bytes, attributes: dict[str, str]) -> str | None:
    """Internal messages carry ``job_id``; GCS notifications name the object; job messages the manifest."""
    candidates = [attributes.get("job_id")]
    object_name = attributes.get("objectId", "")
    candidates += [layout.job_id_of_manifest_object(object_name), layout.job_id_of_video_object(object_name)]
    try:
        body = json.loads(data)
        if isinstance(body, dict):
            candidates += [body.get("job_id"), (body.get("manifest") or {}).get("job_id") if isinstance(body.get("manifest"), dict) else None]
    except ValueError:
        pass
    return next((c for c in candidates if layout.is_valid_job_id(c)), None)
