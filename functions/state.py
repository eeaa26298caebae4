"""Each job's state: one JSON object in the staging bucket, changed only by compare-and-swap.

``state/<job_id>.json`` holds the job's status, what the primary and the
fallback did, and a timestamped history. Every change reads the object with its
generation and writes it back with ``if_generation_match``: two deliveries of the
same event race, one wins, the other re-reads and finds nothing left to do. That
is what makes every handler idempotent and survives function restarts: the state
lives in GCS, not in memory.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from google.api_core.exceptions import NotFound, PreconditionFailed
from google.cloud import storage

from common import layout


class Status(str, enum.Enum):
    RECEIVED = "received"  # valid manifest, assets present
    PRIMARY_SUBMITTING = "primary_submitting"  # claimed: a Vertex AI job is being created
    PRIMARY_SUBMITTED = "primary_submitted"  # Vertex AI job exists (queued or pending)
    PRIMARY_RUNNING = "primary_running"
    FALLBACK_REQUESTED = "fallback_requested"  # the primary failed in a way a VM can fix
    VM_LAUNCHING = "vm_launching"  # claimed: a VM is being created
    VM_RUNNING = "vm_running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED)


# Forward order: a stale or reordered event can never move a job backwards.
_RANK = {status: rank for rank, status in enumerate(Status)}
PRIMARY_STATES = (Status.RECEIVED, Status.PRIMARY_SUBMITTING, Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class JobState:
    job_id: str
    status: Status
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    source: str = ""  # "message" or "upload"
    video_length_s: float | None = None
    deadline_s: float | None = None
    error: str | None = None
    primary: dict[str, Any] = field(default_factory=dict)
    fallback: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    outcome_published: bool = False  # render-completed / render-failed sent (once the state says so)
    outcome_claim: dict[str, Any] = field(default_factory=dict)  # who is publishing it now (token, claimed_at)
    dead_letters: int = 0  # messages about this job that a function failed on until Pub/Sub gave up
    first_dead_letter_at: float | None = None  # when the first of them came (epoch seconds)
    cleaned_up: bool = False  # after a terminal state: the VM deleted, a losing primary cancelled
    history: list[dict[str, Any]] = field(default_factory=list)

    def move_to(self, status: Status, note: str = "", **details: Any) -> None:
        """Change status and append a history entry (the timeline operators see)."""
        self.status = status
        self.updated_at = now_iso()
        entry = {"status": status.value, "at": self.updated_at, "note": note}
        entry.update({k: v for k, v in details.items() if v is not None})
        self.history.append(entry)

    def can_advance_to(self, status: Status) -> bool:
        return not self.status.terminal and _RANK[status] > _RANK[self.status]

    def to_json(self) -> bytes:
        data = asdict(self)
        data["status"] = self.status.value
        return json.dumps(data, indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "JobState":
        data = json.loads(raw)
        data["status"] = Status(data["status"])
        return cls(**data)


def claim_is_live(section: dict[str, Any], timeout_s: float, now: float | None = None) -> bool:
    """Whether the claim recorded in ``section`` (``claim``, ``claimed_at``) is held by a live delivery.

    A claimant that crashed leaves its claim behind; past ``timeout_s`` (longer
    than a function may run) it is dead, and the watchdog hands the work on.
    """
    now = time.time() if now is None else now
    return bool(section.get("claim")) and now - float(section.get("claimed_at", 0)) < timeout_s


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


class StateStore:
    """Reads and compare-and-swaps job state objects in one bucket."""

    def __init__(self, client: storage.Client, bucket: str) -> None:
        self._bucket = client.bucket(bucket)

    def get(self, job_id: str) -> JobState | None:
        try:
            blob = self._bucket.blob(layout.state_object(job_id))
            return JobState.from_json(blob.download_as_bytes())
        except NotFound:
            return None

    def update(self, job_id: str, change: Callable[[JobState | None], JobState | None]) -> tuple[JobState | None, bool]:
        """Apply ``change`` to the job's state atomically; returns ``(state, changed)``.

        ``change`` gets a private copy of the current state (None if the job
        is unknown) and returns the new state, or None to leave it as it is.
        """

        def on_bytes(raw: bytes | None) -> bytes | None:
            proposed = change(JobState.from_json(raw) if raw else None)
            return proposed.to_json() if proposed else None

        raw, changed = cas_update(self._bucket, layout.state_object(job_id), on_bytes)
        return (JobState.from_json(raw) if raw else None), changed

    def list_ids(self) -> list[str]:
        """Every job id with a state object (for the watchdog and operators)."""
        prefix = layout.STATE_PREFIX
        return [b.name[len(prefix) : -len(".json")] for b in self._bucket.list_blobs(prefix=prefix) if b.name.endswith(".json")]
