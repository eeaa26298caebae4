"""What the fault campaign (bench/chaos.py) stands on: one local cloud, its jobs, and the verdicts.

A ``Campaign`` starts jobs the way the main app does (``testkit.submit_job``)
and judges each one only from what is visible from outside the product: the
render-completed / render-failed messages the main app receives, the video in
the output bucket, the job's state object, the Compute Engine stand-in's
instance history and the Vertex AI stand-in's custom jobs. The promised zeros:

* lost: no outcome message and no video;
* stuck: not in a terminal state when the scenario ends;
* second VMs: two VMs of one job alive at the same time, or more VMs than the
  job's recorded attempts;
* double completions: two render-completed for one job;
* healthy jobs failed: a job that should have rendered got render-failed;
* over budget: the day's spend above the catalog's daily budget.

Job ids that start with ``fb-`` have their primary refused on quota (the
campaign's standing Vertex fault), so they render on a fallback VM; the others
render on the primary.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound

from infra.local.cloud import LocalCloud, Ports
from infra.local.testkit import Outcomes, admin, forget_clients, format_timeline, submit_job
from infra.local.topology import load_topology

PROJECT = "fast-render-chaos"
FALLBACK_PREFIX = "fb-"
VM_LABEL = "fast-render-job"
VM_OVERLAP_TOLERANCE_S = 0.5  # two VMs of one job both RUNNING longer than this = a second VM
VERTEX_TAP = "chaos-vertex-events-tap"  # a pull subscription on vertex-events: the events, to replay late

# Seconds, not the cloud's minutes, so that every recovery path runs within a campaign.
CHAOS_ENV = {
    "VM_WORKER_COMMAND": "python -m render_vm worker",
    "PRIMARY_QUEUE_TIMEOUT_S": "6",
    "FAILOVER_BACKOFF_S": "0.5",
    "FAILOVER_MAX_WAIT_S": "4",
    "CLAIM_TIMEOUT_S": "10",  # longer than any function runs here (launch passes give up after 4 s)
    "VM_HEARTBEAT_TIMEOUT_S": "12",
    "VM_BOOT_TIMEOUT_S": "45",
    "FALLBACK_REANNOUNCE_S": "10",
}
TICK_EVERY_S = 2.0


def chaos_cloud(state_dir: Path, project: str = PROJECT) -> LocalCloud:
    """The campaign's local cloud (not started): free ports, short timeouts, a tick every 2 s."""
    return LocalCloud(
        project=project,
        ports=Ports.free(load_topology(project)),
        state_dir=state_dir,
        tick_every_s=TICK_EVERY_S,
        extra_env=CHAOS_ENV,
    )


class StandInLacks(RuntimeError):
    """A fault the Compute Engine or Vertex AI stand-in does not offer (yet): the scenario cannot run."""


def _ts(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()  # 3.11 reads the trailing Z


@dataclass
class Job:
    job_id: str
    scenario: str
    expect: str = "success"  # "success"; "budget": success, or failed for the daily budget; "any"
    folder: Path | None = None
    submitted_at: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def on_fallback(self) -> bool:
        return self.job_id.startswith(FALLBACK_PREFIX)


@dataclass
class Verdict:
    job_id: str
    scenario: str
    status: str  # the job state's status at the end ("missing": no state)
    outcome: str  # "succeeded", "failed", "none"
    rendered_by: str | None
    vms: int
    attempts: int
    lost: bool
    stuck: bool
    second_vm: bool
    double_completion: bool
    healthy_failed: bool
    reason: str = ""
    timeline: str = ""
    duration_s: float | None = None  # from the job's first state to its last
    diagnostics: list[str] = field(default_factory=list)  # for a broken job: its VMs' last serial-console lines

    @property
    def broken(self) -> list[str]:
        return [name for name in ("lost", "stuck", "second_vm", "double_completion", "healthy_failed") if getattr(self, name)]


class Campaign:
    """One running chaos cloud and every job started on it."""

    def __init__(self, cloud: LocalCloud, work_dir: Path) -> None:
        self.cloud = cloud
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._saved_env = {name: os.environ.get(name) for name in cloud.env}
        os.environ.update(cloud.env)  # the harness is a client of the local cloud, like the main app
        forget_clients()
        from functions import clients

        self.config = clients.config()
        self.staging = clients.storage_client().bucket(self.config.staging_bucket)
        self.output = clients.storage_client().bucket(self.config.output_bucket)
        self.outcomes = Outcomes(cloud)
        self.jobs: dict[str, Job] = {}
        self.compute = cloud.env["COMPUTE_API_ENDPOINT"]
        self.vertex = cloud.env["VERTEX_API_ENDPOINT"]
        self._serial = 0
        self._tap_created = False

    def close(self) -> None:
        """Give the process its environment back, and drop the clients made for this cloud."""
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_clients()

    # ------------------------------------------------------------ faults

    def baseline(self) -> None:
        """The standing faults: ``fb-`` jobs' primaries fail on quota; nothing else misbehaves."""
        self.vertex_faults(mode="quota", job_id_prefix=FALLBACK_PREFIX)
        self.compute_faults()
        self.cloud.relay.clear()

    def vertex_faults(self, **faults: Any) -> None:
        try:
            admin(self.vertex, "faults", faults)
        except urllib.error.HTTPError as error:
            raise StandInLacks(f"Vertex stand-in refused faults {faults}: {error.code} {error.read()[:200]!r}") from None

    def compute_faults(self, **faults: Any) -> None:
        try:
            admin(self.compute, "faults", faults)
        except urllib.error.HTTPError as error:
            raise StandInLacks(f"Compute stand-in refused faults {faults}: {error.code} {error.read()[:200]!r}") from None

    def compute_action(self, vm: dict, action: str) -> None:
        """``POST /_admin/instances/{zone}/{name}/{action}`` (preempt, hang)."""
        try:
            admin(self.compute, f"instances/{vm['zone']}/{vm['name']}/{action}", {})
        except urllib.error.HTTPError as error:
            raise StandInLacks(f"Compute stand-in has no {action} for {vm['name']}: {error.code}") from None

    def clear_fleet_memory(self) -> None:
        """What earlier jobs taught the fleet (stockouts, spend) must not steer the next scenario."""
        from functions import budget, clients, memory

        db = clients.firestore_client()
        for collection in (memory.FLEET, budget.COLLECTION):
            for document in db.collection(collection).list_documents():
                document.delete()

    # ------------------------------------------------------------ jobs

    def new_job(self, scenario: str, tag: str, *, fallback: bool, expect: str = "success", scenes: int = 3,
                seconds_per_scene: float = 1.0, width: int = 320, height: int = 180) -> Job:
        """A small story job folder; its id says the scenario and whether it renders on a VM."""
        from render_vm.sample_job import make_sample_job

        self._serial += 1
        job_id = f"{FALLBACK_PREFIX if fallback else ''}{tag}-{self._serial:03d}-{time.time_ns() % 10**4:04d}"
        folder = self.work_dir / job_id
        make_sample_job(folder, scenes=scenes, width=width, height=height, seconds_per_scene=seconds_per_scene,
                        job_id=job_id)
        job = Job(job_id, scenario, expect, folder)
        self.jobs[job_id] = job
        return job

    def submit(self, job: Job) -> Job:
        job.submitted_at = time.monotonic()
        submit_job(self.cloud, self.staging, job.folder)
        return job

    def state(self, job_id: str):
        from functions.jobs import store

        return store().get(job_id)

    def wait_terminal(self, jobs: list[Job], timeout_s: float) -> None:
        """Collect outcomes until every job's state is terminal and it has an outcome, or the time is up."""
        deadline = time.monotonic() + timeout_s
        pending = list(jobs)
        while pending and time.monotonic() < deadline:
            self.outcomes.drain(timeout_s=0.3)
            still = []
            for job in pending:
                state = self.state(job.job_id)
                if not (state and state.status.terminal and self.outcomes.outcome(job.job_id)):
                    still.append(job)
            pending = still
            if pending:
                time.sleep(0.3)

    def wait_for(self, condition, timeout_s: float, interval_s: float = 0.2) -> Any:
        """Poll ``condition`` (draining outcomes meanwhile) until it returns something truthy; None on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            self.outcomes.drain(timeout_s=0.05)
            time.sleep(interval_s)
        return None

    # ------------------------------------------------------------ what the stand-ins saw

    def vms(self, job_id: str) -> list[dict]:
        return [vm for vm in admin(self.compute, "instances")["instances"] if (vm.get("labels") or {}).get(VM_LABEL) == job_id]

    def custom_jobs(self, job_id: str) -> list[dict]:
        return [j for j in admin(self.vertex, "custom_jobs")["custom_jobs"] if (j.get("labels") or {}).get(VM_LABEL) == job_id]

    def heartbeats(self, job_id: str) -> dict[str, dict]:
        """Every heartbeat the job's renderers left (``jobs/<id>/progress*``), by object name."""
        from common import layout

        beats = {}
        for blob in self.staging.list_blobs(prefix=layout.job_prefix(job_id) + "progress"):
            with contextlib.suppress(ValueError, NotFound):  # one being rewritten, or gone: skip it this time
                beats[blob.name] = json.loads(blob.download_as_bytes())
        return beats

    def render_report(self, job_id: str) -> dict:
        """The render report of the job's video (in its metadata, or render.json beside it); {} if none."""
        from common import layout

        blob = self.output.get_blob(layout.video_object(job_id))
        report = (blob.metadata or {}).get(getattr(layout, "VIDEO_REPORT_METADATA", ""), "") if blob else ""
        if report:
            return json.loads(report)
        side = self.output.get_blob(layout.render_report_object(job_id))
        return json.loads(side.download_as_bytes()) if side else {}

    def video_exists(self, job_id: str) -> bool:
        from common import layout

        return self.output.get_blob(layout.video_object(job_id)) is not None

    def ensure_vertex_tap(self) -> None:
        """A pull subscription on vertex-events, so that a scenario can replay an event late."""
        if self._tap_created:
            return
        _, subscriber = self.cloud.pubsub()
        publisher, _ = self.cloud.pubsub()
        subscriber.create_subscription(name=subscriber.subscription_path(self.cloud.project, VERTEX_TAP),
                                       topic=publisher.topic_path(self.cloud.project, "vertex-events"))
        self._tap_created = True

    def tapped_vertex_events(self) -> list[Any]:
        return self.cloud.pull(VERTEX_TAP, timeout=0.5, max_messages=100)

    # ------------------------------------------------------------ verdicts

    def verdict(self, job: Job) -> Verdict:
        state = self.state(job.job_id)
        completed = self.outcomes.completed.get(job.job_id, [])
        failed = self.outcomes.failed.get(job.job_id, [])
        vms = self.vms(job.job_id)
        attempts = state.fallback.attempt if state else 0
        outcome = "succeeded" if completed else "failed" if failed else "none"
        reason = (failed[0].get("reason") or "") if failed and not completed else ""
        if job.expect == "success":
            healthy_failed = bool(failed)
        elif job.expect == "budget":  # refused for the budget before any VM: fine; after its launch fitted: not
            healthy_failed = bool(failed) and (bool(vms) or any(not str(f.get("reason", "")).startswith("daily budget")
                                                               for f in failed))
        else:
            healthy_failed = False
        verdict = Verdict(
            job_id=job.job_id,
            scenario=job.scenario,
            status=state.status.value if state else "missing",
            outcome=outcome,
            rendered_by=(completed[0].get("rendered_by") if completed else None),
            vms=len(vms),
            attempts=attempts,
            lost=not completed and not failed and not self.video_exists(job.job_id),
            stuck=not (state and state.status.terminal),
            second_vm=len(vms) > attempts or overlapping(vms),
            double_completion=len(completed) > 1,
            healthy_failed=healthy_failed,
            reason=reason,
            timeline=format_timeline(state) if state else "(no state)",
            duration_s=_duration(state),
        )
        if verdict.broken:
            verdict.diagnostics = [f"VM {vm['name']} ({vm['status']}{', preempted' if vm.get('preempted') else ''}"
                                   f"{', deleted' if vm.get('deleted') else ''}): {serial_tail(vm)}" for vm in vms]
            verdict.diagnostics += self.relay_trail(job.job_id)
        return verdict

    def relay_trail(self, job_id: str) -> list[str]:
        """What the push relay saw of the job's messages: function, pushes, and each push's answer in time."""
        lines = []
        for m in self.cloud.relay.messages():
            if job_id in m.get("summary", ""):
                steps = " ".join(f"{time.strftime('%H:%M:%S', time.localtime(t))}.{int(t * 1000) % 1000:03d}"
                                 f" {what}{'' if status is None else '=' + str(status)}" for t, what, status in m["history"])
                lines.append(f"push {m['function']} message {m['message_id']}: {m['attempts']} push(es); {steps}")
        return lines


def _duration(state) -> float | None:
    if not state or not state.history:
        return None
    first, last = (datetime.fromisoformat(state.history[i]["at"]) for i in (0, -1))
    return round((last - first).total_seconds(), 1)


def serial_tail(vm: dict, lines: int = 6) -> str:
    """The last lines of a VM's serial console (the stand-in keeps it in a file while the cloud runs)."""
    try:
        text = Path(vm.get("serial_log") or "").read_text(errors="replace")
    except OSError:
        return "(no serial log)"
    return " | ".join(line.strip()[:200] for line in text.splitlines()[-lines:])


def alive_interval(vm: dict, now: float | None = None) -> tuple[float, float] | None:
    """(first RUNNING, first STOPPING/TERMINATED after it, else now) from the instance's status history."""
    start = end = None
    for entry in vm.get("status_history") or []:
        status, at = entry.get("status"), _ts(entry["time"]) if entry.get("time") else None
        if status == "RUNNING" and start is None:
            start = at
        elif start is not None and status in ("STOPPING", "TERMINATED", "SUSPENDED", "DELETED"):
            end = at
            break
    if start is None:
        return None
    return start, end if end is not None else (now or time.time())


def overlapping(vms: list[dict]) -> bool:
    """Whether two of these VMs were RUNNING at the same time (longer than the tolerance)."""
    spans = sorted(span for span in (alive_interval(vm) for vm in vms) if span)
    latest_end = float("-inf")
    for start, end in spans:
        if start < latest_end - VM_OVERLAP_TOLERANCE_S:
            return True
        latest_end = max(latest_end, end)
    return False


def totals(verdicts: list[Verdict]) -> Counter:
    counts = Counter()
    for verdict in verdicts:
        counts["jobs"] += 1
        for name in verdict.broken:
            counts[name] += 1
    return counts
