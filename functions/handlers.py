"""Cloud Function entry points: unpack the CloudEvent, call one plain function.

Every trigger is a Pub/Sub push (``google.cloud.pubsub.topic.v1.messagePublished``):
job messages, GCS notifications (their attributes carry ``bucketId``,
``objectId``, ``eventType``), Vertex job-state log entries and the watchdog's
tick. A handler that raises makes Pub/Sub deliver the message again (with
backoff), which is the right answer to a transient error; a permanent problem
(invalid input) is recorded on the job instead and the handler returns normally.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from functions import timing

# Each handler imports its module on first call: a deployed function loads
# only what it runs (Compute Engine's and Vertex AI's libraries are slow to import).
# Each call is timed (``timing.py``: one line per delivery; the import is its own part).


def _message(event: CloudEvent) -> tuple[bytes, dict[str, str]]:
    """The Pub/Sub message's data and attributes."""
    message: dict[str, Any] = (event.data or {}).get("message", {})
    data = base64.b64decode(message.get("data", "") or b"")
    return data, message.get("attributes") or {}


def _timed(function: str, event: CloudEvent):
    """The delivery's timing (its message's publish time: the delivery's start)."""
    message = (event.data or {}).get("message", {}) if isinstance(event.data, dict) else {}
    return timing.delivery(function, timing.publish_time(message.get("publishTime") or event.get("time")))


def _job_id(data: bytes, attributes: dict[str, str]) -> str | None:
    """Internal topics carry the job id as an attribute (and in the JSON body); None if neither does.

    A message without one is bad input: logged once and acknowledged, never retried.
    """
    from common.layout import is_valid_job_id

    job_id = attributes.get("job_id")
    if not job_id:
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            body = None
        job_id = body.get("job_id") if isinstance(body, dict) else None
    if is_valid_job_id(job_id):
        return job_id
    from common.logs import get_logger

    get_logger("handlers").error("message ignored: no valid job_id in its attributes or body", job_id=repr(job_id)[:80])
    return None


def _is_finalize(attributes: dict[str, str]) -> bool:
    return attributes.get("eventType", "OBJECT_FINALIZE") == "OBJECT_FINALIZE"


@functions_framework.cloud_event
def intake_job_message(event: CloudEvent) -> None:
    with _timed("intake_job_message", event):
        with timing.span("import"):
            from functions import intake
        data, _ = _message(event)
        intake.accept_job_message(data)


@functions_framework.cloud_event
def intake_staged_manifest(event: CloudEvent) -> None:
    with _timed("intake_staged_manifest", event):
        with timing.span("import"):
            from functions import intake
        _, attributes = _message(event)
        if _is_finalize(attributes) and attributes.get("objectId"):
            intake.accept_staged_manifest(attributes["objectId"])


@functions_framework.cloud_event
def submit_primary(event: CloudEvent) -> None:
    with _timed("submit_primary", event):
        with timing.span("import"):
            from functions import primary
        job_id = _job_id(*_message(event))
        if job_id:
            primary.submit_primary(job_id)


@functions_framework.cloud_event
def on_vertex_event(event: CloudEvent) -> None:
    with _timed("on_vertex_event", event):
        with timing.span("import"):
            from functions import vertex_events
        data, _ = _message(event)
        vertex_events.handle_vertex_event(data)


@functions_framework.cloud_event
def launch_fallback(event: CloudEvent) -> None:
    with _timed("launch_fallback", event):
        with timing.span("import"):
            from functions import fallback
        job_id = _job_id(*_message(event))
        if job_id:
            fallback.launch_fallback(job_id)


@functions_framework.cloud_event
def on_output_finalized(event: CloudEvent) -> None:
    with _timed("on_output_finalized", event):
        with timing.span("import"):
            from functions import completion
        _, attributes = _message(event)
        if _is_finalize(attributes) and attributes.get("objectId"):
            completion.complete_from_output(attributes["objectId"], attributes.get("objectGeneration"))


@functions_framework.cloud_event
def watchdog_tick(event: CloudEvent) -> None:
    with _timed("watchdog_tick", event):
        with timing.span("import"):
            from functions import watchdog
        watchdog.run_watchdog()


@functions_framework.cloud_event
def on_dead_letter(event: CloudEvent) -> None:
    with _timed("on_dead_letter", event):
        with timing.span("import"):
            from functions import jobs
        data, attributes = _message(event)
        jobs.give_up_on_message(data, attributes)
