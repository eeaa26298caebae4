"""The watchdog: every minute, look at unfinished jobs and act on what events missed.

* A primary queued past ``PRIMARY_QUEUE_TIMEOUT_S``: hedge. The fallback VM is
  launched without cancelling the primary; whichever video lands first
  completes the job and the other renderer is stopped.
* A primary whose Vertex job ended but whose event never came (a lost
  message): the Vertex job's real state is applied, as the event would have.
* A fallback VM that vanished without a video (preempted, crashed), or whose
  worker reported an invalid job: relaunch once more as a new attempt, or fail
  the job with the reason.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from google.api_core.exceptions import NotFound

from common import layout
from common.logs import get_logger
from functions import clients
from functions.jobs import fail_job, request_fallback, store
from functions.state import PRIMARY_STATES, JobState, Status
from functions.vertex_events import apply_primary_state

log = get_logger("watchdog")

PRIMARY_QUEUE_TIMEOUT_S = float(os.environ.get("PRIMARY_QUEUE_TIMEOUT_S", "900"))
MAX_VM_ATTEMPTS = int(os.environ.get("MAX_VM_ATTEMPTS", "3"))


def run_watchdog() -> dict[str, int]:
    """One pass over every unfinished job; returns counts of what it did."""
    acted = {"checked": 0, "hedged": 0, "relaunched": 0, "failed": 0}
    for job_id in store().list_ids():
        state = store().get(job_id)
        if state is None or state.status.terminal:
            continue
        acted["checked"] += 1
        if state.status in PRIMARY_STATES:
            acted["hedged"] += _check_primary(state)
        elif state.status is Status.VM_RUNNING:
            outcome = _check_vm(state)
            if outcome:
                acted[outcome] += 1
    if acted["checked"]:
        log.info("watchdog pass", **acted)
    return acted


def _age_s(iso: str) -> float:
    return (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()


def _check_primary(state: JobState) -> int:
    custom_job = state.primary.get("custom_job")
    if custom_job:
        try:
            vertex_job = clients.job_client().get_custom_job(name=custom_job)
        except NotFound:
            request_fallback(state.job_id, "primary job vanished", kind="lost")
            return 1
        state = apply_primary_state(state.job_id, vertex_job) or state
        if state.status not in (Status.PRIMARY_SUBMITTED,):
            return 0
    if _age_s(state.updated_at) > PRIMARY_QUEUE_TIMEOUT_S and state.status is not Status.PRIMARY_RUNNING:
        request_fallback(state.job_id, f"primary queued for over {PRIMARY_QUEUE_TIMEOUT_S:.0f} s: hedging with a VM", kind="queued")
        return 1
    return 0


def _check_vm(state: JobState) -> str | None:
    cfg = clients.config()
    heartbeat = _heartbeat(cfg.staging_bucket, state.job_id)
    if heartbeat.get("stage") == "failed" and heartbeat.get("invalid"):
        fail_job(state.job_id, f"invalid job: {heartbeat.get('error', 'rejected by the renderer')}")
        return "failed"
    try:
        clients.instances_client().get(project=cfg.project, zone=state.fallback["zone"], instance=state.fallback["instance"])
        return None  # still working
    except NotFound:
        pass
    if _video_exists(cfg.output_bucket, state.job_id):
        return None  # it finished; the completion event is on its way
    attempt = int(state.fallback.get("attempt", 1))
    if attempt >= MAX_VM_ATTEMPTS:
        fail_job(state.job_id, f"fallback VM lost {attempt} times without a video (last: {state.fallback.get('instance')})")
        return "failed"
    _relaunch(state.job_id, attempt)
    return "relaunched"


def _relaunch(job_id: str, attempt: int) -> None:
    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.VM_RUNNING or state.fallback.get("attempt") != attempt:
            return None
        lost = state.fallback.get("instance")
        state.fallback = {"attempt": attempt + 1, "previous": state.fallback}
        state.move_to(Status.FALLBACK_REQUESTED, f"VM {lost} gone without a video: relaunching", attempt=attempt + 1)
        return state

    _, changed = store().update(job_id, change)
    if changed:
        clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": "vm lost"}, job_id=job_id)


def _heartbeat(bucket: str, job_id: str) -> dict:
    try:
        return json.loads(clients.storage_client().bucket(bucket).blob(layout.progress_object(job_id)).download_as_bytes())
    except (NotFound, ValueError):
        return {}


def _video_exists(bucket: str, job_id: str) -> bool:
    return clients.storage_client().bucket(bucket).blob(layout.video_object(job_id)).exists()
