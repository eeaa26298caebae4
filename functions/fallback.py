"""The fallback launcher: provision the GPU VM that renders a job the primary could not.

Strategy, in the spirit of SkyPilot's failover, with a memory:

1. Ask the catalog's selector for the cheapest GPU (on-demand or Spot, risk
   priced) that meets the job's deadline (``catalog/select.py``), skipping what
   recent jobs found unavailable (``memory.py``) and using learned speeds.
2. Try its zones in order. A stockout blocks that zone for this GPU; a
   regional quota blocks the region; ``GPUS_ALL_REGIONS`` blocks the GPU type;
   each is remembered for the next jobs; then select again. A configuration or
   permission error fails the job at once.
3. When nothing is left, back off (``FAILOVER_BACKOFF_S`` x 1.6 per pass, with
   jitter; the watchdog re-announces the job when it is due) and probe
   everything again, until ``FAILOVER_MAX_WAIT_S``; then the job fails with
   its whole attempt history.

Exactly one VM: the launch is claimed in the job's state first, the instance
name is derived from the job id and attempt, and the ``requestId`` from the
name, zone, option and pass, so a duplicate or a crashed-and-retried delivery
re-issues the very same insert, which Compute Engine answers with the same
operation. Budget: the selector drops options over the per-job ceiling; the
day's spend (``memory.py``) is checked before each insert.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from google.api_core.exceptions import Conflict, GoogleAPICallError
from google.cloud import compute_v1

from catalog.model import Catalog, load_catalog, region_of
from catalog.select import Block, Decision, Option, check_daily_budget, select
from common.logs import get_logger
from functions import clients, memory
from functions.config import Config
from functions.jobs import fail_job, store
from functions.primary import JOB_LABEL, ClaimHeld
from functions.state import JobState, Status

log = get_logger("fallback")

STARTUP_SCRIPT = (Path(__file__).resolve().parent.parent / "render_vm" / "startup.sh").read_text()
CLAIM_TIMEOUT_S = 300.0
_REQUEST_ID_NAMESPACE = uuid.UUID("5f4b3a52-6e0c-4d7f-9a43-7a1f0c2b9e11")


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load_catalog()


# ------------------------------------------------------------ insert errors


@dataclass(frozen=True)
class InsertFailure:
    """How one failed ``instances.insert`` narrows the search."""

    kind: str  # stockout, region-quota, all-regions-quota, fatal
    block: Block | None  # what to avoid from now on (None: fail the job)
    detail: str


# Compute Engine error codes (operation errors[].code / HTTP error reasons) -> what they block.
_STOCKOUT = ("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_AVAILABILITY", "insufficient capacity")
_ALL_REGIONS = ("GPUS_ALL_REGIONS",)
_REGION_QUOTA = ("QUOTA_EXCEEDED", "quotaExceeded")


def classify_insert_error(text: str, option: Option, zone: str) -> InsertFailure:
    if any(code in text for code in _ALL_REGIONS):
        return InsertFailure("all-regions-quota", Block(gpu=option.gpu, reason=f"{option.gpu}: GPUS_ALL_REGIONS quota"), text)
    if any(code in text for code in _STOCKOUT):
        return InsertFailure("stockout", Block(gpu=option.gpu, location=zone, reason=f"{option.gpu}: stockout in {zone}"), text)
    if any(code in text for code in _REGION_QUOTA):
        region = region_of(zone)
        return InsertFailure("region-quota", Block(gpu=option.gpu, location=region, reason=f"{option.gpu}: quota in {region}"), text)
    return InsertFailure("fatal", None, text)


# ------------------------------------------------------------ the launch


def instance_name(job_id: str, attempt: int) -> str:
    """Deterministic per job and attempt (a-z0-9-, at most 63 characters)."""
    return f"fr-{job_id}-a{attempt}"


def request_id(name: str, zone: str, option: Option, pass_no: int) -> str:
    """The same insert (a redelivery) gets the same id, so Compute Engine returns the same operation.

    Another GPU or provisioning in the same zone, or a later pass after a
    backoff, is a different request and must not be answered from the old one.
    """
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{zone}/{name}/{option.gpu}/{option.provisioning}/pass-{pass_no}"))


def launch_fallback(job_id: str) -> JobState | None:
    """Provision the job's VM (one pass over the options), or schedule the next pass, or fail the job."""
    token = uuid.uuid4().hex
    now = time.time()

    def claim(state: JobState | None) -> JobState | None:
        if state is None or state.status not in (Status.FALLBACK_REQUESTED, Status.VM_LAUNCHING):
            return None
        if state.status is Status.FALLBACK_REQUESTED and state.fallback.get("retry_at", 0) > now:
            return None  # backing off: the watchdog re-announces the job when the time comes
        if state.status is Status.VM_LAUNCHING and now - state.fallback.get("claimed_at", 0) < CLAIM_TIMEOUT_S:
            return None
        attempt = state.fallback.get("attempt") or 1
        state.fallback.update(claim=token, claimed_at=now, attempt=attempt)
        state.move_to(Status.VM_LAUNCHING, "choosing a GPU", attempt=attempt)
        return state

    state, claimed = store().update(job_id, claim)
    if state is None:
        log.warning("fallback: unknown job", job_id=job_id)
        return None
    if not claimed:
        if state.status is Status.VM_LAUNCHING:
            raise ClaimHeld(f"{job_id}: another delivery is launching its VM")
        return state  # a duplicate, a job backing off, or one whose VM is up already
    return _launch_pass(state, token)


def _launch_pass(state: JobState, token: str) -> JobState | None:
    cfg, job_id, fb = clients.config(), state.job_id, state.fallback
    attempt, pass_no = fb["attempt"], fb.get("pass", 1)
    learned = memory.learned_speeds()

    def plan(blocked: list[Block]) -> Decision:
        return select(catalog(), state.video_length_s or 0.0, deadline_s=_time_left_s(state), spot=cfg.use_spot,
                      preemptions_so_far=fb.get("preemptions", 0), blocked=blocked, learned=learned)

    # Waiting cannot help a job that no option fits even with nothing blocked (the budget, say).
    unconstrained = plan([])
    if unconstrained.selected is None:
        return fail_job(job_id, f"no GPU option fits this job: {unconstrained.reasons}")
    # The first pass skips what other jobs found empty lately; later passes, after a
    # backoff, probe everything again (stockouts are short-lived).
    blocked = memory.known_blocks() if pass_no == 1 else []
    tried: list[dict] = list(fb.get("tried", []))
    name = instance_name(job_id, attempt)
    while True:
        decision = plan(blocked)
        log.info("launch decision", job_id=job_id, attempt=attempt, launch_pass=pass_no, blocks=len(blocked), **decision.to_log())
        option = decision.selected
        if option is None:
            return _retry_later_or_fail(job_id, token, pass_no, fb.get("waited_s", 0.0), tried, decision)
        budget = check_daily_budget(memory.spent_today_usd(), option.cost_usd, catalog=catalog())
        if not budget:
            return fail_job(job_id, f"daily budget: {budget.reason}", attempts=tried)
        for zone in option.zones:
            failure = _insert(cfg, job_id, attempt, name, option, zone, pass_no)
            if failure is None:
                memory.record_spend(f"{job_id}/a{attempt}", option.cost_usd)
                return _launched(job_id, token, name, zone, option, decision, tried)
            tried.append({"pass": pass_no, "gpu": option.gpu, "provisioning": option.provisioning, "zone": zone,
                          "kind": failure.kind, "detail": failure.detail[:300]})
            log.warning("insert failed", job_id=job_id, gpu=option.gpu, zone=zone, failure=failure.kind, detail=failure.detail[:300])
            if failure.block is None:
                return fail_job(job_id, f"VM launch failed: {failure.detail.splitlines()[0][:300]}", attempts=tried)
            blocked.append(failure.block)
            memory.remember_block(failure.block, failure.kind)
            if failure.kind != "stockout":
                break  # the whole region or GPU type is out: select again
        # Each failure added a block, so the next selection weighs what is left.


def backoff_s(pass_no: int) -> float:
    """SkyPilot's schedule: base x 1.6^(pass-1), with +-50% jitter so jobs do not retry in lockstep."""
    return clients.config().failover_backoff_s * (1.6 ** (pass_no - 1)) * random.uniform(0.5, 1.5)


def _retry_later_or_fail(
    job_id: str, token: str, pass_no: int, waited: float, tried: list[dict], decision: Decision
) -> JobState | None:
    """Nothing left to try in this pass: back off and try again, within the total bound, or fail."""
    summary = "; ".join(f"{t['gpu']}@{t['zone']}: {t['kind']}" for t in tried[-8:]) or decision.reasons
    delay = backoff_s(pass_no)
    if waited + delay > clients.config().failover_max_wait_s:
        return fail_job(job_id, f"no GPU VM could be launched in {pass_no} passes over {waited:.0f} s: {summary}", attempts=tried)

    def back_off(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.VM_LAUNCHING or state.fallback.get("claim") != token:
            return None
        state.fallback.update({"pass": pass_no + 1, "retry_at": time.time() + delay, "waited_s": waited + delay, "tried": tried})
        state.move_to(Status.FALLBACK_REQUESTED, f"no capacity anywhere (pass {pass_no}): retrying in {delay:.0f} s")
        return state

    state, _ = store().update(job_id, back_off)
    log.warning("no capacity: backing off", job_id=job_id, launch_pass=pass_no, delay_s=round(delay, 1), tried=len(tried))
    return state


def _time_left_s(state: JobState) -> float | None:
    """The manifest's deadline counts from submission; the selector wants seconds from now."""
    if state.deadline_s is None:
        return None
    elapsed = (datetime.now(timezone.utc) - datetime.fromisoformat(state.created_at)).total_seconds()
    return max(state.deadline_s - elapsed, 1.0)


def _insert(cfg: Config, job_id: str, attempt: int, name: str, option: Option, zone: str, pass_no: int) -> InsertFailure | None:
    """Create the VM and wait for the operation; None on success (or if it exists already)."""
    request = compute_v1.InsertInstanceRequest(
        project=cfg.project,
        zone=zone,
        instance_resource=build_instance(cfg, job_id, attempt, name, option, zone),
        request_id=request_id(name, zone, option, pass_no),
    )
    try:
        operation = clients.instances_client().insert(request=request)
    except Conflict:
        return None  # this very VM exists already: an earlier try of ours made it
    except GoogleAPICallError as err:
        return classify_insert_error(_error_text(err.message, getattr(err, "errors", None)), option, zone)
    done = _wait_for_operation(cfg, zone, operation.name)
    if done.error.errors:
        return classify_insert_error(_error_text(done.http_error_message, done.error.errors), option, zone)
    return None


def _wait_for_operation(cfg: Config, zone: str, name: str, timeout_s: float = 600) -> compute_v1.Operation:
    """Wait with our own ZoneOperationsClient: the ExtendedOperation's poller ignores api_endpoint."""
    deadline = time.monotonic() + timeout_s
    while True:
        operation = clients.zone_operations_client().wait(project=cfg.project, zone=zone, operation=name)
        if operation.status == compute_v1.Operation.Status.DONE or time.monotonic() > deadline:
            return operation


def _error_text(message: object, errors: object) -> str:
    """Everything the error says, codes included (they decide what to block)."""
    parts = [str(message or "")]
    for detail in errors or []:
        parts.append(f"{getattr(detail, 'code', '')} {getattr(detail, 'message', detail)}")
    return " | ".join(p for p in parts if p.strip())


def build_instance(cfg: Config, job_id: str, attempt: int, name: str, option: Option, zone: str) -> compute_v1.Instance:
    spot = option.provisioning == "spot"
    metadata = {
        "startup-script": STARTUP_SCRIPT,
        "fast-render-job-id": job_id,
        "fast-render-attempt": str(attempt),
        "fast-render-staging-bucket": cfg.staging_bucket,
        "fast-render-output-bucket": cfg.output_bucket,
        "fast-render-worker-command": cfg.vm_worker_command,
        "fast-render-instance": name,
        "fast-render-gpu": option.gpu,
        "fast-render-price-per-hour": str(option.price_per_hour),
        "fast-render-compute-api": cfg.compute_endpoint or "https://compute.googleapis.com",
    }
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{option.machine_type}",
        labels={JOB_LABEL: job_id, "fast-render-attempt": str(attempt), "fast-render-gpu": option.gpu},
        tags=compute_v1.Tags(items=["fast-render"]),
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{option.accelerator}",
                accelerator_count=option.accelerator_count,
            )
        ],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=cfg.vm_image, disk_size_gb=100),
            )
        ],
        # No access config: no external IP. The VM reaches Google APIs through
        # Private Google Access / Cloud NAT on its subnet.
        network_interfaces=[compute_v1.NetworkInterface(network=cfg.vm_network)],
        service_accounts=[
            compute_v1.ServiceAccount(email=cfg.vm_service_account, scopes=["https://www.googleapis.com/auth/cloud-platform"])
        ],
        scheduling=compute_v1.Scheduling(
            on_host_maintenance="TERMINATE",  # GPUs cannot live-migrate
            automatic_restart=False,
            provisioning_model="SPOT" if spot else "STANDARD",
            instance_termination_action="DELETE",
            # A hard ceiling besides the worker's self-delete: a stuck VM cannot bill forever.
            max_run_duration=compute_v1.Duration(seconds=cfg.vm_max_run_s),
        ),
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key=k, value=v) for k, v in metadata.items()]),
    )


def _launched(job_id: str, token: str, name: str, zone: str, option: Option, decision: Decision, tried: list[dict]) -> JobState | None:
    def change(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.VM_LAUNCHING or state.fallback.get("claim") != token:
            return None
        state.fallback.update(
            instance=name,
            zone=zone,
            gpu=option.gpu,
            provisioning=option.provisioning,
            machine_type=option.machine_type,
            estimated_runtime_s=round(option.runtime_s, 1),
            estimated_cost_usd=round(option.cost_usd, 4),
            why=decision.reasons,
            tried=tried,
        )
        state.fallback.pop("retry_at", None)
        state.move_to(Status.VM_RUNNING, f"VM {name} in {zone}: {option.gpu} {option.provisioning}, est. ${option.cost_usd:.2f}",
                      instance=name, zone=zone, gpu=option.gpu)
        return state

    state, _ = store().update(job_id, change)
    log.info("fallback VM launched", job_id=job_id, instance=name, zone=zone, gpu=option.gpu,
             estimated_cost_usd=round(option.cost_usd, 4), estimated_runtime_s=round(option.runtime_s, 1))
    return state
