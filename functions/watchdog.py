"""The watchdog: every minute, move on every job that events alone did not.

Every non-terminal state has a way forward here, so a lost message, a crashed
function or a hung VM delays a job but never strands it:

* ``received``, ``primary_submitting`` (claim expired), ``vm_launching``
  (claim expired), ``fallback_requested`` (backoff due, or the request lost):
  announced again; the step itself is idempotent.
* ``primary_submitted`` / ``primary_running``: the Vertex job's real state is
  applied, as a lost event would have; queued past ``PRIMARY_QUEUE_TIMEOUT_S``
  or running past ``PRIMARY_OVERRUN_FACTOR`` x its estimate: hedged (a VM is
  launched *without* cancelling the primary; the first video wins).
* ``vm_running``: a VM that vanished without a video (preempted, crashed), or
  whose heartbeat is older than ``VM_HEARTBEAT_TIMEOUT_S`` (hung; none at all
  ``VM_BOOT_TIMEOUT_S`` after launch), is deleted and relaunched as a new
  attempt, which reuses the finished segments; Spot is no longer offered after
  the catalog's ``max_preemptions``; after ``MAX_VM_ATTEMPTS`` the fallback
  gives up. A renderer that found the job invalid fails it.
* any unfinished job whose video is already in the output bucket (its
  finalize event was lost): completed.
* a finished job whose clean-up or outcome message did not happen: done now.

One job whose check raises is logged and skipped; the others and the reaper
still run. The reaper deletes VMs labelled as ours that are not their job's
current attempt (judged on the job's state read just before the delete).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

from google.api_core.exceptions import NotFound

from common import layout
from common.logs import get_logger
from functions import clients
from functions.heartbeats import read_heartbeat
from functions.jobs import fail_job, fallback_gave_up, request_fallback, store
from functions.outcome import finish_job, needs_finishing
from functions.budget import spend_key
from functions.state import FallbackRun, JobState, Status, claim_is_live

log = get_logger("watchdog")


def run_watchdog() -> dict[str, int]:
    """One pass over the active jobs (one query, not a read per job ever seen), then the reaper.

    Returns counts of what it did.
    """
    acted: Counter[str] = Counter()
    for state in store().active():
        if isinstance(state, ValueError):  # a document that is not a job's state
            log.error("watchdog: an unreadable job document; the others go on", error=str(state))
            acted["errors"] += 1
            continue
        try:
            acted["checked"] += not state.status.terminal
            outcome = check_job(state)
        except Exception as err:  # noqa: BLE001 -- one bad job must not stop the pass
            log.exception("watchdog: checking a job failed; the others go on", job_id=state.job_id, error=repr(err))
            acted["errors"] += 1
            continue
        if outcome:
            acted[outcome] += 1
    try:
        acted["reaped"] = reap_orphans()
    except Exception as err:  # noqa: BLE001
        log.exception("watchdog: the reaper failed", error=repr(err))
        acted["errors"] += 1
    if any(v for k, v in acted.items() if k != "checked"):
        log.info("watchdog acted", **acted)
    return dict(acted)


def check_job(state: JobState) -> str | None:
    """What one job needs now, done; returns what was done (for the counts) or None."""
    if state.status.terminal:
        if needs_finishing(state):
            finish_job(state)
            return "finished"
        return None
    if _video_delivered(state.job_id):
        from functions.completion import complete_from_output

        complete_from_output(layout.video_object(state.job_id))
        return "completed"
    cfg = clients.config()
    if state.status is Status.RECEIVED and _age_s(state.updated_at) > cfg.fallback_reannounce_s:
        return _announce(cfg.topic_primary, state.job_id, "re-announce")
    if state.status is Status.PRIMARY_SUBMITTING and not claim_is_live(state.primary.claim, cfg.claim_timeout_s):
        return _announce(cfg.topic_primary, state.job_id, "claim expired")
    if state.status in (Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING):
        return _check_primary(state)
    if state.status is Status.FALLBACK_REQUESTED:
        return _check_fallback_request(state)
    if state.status is Status.VM_LAUNCHING and not claim_is_live(state.fallback.claim, cfg.claim_timeout_s):
        return _announce(cfg.topic_fallback, state.job_id, "claim expired")
    if state.status is Status.VM_RUNNING:
        return _check_vm(state)
    return None


def _announce(topic: str, job_id: str, reason: str) -> str:
    clients.publish(topic, {"job_id": job_id, "reason": reason}, job_id=job_id)
    return "reannounced"


def _video_delivered(job_id: str) -> bool:
    return clients.storage_client().bucket(clients.config().output_bucket).blob(layout.video_object(job_id)).exists()


def _age_s(iso: str) -> float:
    return (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()


def _since(state: JobState, status: Status) -> float:
    """Seconds since the job last entered ``status``."""
    entered = [h["at"] for h in state.history if h["status"] == status.value]
    return _age_s(entered[-1]) if entered else _age_s(state.updated_at)


# ---------------------------------------------------------------- primary


def _check_primary(state: JobState) -> str | None:
    from functions.vertex_events import apply_primary_state

    custom_job = state.primary.custom_job
    if custom_job:
        try:
            vertex_job = clients.job_client().get_custom_job(name=custom_job)
        except NotFound:
            request_fallback(state.job_id, "the primary's Vertex AI job vanished", kind="lost", custom_job=custom_job)
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
    """How long the primary is expected to run on its machine (``catalog/primary.py``: the runtime model by
    default), with an allowance for its container's start; by the catalog's baseline if it cannot say."""
    from catalog.primary import primary_estimate
    from functions.fallback import catalog

    cfg, video_s = clients.config(), state.video_length_s or 0.0
    expected = primary_estimate(catalog(), video_s, cfg.vertex_machine_type, cfg.vertex_accelerator)
    if expected is None:
        return video_s * catalog().baseline_s_per_s + catalog().transfer_overhead_s
    return expected.total_s


# ---------------------------------------------------------------- fallback


def _check_fallback_request(state: JobState) -> str | None:
    retry_at = state.fallback.retry_at
    due = retry_at is not None and retry_at <= time.time()
    lost = retry_at is None and _age_s(state.updated_at) > clients.config().fallback_reannounce_s
    if not (due or lost):
        return None
    return _announce(clients.config().topic_fallback, state.job_id, "retry" if due else "re-announce")


def _check_vm(state: JobState) -> str | None:
    cfg = clients.config()
    fb = state.fallback
    instance, zone, attempt = fb.instance, fb.zone, fb.attempt

    def still_this_vm(current: JobState) -> bool:
        return current.status is Status.VM_RUNNING and current.fallback.instance == instance

    heartbeat = read_heartbeat(state.job_id, instance) if instance else None
    if heartbeat is not None and heartbeat.found_invalid:
        fail_job(state.job_id, f"invalid job: {heartbeat.error or 'rejected by the renderer'}", when=still_this_vm)
        return "failed"
    try:
        vm = clients.instances_client().get(project=cfg.project, zone=zone, instance=instance)
    except NotFound:
        vm = None
    if vm is not None and vm.status not in ("TERMINATED", "STOPPED", "SUSPENDED"):
        silent_s = heartbeat.age_s() if heartbeat is not None else None
        launched_s = time.time() - (fb.launched_at or time.time() - _since(state, Status.VM_RUNNING))
        hung = silent_s > cfg.vm_heartbeat_timeout_s if silent_s is not None else launched_s > cfg.vm_boot_timeout_s
        if not hung:
            return None  # still working
        why = "hung"
        _delete_vm(cfg, zone, instance)
    else:
        if vm is not None:
            _delete_vm(cfg, zone, instance)
        # A lost Spot VM counts as preempted even if its worker logged an error on the
        # way down (preemption kills the renderer first): erring towards on-demand is safe.
        preempted = fb.provisioning == "spot"
        why = "preempted" if preempted else "crashed" if heartbeat is not None and heartbeat.stage == "failed" else "lost"
    if attempt - fb.first_attempt + 1 >= cfg.max_vm_attempts:
        detail = f", {heartbeat.error}" if why == "crashed" and heartbeat is not None and heartbeat.error else ""
        fallback_gave_up(state.job_id, f"fallback VM {why} {attempt} times without a video (last: {instance}{detail})",
                         when=still_this_vm)
        return "failed"
    _relaunch(state.job_id, attempt, why)
    return "relaunched"


def _delete_vm(cfg, zone: str, instance: str) -> None:
    try:
        clients.instances_client().delete(project=cfg.project, zone=zone, instance=instance)
    except NotFound:
        pass


def _relaunch(job_id: str, attempt: int, why: str) -> None:
    ended: dict[str, FallbackRun] = {}

    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.VM_RUNNING or state.fallback.attempt != attempt:
            return None
        old = ended["attempt"] = state.fallback
        state.fallback = FallbackRun(attempt=attempt + 1, first_attempt=old.first_attempt,
                                     preemptions=old.preemptions + (why == "preempted"),
                                     previous=[*old.previous, old.as_attempt(why, time.time())],
                                     pinned_gpu=old.pinned_gpu, pinned_provisioning=old.pinned_provisioning)
        state.move_to(Status.FALLBACK_REQUESTED, f"VM {old.instance} {why} without a video: relaunching", attempt=attempt + 1)
        return state

    _, changed = store().update(job_id, change)
    if changed:
        _settle_spend(job_id, attempt, ended["attempt"])  # the attempt as the committed change saw it
        clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": f"vm {why}"}, job_id=job_id)


def _settle_spend(job_id: str, attempt: int, fallback: FallbackRun) -> None:
    """The ended attempt's budget reservation becomes what it ran (its time x its price), not its whole estimate.

    A VM preempted a minute in must not hold the day's budget for the hour it
    was expected to take: the relaunch reserves its own.
    """
    from functions import budget

    price, launched_at = fallback.price_per_hour, fallback.launched_at
    if not price or not launched_at:
        return  # unknown: the reservation stays, erring towards the budget
    ran_usd = max(0.0, time.time() - launched_at) / 3600 * price
    budget.record_spend(spend_key(job_id, attempt), min(ran_usd, fallback.estimated_cost_usd or ran_usd))


# ---------------------------------------------------------------- reaper


def is_current_vm(state: JobState | None, labels: dict[str, str], zone: str) -> bool:
    """Whether a VM with these labels, in this zone, is its job's current attempt (launching or rendering).

    While a launch runs, any zone may be the one (it is trying them); once the
    VM is recorded, only that zone's: a failed insert elsewhere can leave a
    TERMINATED instance behind (UNSUPPORTED_OPERATION does).
    """
    if state is None or labels.get(layout.ATTEMPT_LABEL) != str(state.fallback.attempt):
        return False
    if state.status is Status.VM_LAUNCHING:
        return True
    return state.status is Status.VM_RUNNING and state.fallback.zone == zone


def reap_orphans() -> int:
    """Delete our VMs that no unfinished job owns (a missed self-delete, a lost race, an old attempt).

    Each VM is judged on its job's state read just before deciding, not on a
    snapshot from the start of the pass: a VM launched meanwhile is current.
    """
    cfg = clients.config()
    reaped = 0
    request = {"project": cfg.project, "filter": f"labels.{layout.JOB_LABEL}:*"}
    for zone_scope, scoped in clients.instances_client().aggregated_list(request=request):
        for instance in scoped.instances:
            job_id = instance.labels.get(layout.JOB_LABEL)
            if job_id is None:
                continue
            state = store().get(job_id) if layout.is_valid_job_id(job_id) else None
            zone = zone_scope.rsplit("/", 1)[-1]
            if is_current_vm(state, dict(instance.labels), zone):
                continue
            try:
                clients.instances_client().delete(project=cfg.project, zone=zone, instance=instance.name)
                reaped += 1
                log.warning("orphan VM deleted", job_id=job_id, instance=instance.name, zone=zone,
                            job_status=state.status.value if state else "unknown")
            except NotFound:
                pass
    return reaped
