"""The fallback launcher: provision the GPU VM that renders a job the primary could not.

Strategy, in the spirit of SkyPilot's failover, with a memory:

1. Ask the catalog's selector for the cheapest GPU (on-demand or Spot, risk
   priced) that meets the job's deadline (``catalog/select.py``), skipping what
   recent jobs found unavailable (``memory.py``) and using learned speeds.
2. Reserve its cost in today's budget, in the same transaction that claims the
   launch and moves the job to ``vm_launching`` (racing launches cannot all
   pass the budget's edge, and no claim exists without its reservation), then
   try its zones in order. What a refused insert means is
   one table (``insert_errors.py``): a stockout blocks the zone, a regional
   quota the region, ``GPUS_ALL_REGIONS`` the GPU type (each remembered for the
   next jobs), a rate limit is retried in the same zone after a short wait, an
   unknown error blocks that zone for this pass; only a permission or
   configuration error ends the search. Then select again.
3. When nothing is left, back off (``FAILOVER_BACKOFF_S`` x 1.6 per pass, with
   jitter; the watchdog re-announces the job when it is due) and probe
   everything again, until ``FAILOVER_MAX_WAIT_S``.

When the fallback cannot render the job, it fails, unless it was a hedge beside
a primary that is still alive: then the job goes back to the primary
(``jobs.fallback_gave_up``); a job an A/B arm sent to a VM first goes to Vertex
AI (``experiments.vm_gave_up``). An arm's GPU or provisioning is tried first,
never alone (:func:`plan`).

Exactly one VM: the launch is claimed in the job's state first; a duplicate
delivery that finds a live claim returns (the claimant finishes; if it
crashed, the watchdog re-announces the job once the claim is older than
``CLAIM_TIMEOUT_S``). The successor of a crashed claimant first looks for the
VM its predecessor may have created, and adopts it. Names and request ids are
deterministic (``vm_spec.py``).
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from datetime import datetime, timezone

from google.api_core.exceptions import Conflict, GoogleAPICallError

from catalog.learned import LearnedSpeeds
from catalog.model import ON_DEMAND, SPOT, Catalog, load_catalog
from catalog.select import Block, Decision, Option, format_usd, select
from common import layout
from common.logs import get_logger
from functions import budget, clients, memory, timing
from functions.config import Config
from functions.insert_errors import InsertError, InsertFailure, classify_insert_error
from functions.experiments import vm_gave_up
from functions.jobs import store
from functions.budget import spend_key
from functions.state import Claim, JobState, Status, claim_is_live, claimed_by
from functions.vm_spec import build_instance, instance_name, request_id

log = get_logger("fallback")


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load_catalog()


def launch_fallback(job_id: str) -> JobState | None:
    """Provision the job's VM (one pass over the options), or schedule the next pass, or give up."""
    token, now = uuid.uuid4().hex, time.time()
    timing.note(job_id=job_id)
    cfg = clients.config()
    # One round trip for all that the choice and the claim read: the job, its budget shard and the day's root,
    # and the fleet's memory; the claim's transaction starts from these snapshots.
    shard_and_root = budget.refs(job_id)
    current, snapshots = store().read_with(job_id, [*shard_and_root, memory.learned_ref(), memory.capacity_ref()])
    if current is None:
        log.warning("fallback: unknown job", job_id=job_id)
        return None
    if not _claimable(current, now, cfg.claim_timeout_s):
        return _nothing_to_do(current)
    # Choose before claiming (choosing has no side effects), so that the claim,
    # the move to vm_launching and the chosen VM's budget reservation are one
    # transaction: no launch holds a claim without its reservation.
    learned, capacity = (s.to_dict() if s.exists else None for s in snapshots[3:])
    launch = _Launch(current, token, memory.learned_from(learned), memory.blocks_in(capacity))
    first = launch.plan()
    option = first.selected
    attempt, daily = current.fallback.attempt, catalog().budget.daily_usd
    reservation = {"ok": False, "others": 0.0}
    taken_over: dict[str, bool] = {}

    def claim(state: JobState | None, spend: list[dict | None]) -> tuple[JobState | None, list[dict | None] | None]:
        if state is None or not _claimable(state, now, cfg.claim_timeout_s) or state.fallback.attempt != attempt:
            return None, None
        taken_over["yes"] = state.status is Status.VM_LAUNCHING  # its claimant died mid-launch
        state.fallback.claim = Claim.new(token, now)
        new_spend, note = None, "choosing a GPU"
        if option is not None:
            new_spend, outcome = budget.reserve(spend, job_id, spend_key(job_id, attempt), option.cost_usd, daily)
            reservation.update(ok=outcome.ok, others=outcome.others_usd or 0.0)
            if outcome.ok:
                state.fallback.reserved_usd = round(option.cost_usd, 6)
                note = f"launching {option.gpu} {option.provisioning}: {format_usd(option.cost_usd)} of today's budget reserved"
        state.move_to(Status.VM_LAUNCHING, note, attempt=attempt)
        return state, new_spend

    state, _, claimed = _with_budget(job_id, claim, first=snapshots[:3])
    if state is None or not claimed:
        return _nothing_to_do(state) if state is not None else None
    launch.state = state
    if taken_over.get("yes"):
        adopted = _adopt_existing_vm(state, token)
        if adopted is not None:
            return adopted
    return launch.run_pass(first, reservation["ok"], reservation["others"])


def _claimable(state: JobState, now: float, timeout_s: float) -> bool:
    """Whether a delivery may take the launch: requested and not backing off, or launching under a dead claim."""
    if state.status is Status.FALLBACK_REQUESTED:
        return (state.fallback.retry_at or 0) <= now  # backing off: the watchdog re-announces the job when due
    return state.status is Status.VM_LAUNCHING and not claim_is_live(state.fallback.claim, timeout_s, now)


def _with_budget(job_id: str, change, first=None):
    """``change(state, budget docs)`` in one transaction with the job's budget shard and the day's root;
    again over every shard when the budget's edge needs them all (``budget.py``)."""
    try:
        return store().update_with_all(job_id, budget.refs(job_id), change, first=first)
    except budget.NeedsEveryShard:
        return store().update_with_all(job_id, budget.refs(job_id, every_shard=True), change)


def _nothing_to_do(state: JobState) -> JobState:
    log.info("fallback: nothing to do (a duplicate, a backoff, or another delivery is launching)",
             job_id=state.job_id, status=state.status.value)
    return state


def _ours(token: str):
    """The check every write of this delivery makes: the launch is still claimed by it."""
    return lambda state: state.status is Status.VM_LAUNCHING and claimed_by(state.fallback.claim, token)


class _Launch:
    """One pass of one delivery's launch: select, reserve, try the zones, select again."""

    def __init__(self, state: JobState, token: str, learned: LearnedSpeeds, known_blocks: list[Block]) -> None:
        """``learned`` and ``known_blocks``: the fleet's memory, as read with the job."""
        self.state, self.token = state, token
        self.job_id = state.job_id
        self.learned = learned
        # The first pass skips what other jobs found empty lately; later passes, after a
        # backoff, probe everything again (stockouts are short-lived).
        self.blocked: list[Block] = known_blocks if state.fallback.launch_pass == 1 else []

    def plan(self, blocked: list[Block] | None = None) -> Decision:
        with timing.span("selection"):
            return plan(self.state, self.blocked if blocked is None else blocked, self.learned, clients.config().use_spot)

    def run_pass(self, decision: Decision, reserved: bool, others: float) -> JobState | None:
        cfg, job_id, fb = clients.config(), self.job_id, self.state.fallback
        attempt, pass_no = fb.attempt, fb.launch_pass
        give_up = functools.partial(vm_gave_up, job_id, when=_ours(self.token))
        # Waiting cannot help a job that no option fits even with nothing blocked (the budget, say).
        if decision.selected is None and self.blocked:
            unconstrained = self.plan([])
            if unconstrained.selected is None:
                return give_up(f"no GPU option fits this job: {unconstrained.reasons}")
        elif decision.selected is None:
            return give_up(f"no GPU option fits this job: {decision.reasons}")
        tried: list[dict] = list(fb.tried)
        name, key, daily = instance_name(job_id, attempt), spend_key(job_id, attempt), catalog().budget.daily_usd
        while True:
            log.info("launch decision", job_id=job_id, attempt=attempt, launch_pass=pass_no, blocks=len(self.blocked),
                     **decision.to_log())
            option = decision.selected
            if option is None:
                return _retry_later_or_give_up(job_id, self.token, pass_no, fb.waited_s, tried, decision)
            if not reserved:
                reserved, others = self.reserve(key, option.cost_usd, daily)
            if not reserved:
                total = others + option.cost_usd
                return give_up(f"daily budget: {format_usd(others)} spent today + {format_usd(option.cost_usd)} = "
                               f"{format_usd(total)}, over the daily budget of {format_usd(daily)}", attempts=tried)
            for zone in option.zones:
                failure = _insert_with_retries(cfg, job_id, attempt, name, option, zone, pass_no)
                if failure is None:
                    return _launched(job_id, self.token, name, zone, option, decision, tried)
                tried.append({"pass": pass_no, "gpu": option.gpu, "provisioning": option.provisioning, "zone": zone,
                              "kind": failure.kind, "detail": failure.detail})
                log.warning("insert failed", job_id=job_id, gpu=option.gpu, zone=zone, failure=failure.kind, detail=failure.detail)
                if failure.fatal:
                    self.release(key)
                    return give_up(f"VM launch failed: {failure.detail.splitlines()[0]}", attempts=tried)
                self.blocked.append(failure.block or Block(gpu=option.gpu, location=zone, reason=f"{option.gpu}: {failure.kind} in {zone}"))
                if failure.remember and failure.block is not None:
                    memory.remember_block(failure.block, failure.kind)
                if failure.kind in ("region-quota", "all-regions-quota"):
                    break  # the whole region or GPU type is out: select again
            self.release(key)  # no VM of this option: the next choice reserves its own cost
            reserved = False
            # Each failure added a block, so the next selection weighs what is left.
            decision = self.plan()

    def reserve(self, key: str, cost_usd: float, daily_usd: float) -> tuple[bool, float]:
        """Reserve the next option's cost, in one transaction with the job's state (only while the claim is ours)."""
        outcome = {"ok": False, "others": 0.0}

        def change(state: JobState | None, spend: list[dict | None]) -> tuple[JobState | None, list[dict | None] | None]:
            if state is None or not _ours(self.token)(state):
                return None, None
            new_spend, reserved = budget.reserve(spend, self.job_id, key, cost_usd, daily_usd)
            outcome.update(ok=reserved.ok, others=reserved.others_usd or 0.0)
            if not reserved.ok:
                return None, None
            state.fallback.reserved_usd = round(cost_usd, 6)
            return state, new_spend

        _with_budget(self.job_id, change)
        return bool(outcome["ok"]), float(outcome["others"])

    def release(self, key: str) -> None:
        """Give the reservation back with the job's state (a successor that took the claim keeps its own)."""

        def change(state: JobState | None, spend: list[dict | None]) -> tuple[JobState | None, list[dict | None] | None]:
            if state is None or not _ours(self.token)(state):
                return None, None
            state.fallback.reserved_usd = None
            return state, budget.without(spend, key)

        _with_budget(self.job_id, change)


def plan(state: JobState, blocked: list[Block], learned: LearnedSpeeds | None, use_spot: bool) -> Decision:
    """The selector's choice for the job's VM, within what is blocked and an operator's pins.

    An operator's pin (``avmonitor launch --gpu/--spot/--on-demand``) is a hard
    choice: everything else is blocked. An experiment arm's GPU or provisioning
    is only a preference: chosen while it can be had (not blocked, within the
    deadline and the budget), and when it cannot, the selector may take any option.
    """
    fb = state.fallback
    spot = use_spot if fb.pinned_provisioning is None else fb.pinned_provisioning == "spot"
    blocks = [*blocked, *_pinned(state)]

    def choose(spot: bool, blocks: list[Block]) -> Decision:
        return select(catalog(), state.video_length_s or 0.0, deadline_s=_time_left_s(state), spot=spot,
                      preemptions_so_far=fb.preemptions, learned=learned, blocked=blocks)

    preferred = _preferred(state)
    if preferred:
        arm = state.experiment
        prefers_spot = fb.pinned_provisioning is None and arm is not None and arm.provisioning == "spot"
        decision = choose(spot or prefers_spot, [*blocks, *preferred])
        if decision.selected is not None:
            return decision
    return choose(spot, blocks)


def _pinned(state: JobState) -> list[Block]:
    """An operator's choice (``avmonitor launch --gpu/--spot/--on-demand``), as blocks on everything else."""
    fb = state.fallback
    blocks = [Block(gpu=g, reason=f"the operator asked for {fb.pinned_gpu}") for g in catalog().options
              if fb.pinned_gpu and g != fb.pinned_gpu]
    if fb.pinned_provisioning == "spot":
        blocks += [Block(gpu=g, provisioning="on-demand", reason="the operator asked for Spot") for g in catalog().options]
    return blocks


def _preferred(state: JobState) -> list[Block]:
    """An experiment arm's GPU and provisioning, as blocks on everything else (for a first choice only)."""
    arm = state.experiment
    if arm is None or not (arm.gpu or arm.provisioning):
        return []
    why = f"experiment {arm.name}, arm {arm.arm}: {' '.join(x for x in (arm.gpu, arm.provisioning) if x)} first"
    # Every option by name, the CPU-only machines too (an option's name is its Block.gpu).
    blocks = [Block(gpu=g, reason=why) for g in catalog().options if arm.gpu and g != arm.gpu]
    other = {SPOT: ON_DEMAND, ON_DEMAND: SPOT}.get(arm.provisioning or "")
    return [*blocks, Block(provisioning=other, reason=why)] if other else blocks


def _insert_with_retries(cfg: Config, job_id: str, attempt: int, name: str, option: Option, zone: str,
                         pass_no: int) -> InsertFailure | None:
    """One zone: insert, and on a rate or concurrency limit wait and insert again (a bounded few times)."""
    failure = None
    for retry in range(cfg.insert_retries + 1):
        if retry:
            time.sleep(cfg.insert_retry_backoff_s * 2 ** (retry - 1) * random.uniform(0.8, 1.2))
        failure = _insert(cfg, job_id, attempt, name, option, zone, request_id(name, zone, option, pass_no, retry))
        if failure is None or not failure.retry_here:
            return failure
    return failure  # still limited: the caller blocks this zone for this pass


def backoff_s(pass_no: int) -> float:
    """SkyPilot's schedule: base x 1.6^(pass-1), with +-50% jitter so jobs do not retry in lockstep."""
    return clients.config().failover_backoff_s * (1.6 ** (pass_no - 1)) * random.uniform(0.5, 1.5)


def _retry_later_or_give_up(
    job_id: str, token: str, pass_no: int, waited: float, tried: list[dict], decision: Decision
) -> JobState | None:
    """Nothing left to try in this pass: back off and try again, within the total bound, or give up."""
    summary = "; ".join(f"{t['gpu']}@{t['zone']}: {t['kind']}" for t in tried[-8:]) or decision.reasons
    delay = backoff_s(pass_no)
    if waited + delay > clients.config().failover_max_wait_s:
        return vm_gave_up(job_id, f"no GPU VM could be launched in {pass_no} passes over {waited:.0f} s: {summary}",
                          when=_ours(token), attempts=tried)

    def back_off(state: JobState | None) -> JobState | None:
        if state is None or not _ours(token)(state):
            return None
        fb = state.fallback
        fb.launch_pass, fb.retry_at, fb.waited_s, fb.tried, fb.claim = pass_no + 1, time.time() + delay, waited + delay, tried, None
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


def _insert(cfg: Config, job_id: str, attempt: int, name: str, option: Option, zone: str, req_id: str) -> InsertFailure | None:
    """Create the VM and wait for the operation; None on success (or if it exists already)."""
    from google.cloud import compute_v1

    with timing.span("insert"):  # building the request is part of it (compute_v1's messages are large)
        request = compute_v1.InsertInstanceRequest(
            project=cfg.project,
            zone=zone,
            instance_resource=build_instance(cfg, job_id, attempt, name, option, zone),
            request_id=req_id,
        )
    try:
        with timing.span("insert"):
            operation = clients.instances_client().insert(request=request)
    except Conflict:
        return None  # this very VM exists already: an earlier try of ours made it
    except GoogleAPICallError as err:
        return classify_insert_error(InsertError.from_exception(err), option, zone)
    finally:
        timing.mark("insert_returned")
    with timing.span("operation_wait"):
        done = _wait_for_operation(cfg, zone, operation.name)
    if done.error.errors:
        return classify_insert_error(InsertError.from_operation(done), option, zone)
    # DONE without an error, or still running after the wait: the VM is coming up.
    # If it never does, the watchdog sees no VM (or no heartbeat) and relaunches.
    return None


def _wait_for_operation(cfg: Config, zone: str, name: str):
    """Wait with our own ZoneOperationsClient (the ExtendedOperation's poller ignores api_endpoint).

    Bounded well inside the launch claim, so a live launcher never outlives it.
    """
    from google.cloud import compute_v1

    deadline = time.monotonic() + min(480.0, cfg.claim_timeout_s * 0.8)
    while True:
        operation = clients.zone_operations_client().wait(project=cfg.project, zone=zone, operation=name)
        if operation.status == compute_v1.Operation.Status.DONE or time.monotonic() > deadline:
            return operation


def _adopt_existing_vm(state: JobState, token: str) -> JobState | None:
    """The VM a crashed launcher may have created for this attempt (in any zone), made the job's own."""
    cfg, attempt = clients.config(), state.fallback.attempt
    name = instance_name(state.job_id, attempt)
    request = {"project": cfg.project, "filter": f'name = "{name}"'}
    for zone_scope, scoped in clients.instances_client().aggregated_list(request=request):
        for instance in scoped.instances:
            labels = instance.labels
            if instance.name != name or labels.get(layout.JOB_LABEL) != state.job_id:
                continue
            if instance.status in ("STOPPING", "TERMINATED"):
                continue  # what a failed insert may leave behind (UNSUPPORTED_OPERATION): not a VM to adopt
            zone = zone_scope.rsplit("/", 1)[-1]
            provisioning = "spot" if instance.scheduling.provisioning_model == "SPOT" else "on-demand"
            gpu = labels.get(layout.GPU_LABEL, "?")
            option = next((o for o in select(catalog(), state.video_length_s or 0.0, spot=True).options
                           if o.gpu == gpu and o.provisioning == provisioning), None)
            log.warning("fallback: adopting the VM a crashed launch created", job_id=state.job_id, instance=name, zone=zone)
            return _record_vm(state.job_id, token, name, zone, gpu, provisioning, option, "adopted after a crashed launch",
                              state.fallback.tried)
    return None


def _launched(job_id: str, token: str, name: str, zone: str, option: Option, decision: Decision, tried: list[dict]) -> JobState | None:
    state = _record_vm(job_id, token, name, zone, option.gpu, option.provisioning, option, decision.reasons, tried)
    log.info("fallback VM launched", job_id=job_id, instance=name, zone=zone, gpu=option.gpu,
             estimated_cost_usd=round(option.cost_usd, 4), estimated_runtime_s=round(option.runtime_s, 1))
    return state


def _record_vm(job_id: str, token: str, name: str, zone: str, gpu: str, provisioning: str, option: Option | None,
               why: object, tried: list[dict]) -> JobState | None:
    def change(state: JobState | None) -> JobState | None:
        if state is None or not _ours(token)(state):
            return None
        fb = state.fallback
        fb.instance, fb.zone, fb.gpu, fb.provisioning, fb.why, fb.tried = name, zone, gpu, provisioning, str(why), tried
        fb.launched_at, fb.retry_at, fb.claim = time.time(), None, None
        if option is not None:
            fb.machine_type, fb.price_per_hour = option.machine_type, option.price_per_hour
            fb.estimated_runtime_s, fb.estimated_cost_usd = round(option.runtime_s, 1), round(option.cost_usd, 4)
        cost = f", est. ${option.cost_usd:.2f}" if option is not None else ""
        state.move_to(Status.VM_RUNNING, f"VM {name} in {zone}: {gpu} {provisioning}{cost}", instance=name, zone=zone, gpu=gpu)
        return state

    state, _ = store().update(job_id, change, after_own_write=True)  # the claim, or its last reservation, was ours
    return state
