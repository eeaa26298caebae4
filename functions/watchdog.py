"""The watchdog: every minute, look at unfinished jobs and act on what events missed.

Primary (Vertex AI) jobs:

* queued past ``PRIMARY_QUEUE_TIMEOUT_S``, or running past
  ``PRIMARY_OVERRUN_FACTOR`` x its estimate: hedge. The fallback VM is
  launched *without* cancelling the primary; whichever video lands first
  completes the job (the upload is create-only) and the other renderer is
  stopped by the completion step.
* ended without its event reaching us (a lost message): the Vertex job's real
  state is applied, as the event would have.

Fallback jobs:

* waiting out a backoff, or whose fallback request was lost: announced again.
* a VM that vanished without a video: preempted (Spot) or crashed. Relaunched
  as a new attempt, which reuses the finished segments; the preemption count
  steers the next choice to on-demand after the catalog's ``max_preemptions``.
  After ``MAX_VM_ATTEMPTS`` the job fails with the reason.
* a worker that found the job invalid: the job fails with its reason.

And the reaper: a VM labelled as ours whose job is finished or unknown, or
which is not the job's current attempt, is deleted.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from google.api_core.exceptions import NotFound

from common import layout
from common.logs import get_logger
from functions import clients
from functions.jobs import fail_job, request_fallback, store
from functions.primary import JOB_LABEL
from functions.state import PRIMARY_STATES, JobState, Status

log = get_logger("watchdog")

def run_watchdog() -> dict[str, int]:
    """One pass over every unfinished job, then the reaper; returns counts of what it did."""
    acted = {"checked": 0, "hedged": 0, "reannounced": 0, "relaunched": 0, "failed": 0, "reaped": 0}
    states: dict[str, JobState] = {}
    for job_id in store().list_ids():
        state = store().get(job_id)
        if state is None:
            continue
        states[job_id] = state
        if state.status.terminal:
            continue
        acted["checked"] += 1
        outcome = None
        if state.status in PRIMARY_STATES:
            outcome = _check_primary(state)
        elif state.status is Status.FALLBACK_REQUESTED:
            outcome = _check_fallback_request(state)
        elif state.status is Status.VM_RUNNING:
            outcome = _check_vm(state)
        if outcome:
            acted[outcome] += 1
    acted["reaped"] = reap_orphans(states)
    if any(v for k, v in acted.items() if k != "checked"):
        log.info("watchdog acted", **acted)
    return acted


def _age_s(iso: str) -> float:
    return (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()


def _since(state: JobState, status: Status) -> float:
    """Seconds since the job last entered ``status``."""
    entered = [h["at"] for h in state.history if h["status"] == status.value]
    return _age_s(entered[-1]) if entered else _age_s(state.updated_at)


# ---------------------------------------------------------------- primary


def _check_primary(state: JobState) -> str | None:
    from functions.vertex_events import apply_primary_state

    custom_job = state.primary.get("custom_job")
    if custom_job:
        try:
            vertex_job = clients.job_client().get_custom_job(name=custom_job)
        except NotFound:
            request_fallback(state.job_id, "the primary's Vertex AI job vanished", kind="lost")
            return "hedged"
        state = apply_primary_state(state.job_id, vertex_job) or state  # what a lost event would have done
    cfg = clients.config()
    if state.status is Status.PRIMARY_SUBMITTED and _since(state, Status.PRIMARY_SUBMITTED) > cfg.primary_queue_timeout_s:
        request_fallback(state.job_id, f"primary queued for over {cfg.primary_queue_timeout_s:.0f} s: hedging with a VM", kind="queued")
        return "hedged"
    if state.status is Status.PRIMARY_RUNNING:
        limit = cfg.primary_overrun_factor * _primary_estimate_s(state)
        if _since(state, Status.PRIMARY_RUNNING) > limit:
            request_fallback(state.job_id, f"primary running for over {limit:.0f} s ({cfg.primary_overrun_factor:g} x its estimate): hedging",
                             kind="overrun")
            return "hedged"
    return None


def _primary_estimate_s(state: JobState) -> float:
    """The primary's render time on its T4 by the catalog's baseline."""
    from functions.fallback import catalog

    return (state.video_length_s or 0.0) * catalog().baseline_s_per_s + catalog().transfer_overhead_s


# ---------------------------------------------------------------- fallback


def _check_fallback_request(state: JobState) -> str | None:
    retry_at = state.fallback.get("retry_at")
    due = retry_at is not None and retry_at <= time.time()
    lost = retry_at is None and _age_s(state.updated_at) > clients.config().fallback_reannounce_s
    if not (due or lost):
        return None
    clients.publish(clients.config().topic_fallback, {"job_id": state.job_id, "reason": "retry" if due else "re-announce"},
                    job_id=state.job_id)
    return "reannounced"


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
    if clients.storage_client().bucket(cfg.output_bucket).blob(layout.video_object(state.job_id)).exists():
        return None  # it finished; the completion event is on its way
    attempt = int(state.fallback.get("attempt", 1))
    # A lost Spot VM counts as preempted even if its worker logged an error on the
    # way down (preemption kills the renderer first): erring towards on-demand is safe.
    preempted = state.fallback.get("provisioning") == "spot"
    crashed = not preempted and heartbeat.get("stage") == "failed"
    if attempt >= cfg.max_vm_attempts:
        fail_job(state.job_id, f"fallback VM lost {attempt} times without a video (last: {state.fallback.get('instance')}"
                               f"{', ' + heartbeat['error'] if crashed and heartbeat.get('error') else ''})")
        return "failed"
    _relaunch(state.job_id, attempt, "preempted" if preempted else "crashed" if crashed else "lost")
    return "relaunched"


def _relaunch(job_id: str, attempt: int, why: str) -> None:
    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.VM_RUNNING or state.fallback.get("attempt") != attempt:
            return None
        old = state.fallback
        previous = [*old.get("previous", []), {k: old.get(k) for k in ("attempt", "instance", "zone", "gpu", "provisioning")} | {"end": why}]
        state.fallback = {"attempt": attempt + 1, "preemptions": old.get("preemptions", 0) + (why == "preempted"), "previous": previous}
        state.move_to(Status.FALLBACK_REQUESTED, f"VM {old.get('instance')} {why} without a video: relaunching", attempt=attempt + 1)
        return state

    _, changed = store().update(job_id, change)
    if changed:
        clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": f"vm {why}"}, job_id=job_id)


def _heartbeat(bucket: str, job_id: str) -> dict:
    try:
        return json.loads(clients.storage_client().bucket(bucket).blob(layout.progress_object(job_id)).download_as_bytes())
    except (NotFound, ValueError):
        return {}


# ---------------------------------------------------------------- reaper


def reap_orphans(states: dict[str, JobState]) -> int:
    """Delete our VMs that no unfinished job owns (a missed self-delete, a lost race)."""
    cfg = clients.config()
    reaped = 0
    request = {"project": cfg.project, "filter": f"labels.{JOB_LABEL}:*"}
    for zone_scope, scoped in clients.instances_client().aggregated_list(request=request):
        for instance in scoped.instances:
            job_id = instance.labels.get(JOB_LABEL)
            if job_id is None:
                continue
            state = states.get(job_id)
            current = state is not None and not state.status.terminal and state.fallback.get("instance") in (instance.name, None)
            if current:
                continue
            zone = zone_scope.rsplit("/", 1)[-1]
            try:
                clients.instances_client().delete(project=cfg.project, zone=zone, instance=instance.name)
                reaped += 1
                log.warning("orphan VM deleted", job_id=job_id, instance=instance.name, zone=zone,
                            job_status=state.status.value if state else "unknown")
            except NotFound:
                pass
    return reaped
