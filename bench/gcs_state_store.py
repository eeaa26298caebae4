"""The job state store main had before Firestore: one JSON object per job in a bucket, changed by compare-and-swap.

Kept only so that ``bench/store.py`` can compare it with ``functions/store.py``
on the same jobs; no product code imports it (nor may it). It is
``functions/state.py``'s ``cas_update`` and ``StateStore`` as of commit
aee2134, with one change: an object holds today's document
(:meth:`JobState.to_document`, its datetimes as ISO 8601 strings) and is read
back with :meth:`JobState.from_document`, so both stores keep exactly the same
fields.

``state/<job_id>.json`` holds the job's state. Every change reads the object
with its generation and writes it back with ``if_generation_match``: of two
racing writers one wins, the other re-reads and runs its change again. The
only ways to find jobs are listing the prefix and reading every object.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from typing import Any, Callable

from google.api_core.exceptions import NotFound, PreconditionFailed
from google.cloud import storage

from functions.state import JobState

STATE_PREFIX = "state/"  # common/layout.py's, before Firestore


def state_object(job_id: str) -> str:
    return f"{STATE_PREFIX}{job_id}.json"


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(state: JobState, retention_days: float) -> bytes:
    """The object's bytes: the Firestore document's fields, as main's objects were written (``indent=1``)."""
    return json.dumps(state.to_document(retention_days), indent=1, ensure_ascii=False, default=_json_default).encode()


def from_json(raw: bytes) -> JobState:
    return JobState.from_document(json.loads(raw))


def cas_update(
    bucket: storage.Bucket, name: str, change: Callable[[bytes | None], bytes | None], *, attempts: int = 20
) -> tuple[bytes | None, bool]:
    """Read-modify-write one object atomically: the write succeeds only if nobody wrote in between.

    ``change`` gets the current bytes (None if the object does not exist) and
    returns new bytes, or None to leave the object as it is. It may run several
    times when writers race, so it must not have side effects. Returns
    ``(bytes now stored, changed)``.
    """
    for attempt in range(attempts):
        # A fresh Blob each time: a reused one would ask for the generation it
        # read last, which a competing write has just replaced (a 404).
        blob = bucket.blob(name)
        try:
            current, generation = blob.download_as_bytes(), blob.generation or 0
        except NotFound:
            current, generation = None, 0  # generation 0: create only
        proposed = change(current)
        if proposed is None:
            return current, False
        try:
            blob.upload_from_string(proposed, content_type="application/json", if_generation_match=generation)
            return proposed, True
        except PreconditionFailed:
            time.sleep(min(0.05 * (attempt + 1), 0.5))
    raise RuntimeError(f"{name}: too much contention, gave up after {attempts} attempts")


class GcsStateStore:
    """Reads and compare-and-swaps job state objects in one bucket (main's ``StateStore`` before Firestore)."""

    def __init__(self, client: storage.Client, bucket: str, *, retention_days: float = 90.0) -> None:
        self._bucket = client.bucket(bucket)
        self._retention_days = retention_days

    @property
    def bucket(self) -> storage.Bucket:
        return self._bucket

    def get(self, job_id: str) -> JobState | None:
        try:
            blob = self._bucket.blob(state_object(job_id))
            return from_json(blob.download_as_bytes())
        except NotFound:
            return None

    def put(self, state: JobState) -> None:
        """Write the state unconditionally (seeding only; the product changed objects through ``update``)."""
        self._bucket.blob(state_object(state.job_id)).upload_from_string(
            to_json(state, self._retention_days), content_type="application/json")

    def update(self, job_id: str, change: Callable[[JobState | None], JobState | None]) -> tuple[JobState | None, bool]:
        """Apply ``change`` to the job's state atomically; returns ``(state, changed)``.

        ``change`` gets a private copy of the current state (None if the job
        is unknown) and returns the new state, or None to leave it as it is.
        """

        def on_bytes(raw: bytes | None) -> bytes | None:
            proposed = change(from_json(raw) if raw else None)
            return to_json(proposed, self._retention_days) if proposed else None

        raw, changed = cas_update(self._bucket, state_object(job_id), on_bytes)
        return (from_json(raw) if raw else None), changed

    def list_ids(self) -> list[str]:
        """Every job id with a state object (for the watchdog and operators)."""
        prefix = STATE_PREFIX
        return [b.name[len(prefix) : -len(".json")] for b in self._bucket.list_blobs(prefix=prefix) if b.name.endswith(".json")]
