"""Job steps shared by several functions: the state store, failing a job, falling back."""

from __future__ import annotations

import functools
import json
import time
from typing import Callable

from common import layout
from common.logs import get_logger
from functions import clients, timing
from functions.outcome import finish_job
from functions.state import PRIMARY_STATES, JobState, PrimaryRun, Status
from functions.store import StateStore

log = get_logger("jobs")


class NotYet(RuntimeError):
    """An event arrived before the step it follows was recorded; Pub/Sub delivers it again shortly."""


def about_current_primary(state: JobState, custom_job: str) -> bool:
    """Whether an event about ``custom_job`` concerns the job's current Vertex job.

    A quota failure can be reported before the primary step has recorded the
    Vertex job it created; such an event is not stale, only early.
    """
    recorded = state.primary.custom_job
    if recorded is None and state.status is Status.PRIMARY_SUBMITTING:
        raise NotYet(f"{state.job_id}: event about {custom_job} before the primary recorded it")
    return recorded == custom_job


@functools.lru_cache(maxsize=1)
def store() -> StateStore:
    return StateStore(clients.firestore_client(), retention_days=clients.config().job_retention_days)


def fail_job(job_id: str, reason: str, *, when: Callable[[JobState], bool] | None = None, **details: object) -> JobState | None:
    """Mark a job failed for good, with its one-line reason, and tell the main app once.

    A job that is already finished stays as it is: a late failure report (an
    old VM's, a stale event) must not undo a delivered video. ``when`` narrows
    it further: the job fails only if ``when(state)`` holds (say, the event is
    about its current attempt), so a caller's check and the write are one step.
    """

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status.terminal or (when is not None and not when(state)):
            return None
        state.error = reason
        state.move_to(Status.FAILED, reason, **details)
        return state

    state, changed = store().update(job_id, change)
    if changed:
        log.error("job failed", job_id=job_id, reason=reason, **details)
    return finish_job(state) if state is not None else None


def fail_new_job(job_id: str, reason: str, **details: object) -> JobState | None:
    """Record a job that was rejected before it ever started, failed with its reason.

    Only a job nobody knows yet: a malformed message that names an existing
    job must not touch it (it may be healthy and rendering).
    """

    def create(state: JobState | None) -> JobState | None:
        if state is not None:
            return None
        state = JobState(job_id=job_id, status=Status.RECEIVED)
        state.error = reason
        state.move_to(Status.FAILED, reason, **details)
        return state

    state, created = store().update(job_id, create)
    if not created:
        log.error("message rejected; the job it names is left as it is", job_id=job_id, reason=reason,
                  job_status=state.status.value if state else None)
        return state
    log.error("job failed", job_id=job_id, reason=reason, **details)
    return finish_job(state) if state is not None else None


def primary_is_alive(state: JobState) -> bool:
    """Whether the job's Vertex AI job may still deliver (queued, pending or running)."""
    from google.api_core.exceptions import NotFound

    from functions.outcome import ACTIVE_VERTEX_STATES

    custom_job = state.primary.custom_job
    if not custom_job:
        return False
    try:
        return clients.job_client().get_custom_job(name=custom_job).state.name in ACTIVE_VERTEX_STATES
    except NotFound:
        return False


def fallback_gave_up(job_id: str, reason: str, *, when: Callable[[JobState], bool], **details: object) -> JobState | None:
    """The fallback cannot render this job: fail it, unless the primary is still alive.

    A hedge (a VM launched beside a slow primary) that cannot launch must not
    kill a primary that may still deliver: the job goes back to the primary,
    and the watchdog may hedge again later.
    """
    current = store().get(job_id)
    if current is None or current.status.terminal or not when(current):
        return current
    if not primary_is_alive(current):
        return fail_job(job_id, reason, when=when, **details)

    def back_to_primary(state: JobState | None) -> JobState | None:
        if state is None or state.status.terminal or not when(state):
            return None
        state.fallback.claim, state.fallback.retry_at = None, None
        state.fallback.hedge_failed = reason
        started = any(entry["status"] == Status.PRIMARY_RUNNING.value for entry in state.history)
        status = Status.PRIMARY_RUNNING if started else Status.PRIMARY_SUBMITTED
        state.move_to(status, f"hedge not launched ({reason}); the primary goes on", **details)
        return state

    state, changed = store().update(job_id, back_to_primary)
    if changed:
        log.warning("hedge given up; the primary goes on", job_id=job_id, reason=reason)
    return state


def request_fallback(job_id: str, reason: str, *, kind: str, custom_job: str | None = None) -> JobState | None:
    """Move a job still with the primary to the fallback, once, and tell the launcher."""

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status not in PRIMARY_STATES:
            return None
        if custom_job and not about_current_primary(state, custom_job):
            return None  # an event about an older Vertex job of ours
        state.primary.failure, state.primary.error = kind, reason
        state.move_to(Status.FALLBACK_REQUESTED, reason, failure=kind)
        return state

    state, changed = store().update(job_id, change)
    if changed or (state is not None and state.status is Status.FALLBACK_REQUESTED):
        # Re-announcing on a redelivery covers a crash between the write and the publish.
        clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": reason}, job_id=job_id)
        timing.note(job_id=job_id)
        timing.mark("fallback_published")
        log.warning("primary failed, falling back", job_id=job_id, failure=kind, reason=reason)
    return state


def retry_primary(job_id: str, reason: str, *, kind: str, custom_job: str) -> JobState | None:
    """Submit to Vertex AI once more after a passing fault; past the limit, fall back instead."""

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status not in PRIMARY_STATES or not about_current_primary(state, custom_job):
            return None
        attempt, first = state.primary.attempt, state.primary.first_attempt
        if attempt - first + 1 >= clients.config().primary_max_attempts:
            return None
        previous = [*state.primary.previous, {"custom_job": custom_job, "error": reason}]
        state.primary = PrimaryRun(attempt=attempt + 1, first_attempt=first, previous=previous)
        state.move_to(Status.RECEIVED, f"{reason}: submitting to Vertex AI again", attempt=attempt + 1)
        return state

    state, changed = store().update(job_id, change)
    if changed or (state is not None and state.status is Status.RECEIVED):
        clients.publish(clients.config().topic_primary, {"job_id": job_id}, job_id=job_id)
        log.warning("primary failed, retrying it", job_id=job_id, failure=kind, reason=reason)
        return state
    return request_fallback(job_id, reason, kind=kind, custom_job=custom_job)


def give_up_on_message(data: bytes, attributes: dict[str, str]) -> JobState | None:
    """A message some function failed on again and again: count it against its job.

    Pub/Sub moves a message to ``dead-letters`` after its last delivery attempt
    (about half a minute of failures); the attributes say from where and how
    often. That is no verdict on the job: a function or a dependency may be down
    for a while (a crash loop, an outage), and the watchdog re-drives every
    unfinished job. The job fails, with the reason, only once its messages have
    kept dying for ``DEAD_LETTER_PATIENCE_S`` and at least ``MAX_DEAD_LETTERS``
    times, so nothing is retried forever and no passing outage fails a healthy
    job. This handler never raises on bad input: its own subscription has no
    dead-letter topic behind it.
    """
    job_id = _job_id_of_message(data, attributes)
    source = attributes.get("CloudPubSubDeadLetterSourceSubscription", "a subscription")
    count = attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "several")
    if job_id is None:
        log.error("dead letter without a job", source=source, deliveries=count, attributes=attributes)
        return None
    cfg, now = clients.config(), time.time()
    if store().get(job_id) is None:
        return _accept_lost_job(job_id, data, attributes, source)

    def count_it(state: JobState | None) -> JobState | None:
        if state is None or state.status.terminal:
            return None
        state.dead_letters += 1
        state.first_dead_letter_at = state.first_dead_letter_at or now
        return state

    state, counted = store().update(job_id, count_it)
    if not counted or state is None:
        return state
    dying_for_s = now - (state.first_dead_letter_at or now)
    log.error("message dead-lettered", job_id=job_id, source=source, deliveries=count, dead_letters=state.dead_letters,
              dying_for_s=round(dying_for_s, 1))
    if state.dead_letters < cfg.max_dead_letters or dying_for_s < cfg.dead_letter_patience_s:
        return state
    return fail_job(job_id, f"gave up after {state.dead_letters} dead-lettered messages over {dying_for_s:.0f} s "
                            f"(last: {count} failed deliveries from {source}; see that function's logs)")


def _accept_lost_job(job_id: str, data: bytes, attributes: dict[str, str], source: str) -> JobState | None:
    """A job message (or ``job.json`` notification) that died before intake recorded its job.

    Nothing else would ever start that job, so intake is run on it here, once
    more; if that fails too, the job is recorded as failed with the reason, so
    the main app hears instead of waiting forever.
    """
    from functions import intake

    try:
        if layout.job_id_of_manifest_object(attributes.get("objectId", "")) == job_id:
            state = intake.accept_staged_manifest(attributes["objectId"])
        else:
            state = intake.accept_job_message(data)
    except Exception as err:  # noqa: BLE001 -- this is the last chance: record it rather than raise
        log.exception("a dead-lettered job could not be accepted", job_id=job_id, source=source)
        return fail_new_job(job_id, f"could not be accepted: {type(err).__name__}: {str(err)[:200]} (dead-lettered from {source})")
    log.warning("a dead-lettered job message was accepted on its last chance", job_id=job_id, source=source,
                status=state.status.value if state else None)
    return state


def _job_id_of_message(data: bytes, attributes: dict[str, str]) -> str | None:
    """Internal messages carry ``job_id``; GCS notifications name the object; job messages the manifest."""
    candidates = [attributes.get("job_id")]
    object_name = attributes.get("objectId", "")
    candidates += [layout.job_id_of_manifest_object(object_name), layout.job_id_of_video_object(object_name)]
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: no job named in it
        body = None
    if isinstance(body, dict):
        manifest = body.get("manifest")
        candidates += [body.get("job_id"), manifest.get("job_id") if isinstance(manifest, dict) else None]
    return next((c for c in candidates if layout.is_valid_job_id(c)), None)
