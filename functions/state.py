"""Each job's state: the status machine and its typed sections, as stored in one Firestore document.

This module is the one place that names what a job's document holds, so the
functions, the watchdog and the operators' view agree on every field by
construction. ``functions/store.py`` keeps the documents (``jobs/<job_id>``)
and changes them only in transactions.

A document is a :class:`JobState`: its status, a timestamped history (the
timeline operators see), and three sections:

* :class:`PrimaryRun`: the Vertex AI job (claim, attempt, the custom job, why it failed);
* :class:`FallbackRun`: the fallback VM (claim, attempt, launch pass, backoff,
  zones tried, the VM, its GPU and provisioning, estimates, preemptions, earlier attempts);
* :class:`RenderResult`: the video and what its renderer measured (the actuals);

and, for a job in an A/B experiment, the :class:`ExperimentArm` intake assigned it.

Besides the fields, every stored document carries fields derived for queries
(:meth:`JobState.to_document`): ``active`` (the watchdog still has work with
it), ``day``, ``method`` and, once the job is finished, ``expire_at`` for
Firestore's TTL policy.
"""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import Any


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
    CANCELLED = "cancelled"  # by an operator (avmonitor cancel): nothing more is rendered

    @property
    def terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


# Forward order: a stale or reordered event can never move a job backwards.
_RANK = {status: rank for rank, status in enumerate(Status)}
PRIMARY_STATES = (Status.RECEIVED, Status.PRIMARY_SUBMITTING, Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING)
ACTIVE_STATES = tuple(status for status in Status if not status.terminal)
# Why the primary handed the job to a VM while it may still deliver: a hedge, not a failover.
HEDGE_FAILURES = ("queued", "overrun", "manual")
# Why a job went to a VM before Vertex AI was ever asked: its A/B arm is VM-first (functions/experiments.py).
EXPERIMENT = "experiment"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Section:
    """A typed part of the document: stored as a map, read back tolerating fields it no longer has."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in data.items() if k in known}
        if "claim" in values:
            values["claim"] = Claim.from_dict(values["claim"])
        return cls(**values)


@dataclass
class Claim:
    """Who is doing a claimed step right now (a delivery's random token), and since when."""

    token: str
    claimed_at: float  # epoch seconds
    status: str | None = None  # for the outcome: the status whose message is being published

    @classmethod
    def new(cls, token: str, now: float | None = None, status: str | None = None) -> "Claim":
        return cls(token=token, claimed_at=time.time() if now is None else now, status=status)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Claim | None":
        return cls(**data) if data else None


def claimed_by(claim: Claim | None, token: str) -> bool:
    """Whether ``claim`` is the one a delivery made with ``token``."""
    return claim is not None and claim.token == token


def claim_is_live(claim: Claim | None, timeout_s: float, now: float | None = None) -> bool:
    """Whether ``claim`` is held by a live delivery.

    A claimant that crashed leaves its claim behind; past ``timeout_s`` (longer
    than a function may run) it is dead, and the watchdog hands the work on.
    """
    now = time.time() if now is None else now
    return claim is not None and now - claim.claimed_at < timeout_s


@dataclass
class PrimaryRun(_Section):
    """The job on Vertex AI."""

    attempt: int = 1
    first_attempt: int = 1  # this run's first (an operator's retry starts a new run; numbers never repeat)
    claim: Claim | None = None  # the delivery creating the Vertex job now
    custom_job: str | None = None  # projects/.../customJobs/ID once created
    machine_type: str | None = None
    accelerator: str | None = None
    failure: str | None = None  # why it handed the job to the fallback: quota, timeout, queued, overrun...
    error: str | None = None
    previous: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts: custom_job, error


@dataclass
class FallbackRun(_Section):
    """The job's fallback VM: the current attempt, and the attempts before it."""

    attempt: int = 1
    first_attempt: int = 1  # this run's first (VM names and request ids use the attempt: numbers never repeat)
    claim: Claim | None = None  # the delivery launching it now
    launch_pass: int = 1  # passes over every option (with a backoff between them)
    retry_at: float | None = None  # backing off until then (epoch seconds)
    waited_s: float = 0.0  # backoff so far
    tried: list[dict[str, Any]] = field(default_factory=list)  # refused inserts: pass, gpu, provisioning, zone, kind, detail
    preemptions: int = 0
    instance: str | None = None
    zone: str | None = None
    gpu: str | None = None
    provisioning: str | None = None  # "spot" or "on-demand"
    machine_type: str | None = None
    why: str | None = None  # the selector's reasons for this VM
    launched_at: float | None = None  # epoch seconds: the insert succeeded
    deleted_at: float | None = None  # epoch seconds: the VM was deleted (or found gone) after the job ended
    estimated_runtime_s: float | None = None
    estimated_cost_usd: float | None = None
    price_per_hour: float | None = None
    reserved_usd: float | None = None  # what this attempt holds of the day's budget
    hedge_failed: str | None = None  # a hedge, or an experiment's VM-first try, that could not launch: why (the primary went on)
    pinned_gpu: str | None = None  # an operator's choice (avmonitor launch --gpu)
    pinned_provisioning: str | None = None  # an operator's choice: "spot" or "on-demand"
    previous: list[dict[str, Any]] = field(default_factory=list)  # ended attempts: attempt, instance, zone, gpu, provisioning, end

    def as_attempt(self, end: str, ended_at: float | None) -> dict[str, Any]:
        """This attempt as an entry of ``previous``: what the timeline and the cost report read of it."""
        return {"attempt": self.attempt, "instance": self.instance, "zone": self.zone, "gpu": self.gpu,
                "provisioning": self.provisioning, "launched_at": self.launched_at,
                "price_per_hour": self.price_per_hour, "ended_at": ended_at, "end": end}


@dataclass
class RenderResult(_Section):
    """The delivered video and what its renderer reported (``render.json``)."""

    video: str | None = None  # gs:// URI
    generation: str | None = None
    rendered_by: str | None = None  # "vertex" or "vm"
    gpu: str | None = None
    instance: str | None = None
    video_s: float | None = None
    wall_s: float | None = None  # rendering alone
    worker_wall_s: float | None = None  # download + render + upload
    cost_usd: float | None = None  # the worker's own figure (its time x its price)
    report: dict[str, Any] = field(default_factory=dict)  # everything the renderer reported

    @classmethod
    def from_report(cls, video: str, generation: str, report: dict[str, Any]) -> "RenderResult":
        named = {f.name for f in fields(cls)} - {"video", "generation", "report"}
        return cls(video=video, generation=generation, report=dict(report), **{k: report.get(k) for k in named})


@dataclass
class ExperimentArm(_Section):
    """The A/B experiment arm intake put the job in, with what the arm changes (functions/experiments.py).

    The changes are recorded, not only the names: editing the experiments file
    later must not change what a job in flight does, and the report compares
    what the jobs really ran.
    """

    name: str = ""  # the experiment
    arm: str = ""
    route: str = "vertex-first"  # or "vm-first": the fallback VM is launched at once, Vertex AI only if it cannot be
    gpu: str | None = None  # the GPU the launcher tries first (then any)
    provisioning: str | None = None  # "spot" or "on-demand", tried first (then either)


@dataclass
class JobState:
    job_id: str
    status: Status
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)  # the last change of status
    source: str = ""  # "message" or "upload"
    video_length_s: float | None = None
    deadline_s: float | None = None
    error: str | None = None
    primary: PrimaryRun = field(default_factory=PrimaryRun)
    fallback: FallbackRun = field(default_factory=FallbackRun)
    result: RenderResult = field(default_factory=RenderResult)
    experiment: ExperimentArm | None = None  # the A/B arm assigned at intake; None: in no experiment
    outcome_published: bool = False  # render-completed / render-failed sent (once the state says so)
    outcome_claim: Claim | None = None  # who is publishing it now
    dead_letters: int = 0  # messages about this job that a function failed on until Pub/Sub gave up
    first_dead_letter_at: float | None = None  # when the first of them came (epoch seconds)
    cleaned_up: bool = False  # after a terminal state: the VM deleted, a losing primary cancelled
    runs: int = 1  # 1, plus one per operator retry
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

    @property
    def watched(self) -> bool:
        """Whether the watchdog still has to look at this job: unfinished, or finished but not yet cleaned up or announced."""
        return not (self.status.terminal and self.cleaned_up and self.outcome_published)

    @property
    def method(self) -> str:
        """How the job is (being) rendered: ``vertex``, ``vm`` (after the primary failed) or ``hedge``."""
        if self.primary.failure is None:
            return "vertex"  # no VM was ever asked for
        if self.primary.failure == EXPERIMENT:
            return "vm"  # its A/B arm sent it to a VM first: there is no Vertex job beside it
        if self.primary.failure in HEDGE_FAILURES:
            launched = self.fallback.instance or self.fallback.previous
            return "hedge" if launched or not self.fallback.hedge_failed else "vertex"
        return "vm"

    # ---------------------------------------------------------- the document

    def to_document(self, retention_days: float) -> dict[str, Any]:
        """The Firestore document: every field, plus those derived for queries and the TTL policy."""
        doc = asdict(self)
        doc["status"] = self.status.value
        doc["active"] = self.watched  # the watchdog's query
        doc["day"] = self.created_at[:10]  # UTC date: the reports' query
        doc["method"] = self.method
        # Firestore deletes the document after expire_at (a TTL policy on this field).
        doc["expire_at"] = (datetime.fromisoformat(self.updated_at) + timedelta(days=retention_days)
                            if self.status.terminal else None)
        return doc

    @classmethod
    def from_document(cls, data: dict[str, Any]) -> "JobState":
        """A stored document back; raises ValueError (one line) if it is not a job's state."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        try:
            values["status"] = Status(values["status"])
            values["primary"] = PrimaryRun.from_dict(values.get("primary"))
            values["fallback"] = FallbackRun.from_dict(values.get("fallback"))
            values["result"] = RenderResult.from_dict(values.get("result"))
            values["experiment"] = ExperimentArm.from_dict(values["experiment"]) if values.get("experiment") else None
            values["outcome_claim"] = Claim.from_dict(values.get("outcome_claim"))
            return cls(**values)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"job {data.get('job_id', '?')}: not a job state document: {type(err).__name__}: {err}") from None
