"""Job steps shared by every function: the state store, failing a job, completing one."""

from __future__ import annotations

import functools

from common.logs import get_logger
from functions import clients
from functions.state import JobState, StateStore, Status

log = get_logger("jobs")


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
        clients.publish(clients.config().topic_failed, {"job_id": job_id, "status": "failed", "reason": reason}, job_id=job_id)
    return state
