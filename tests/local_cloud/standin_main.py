"""A stand-in for main.py in the local cloud's tests: every topology target records what it gets.

Each target appends one JSON line per CloudEvent to
``$STANDIN_EVENTS_DIR/<target>.jsonl``: when it came, the event's type, source and data, and
the environment variables the local cloud promises its functions. A message
with the attribute ``standin_fail=1`` is recorded and then fails (HTTP 500), so
tests can watch Pub/Sub's retries and dead-lettering. One with
``standin_firestore=ID`` also writes the document ``standin/ID`` with a Firestore
client made as the functions make theirs (from the environment alone).
The HTTP target ``status_api`` answers with what it was sent and whether the
bearer token is the one the local cloud gave it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

_ENV_SEEN = (
    "GOOGLE_CLOUD_PROJECT",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "FIRESTORE_DATABASE",
    "STORAGE_EMULATOR_HOST",
    "API_CREDENTIALS",
    "FAST_RENDER_STANDIN_MARK",
    "STATUS_TOKEN",  # the HTTP functions' only
    "AVMONITOR_TOKEN",  # the clients' only
)


def _record(target: str, event: CloudEvent) -> None:
    line = {
        "received_at": time.time(),
        "type": event["type"],
        "source": event["source"],
        "data": event.data,
        "env": {name: os.environ.get(name) for name in _ENV_SEEN},
    }
    with open(Path(os.environ["STANDIN_EVENTS_DIR"]) / f"{target}.jsonl", "a") as out:
        out.write(json.dumps(line) + "\n")
    attributes = event.data["message"].get("attributes", {})
    if "standin_firestore" in attributes:
        # Imported only here, so starting the other targets does not pay for it.
        from google.cloud import firestore

        db = firestore.Client(database=os.environ["FIRESTORE_DATABASE"])
        db.collection("standin").document(attributes["standin_firestore"]).set({"target": target, "project": db.project})
    if attributes.get("standin_fail") == "1":
        raise RuntimeError("failing on purpose (standin_fail=1)")


@functions_framework.cloud_event
def intake_job_message(event: CloudEvent) -> None:
    _record("intake_job_message", event)


@functions_framework.cloud_event
def intake_staged_manifest(event: CloudEvent) -> None:
    _record("intake_staged_manifest", event)


@functions_framework.cloud_event
def submit_primary(event: CloudEvent) -> None:
    _record("submit_primary", event)


@functions_framework.cloud_event
def on_vertex_event(event: CloudEvent) -> None:
    _record("on_vertex_event", event)


@functions_framework.cloud_event
def launch_fallback(event: CloudEvent) -> None:
    _record("launch_fallback", event)


@functions_framework.cloud_event
def on_output_finalized(event: CloudEvent) -> None:
    _record("on_output_finalized", event)


@functions_framework.cloud_event
def watchdog_tick(event: CloudEvent) -> None:
    _record("watchdog_tick", event)


@functions_framework.cloud_event
def on_dead_letter(event: CloudEvent) -> None:
    _record("on_dead_letter", event)


@functions_framework.http
def status_api(request):
    token = os.environ.get("STATUS_TOKEN", "")
    return {
        "path": request.path,
        "authorized": bool(token) and request.headers.get("Authorization") == f"Bearer {token}",
        "env": {name: os.environ.get(name) for name in _ENV_SEEN},
    }
