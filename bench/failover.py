"""Benchmark: primary failure to fallback ``instances.insert``, on the local cloud.

    .venv/bin/python bench/failover.py [--jobs 200] [--waves 4] [--idle-jobs 20] [--json] [--state-dir DIR]

What it measures: how long Fast Render takes, once Vertex AI has failed a job
(GPU quota), to issue the Compute Engine ``instances.insert`` for its fallback
VM. The Vertex stand-in fails every custom job with RESOURCE_EXHAUSTED; the VM's
worker command is ``true``, so each VM deletes itself at once: the launch is
measured, not the render.

1. Start a local cloud on free ports (its state and logs in a temp dir, or
   ``--state-dir``, which is then kept for reading the logs). The watchdog's
   tick is an hour away and its queue timeout longer, so it never acts.
2. Stage every job's assets (one small PNG each) before any timing starts.
3. Idle: ``--idle-jobs`` jobs one at a time, each after the previous one's VM
   has gone. The first of them meets every function cold (the handlers import
   their modules on first call); it is reported on its own.
4. Burst: ``--jobs`` jobs in ``--waves`` waves; each wave's job messages are
   published at once, and the next wave starts when every VM of this one has
   been inserted (or none has come for ``--stall-s``: a job whose failure
   event was dropped waits for the watchdog, which is kept away here; such
   jobs are listed with their final status). A wave's rate is its size over
   the time from its first publish to its last insert.

Reading the burst figures: the Pub/Sub emulator pushes one message at a time
per push subscription (it pulls one, POSTs it, waits for the answer), so each
function is a single-server queue here and a job's wait grows with its place
in the wave. Cloud Functions push concurrently; the idle figures are the
per-hop cost without queueing.

Per job, every time is read from the machine's wall clock (``time.time()``) by
the process that saw the event, so they compare directly:

* published: this process, just before it published the job message;
* Vertex FAILED: the Vertex stand-in's state history (``/_admin/custom_jobs``);
* event published: the Pub/Sub emulator's publish time of that FAILED log entry
  (a pull subscription this benchmark adds to ``vertex-events``); not always on
  the path, as the handler of the job's QUEUED entry reads the job from Vertex
  and may find it FAILED already;
* fallback_requested / vm_launching: the job's state object history (the time
  the change was made, just before its compare-and-swap write);
* insert issued: the Compute stand-in's ``insertTime`` of the insert operation
  (``/_admin/operations``), matched to the job by its instance's
  ``fast-render-job`` label.

Percentiles are nearest-rank. A stage that ends before it starts is counted as
a clock-order violation (there should be none).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from PIL import Image  # noqa: E402

from common import layout  # noqa: E402
from infra.local.cloud import LocalCloud, Ports  # noqa: E402
from infra.local.testkit import admin  # noqa: E402
from infra.local.topology import load_topology  # noqa: E402

PROJECT = "fast-render-bench"
JOB_LABEL = "fast-render-job"  # the label the primary and the launcher put on what they create
EVENTS_SUBSCRIPTION = "bench-vertex-events"
FAILED = "JOB_STATE_FAILED"
ONE_HOUR_S = 3600


# --------------------------------------------------------------------------- per-job times


@dataclass
class JobTimes:
    """Epoch seconds of each step of one job's failover (None: not seen)."""

    job_id: str
    published: float | None = None
    vertex_failed: float | None = None
    event_published: float | None = None
    fallback_requested: float | None = None
    vm_launching: float | None = None
    insert_issued: float | None = None
    final_status: str | None = None  # the state object's status at the end (for jobs that got no VM)


# (label, from, to): the figures printed, in order. The first is the headline.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("Vertex FAILED -> insert issued", "vertex_failed", "insert_issued"),
    ("job published -> insert issued", "published", "insert_issued"),
    ("  job published -> Vertex FAILED", "published", "vertex_failed"),
    ("  Vertex FAILED -> fallback_requested", "vertex_failed", "fallback_requested"),
    ("  fallback_requested -> vm_launching", "fallback_requested", "vm_launching"),
    ("  vm_launching -> insert issued", "vm_launching", "insert_issued"),
    # Not always on the path: the handler of the job's earlier QUEUED event GETs
    # the job, and may find it FAILED already and request the fallback itself.
    ("  (Vertex FAILED -> its event published)", "vertex_failed", "event_published"),
)


def parse_time(text: str) -> float:
    """RFC 3339 (``...Z`` or ``...+00:00``, any fraction) -> epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def durations_ms(jobs: Iterable[JobTimes], start: str, end: str) -> list[float]:
    """``end - start`` in milliseconds for every job that has both times."""
    values = []
    for job in jobs:
        began, ended = getattr(job, start), getattr(job, end)
        if began is not None and ended is not None:
            values.append((ended - began) * 1000)
    return values


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p90, p99, max (ms), and how many were negative (a clock-order violation)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    figures: dict[str, float | int] = {"n": len(ordered)}
    for p in (50, 90, 99):
        figures[f"p{p}_ms"] = round(percentile(ordered, p), 1)
    figures["max_ms"] = round(ordered[-1], 1)
    figures["negative"] = sum(1 for v in ordered if v < 0)
    return figures


def stage_table(jobs: Sequence[JobTimes]) -> dict[str, dict[str, float | int]]:
    return {label: summarize(durations_ms(jobs, start, end)) for label, start, end in STAGES}


# --------------------------------------------------------------------------- staging and publishing


def job_manifest(job_id: str) -> dict[str, Any]:
    """The smallest valid job: one still with an explicit duration, so intake probes no audio."""
    return {
        "version": 1,
        "job_id": job_id,
        "output": {"width": 320, "height": 180, "fps": 30},
        "scenes": [{"image": "images/001.png", "duration_s": 2.0}],
    }


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def stage_assets(cloud: LocalCloud, job_ids: Sequence[str]) -> None:
    """Upload each job's still (the manifest travels inline in the job message)."""
    bucket = cloud.storage().bucket(cloud.topology.buckets["staging"])
    png = tiny_png()

    def upload(job_id: str) -> None:
        bucket.blob(layout.asset_object(job_id, "images/001.png")).upload_from_string(png, content_type="image/png")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, job_ids))


def publish_jobs(cloud: LocalCloud, job_ids: Sequence[str]) -> dict[str, float]:
    """Publish the job messages all at once; returns each one's time just before its publish call."""
    publisher, _ = cloud.pubsub()
    topic = publisher.topic_path(cloud.project, "render-jobs")
    times, futures = {}, []
    for job_id in job_ids:
        data = json.dumps({"manifest": job_manifest(job_id)}).encode()
        times[job_id] = time.time()
        futures.append(publisher.publish(topic, data, job_id=job_id))
    for future in futures:
        future.result(timeout=60)
    return times


# --------------------------------------------------------------------------- reading the stand-ins


def instances_by_job(compute: str) -> dict[str, list[dict[str, Any]]]:
    """Every instance ever created, grouped by its job label."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for instance in admin(compute, "instances")["instances"]:
        job_id = (instance.get("labels") or {}).get(JOB_LABEL)
        if job_id:
            grouped.setdefault(job_id, []).append(instance)
    return grouped


def wait_until(done: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def wait_for_inserts(compute: str, job_ids: Sequence[str], timeout_s: float, stall_s: float) -> bool:
    """Whether every job has an instance, waiting at most ``timeout_s``, or ``stall_s`` without a new one.

    A job whose failure event was lost gets no VM until the watchdog notices,
    which this benchmark keeps away: waiting longer for it would measure nothing.
    """
    wanted = set(job_ids)
    deadline = time.monotonic() + timeout_s
    seen, progress_at = -1, time.monotonic()
    while True:
        have = len(wanted & instances_by_job(compute).keys())
        if have == len(wanted):
            return True
        now = time.monotonic()
        if have != seen:
            seen, progress_at = have, now
        if now > deadline or now - progress_at > stall_s:
            return False
        time.sleep(0.2)


def wait_for_vm_gone(compute: str, job_id: str, timeout_s: float) -> bool:
    """Whether the job's VMs have all deleted themselves (their startup script ran to the end)."""
    return wait_until(lambda: all(i["deleted"] for i in instances_by_job(compute).get(job_id, [])), timeout_s)


def insert_times(compute: str) -> dict[str, float]:
    """Job id -> ``insertTime`` of the first insert operation for one of its instances."""
    job_of_instance = {i["name"]: job_id for job_id, group in instances_by_job(compute).items() for i in group}
    times: dict[str, float] = {}
    for operation in admin(compute, "operations")["operations"]:
        if operation.get("operationType") != "insert":
            continue
        job_id = job_of_instance.get(operation["targetLink"].rsplit("/", 1)[-1])
        if job_id is not None:
            issued = parse_time(operation["insertTime"])
            times[job_id] = min(issued, times.get(job_id, issued))
    return times


def vertex_failures(vertex: str) -> tuple[dict[str, float], dict[str, str]]:
    """Job id -> time its Vertex job turned FAILED; and custom job name -> job id."""
    failed, job_of_name = {}, {}
    for custom_job in admin(vertex, "custom_jobs")["custom_jobs"]:
        job_id = (custom_job.get("labels") or {}).get(JOB_LABEL)
        if not job_id:
            continue
        job_of_name[custom_job["name"]] = job_id
        for entry in custom_job["state_history"]:
            if entry["state"] == FAILED:
                failed[job_id] = parse_time(entry["time"])
    return failed, job_of_name


def subscribe_to_vertex_events(cloud: LocalCloud) -> str:
    """A pull subscription of our own on vertex-events (the function's push subscription is untouched)."""
    publisher, subscriber = cloud.pubsub()
    path = subscriber.subscription_path(cloud.project, EVENTS_SUBSCRIPTION)
    subscriber.create_subscription(name=path, topic=publisher.topic_path(cloud.project, "vertex-events"))
    return path


def failed_event_times(cloud: LocalCloud, subscription: str, job_of_name: dict[str, str]) -> dict[str, float]:
    """Job id -> the emulator's publish time of its Vertex job's FAILED log entry (drains the subscription)."""
    _, subscriber = cloud.pubsub()
    times: dict[str, float] = {}
    while True:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 500}, timeout=10, retry=None)
        if not response.received_messages:
            return times
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
        for received in response.received_messages:
            payload = json.loads(received.message.data).get("jsonPayload", {})
            job_id = job_of_name.get(payload.get("customJob", ""))
            if job_id and payload.get("state") == FAILED:
                times[job_id] = received.message.publish_time.timestamp()


def read_state(cloud: LocalCloud, job_id: str) -> dict[str, Any]:
    """The job's state document ({} if it has none)."""
    return cloud.firestore().collection("jobs").document(job_id).get().to_dict() or {}


def history_times(state: dict[str, Any]) -> dict[str, float]:
    """Status -> the first time the job's state entered it."""
    times: dict[str, float] = {}
    for entry in state.get("history", []):
        times.setdefault(entry["status"], parse_time(entry["at"]))
    return times


def collect(cloud: LocalCloud, subscription: str, published: dict[str, float]) -> list[JobTimes]:
    """Every job's times, from the stand-ins, the emulator and the state objects."""
    compute, vertex = cloud.env["COMPUTE_API_ENDPOINT"], cloud.env["VERTEX_API_ENDPOINT"]
    failed, job_of_name = vertex_failures(vertex)
    events = failed_event_times(cloud, subscription, job_of_name)
    inserts = insert_times(compute)
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = dict(zip(published, pool.map(lambda job_id: read_state(cloud, job_id), published)))
    jobs = []
    for job_id, sent in published.items():
        history = history_times(states[job_id])
        jobs.append(JobTimes(
            job_id=job_id,
            published=sent,
            vertex_failed=failed.get(job_id),
            event_published=events.get(job_id),
            fallback_requested=history.get("fallback_requested"),
            vm_launching=history.get("vm_launching"),
            insert_issued=inserts.get(job_id),
            final_status=states[job_id].get("status"),
        ))
    return jobs


# --------------------------------------------------------------------------- the runs


@dataclass
class Wave:
    jobs: int
    seconds: float  # first publish to last insert
    complete: bool

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Results:
    idle: list[JobTimes] = field(default_factory=list)
    burst: list[JobTimes] = field(default_factory=list)
    waves: list[Wave] = field(default_factory=list)
    up_s: float = 0.0
    run_s: float = 0.0


def run_idle(cloud: LocalCloud, job_ids: Sequence[str], timeout_s: float) -> dict[str, float]:
    """One job at a time; the next once the previous VM has deleted itself."""
    compute = cloud.env["COMPUTE_API_ENDPOINT"]
    published: dict[str, float] = {}
    for job_id in job_ids:
        published.update(publish_jobs(cloud, [job_id]))
        if not wait_for_inserts(compute, [job_id], timeout_s, stall_s=timeout_s):
            print(f"  idle job {job_id}: no insert after {timeout_s:.0f} s", file=sys.stderr)
            continue
        wait_for_vm_gone(compute, job_id, timeout_s=30)
    return published


def run_burst(
    cloud: LocalCloud, job_ids: Sequence[str], waves: int, timeout_s: float, stall_s: float
) -> tuple[dict[str, float], list[Wave]]:
    """``waves`` waves, each published at once; the next when this one's VMs are all inserted."""
    compute = cloud.env["COMPUTE_API_ENDPOINT"]
    size = math.ceil(len(job_ids) / waves)
    published: dict[str, float] = {}
    done: list[Wave] = []
    for start in range(0, len(job_ids), size):
        wave_ids = job_ids[start : start + size]
        times = publish_jobs(cloud, wave_ids)
        complete = wait_for_inserts(compute, wave_ids, timeout_s, stall_s)
        inserted = insert_times(compute)
        last = max((inserted[j] for j in wave_ids if j in inserted), default=time.time())
        done.append(Wave(len(wave_ids), last - min(times.values()), complete))
        published.update(times)
        if not complete:
            print(f"  wave {len(done)}: {sum(j in inserted for j in wave_ids)}/{len(wave_ids)} inserted, "
                  f"then none for {stall_s:.0f} s", file=sys.stderr)
    return published, done


def run(args: argparse.Namespace, state_dir: Path) -> Results:
    began = time.monotonic()
    cloud = LocalCloud(
        project=PROJECT,
        ports=Ports.free(load_topology(PROJECT)),
        state_dir=state_dir,
        tick_every_s=ONE_HOUR_S,
        extra_env={"VM_WORKER_COMMAND": "true", "PRIMARY_QUEUE_TIMEOUT_S": str(24 * ONE_HOUR_S)},
    )
    results = Results()
    print(f"Starting the local cloud (logs: {cloud.log_dir}) ...", file=sys.stderr, flush=True)
    with cloud:
        results.up_s = cloud.up_seconds or 0.0
        admin(cloud.env["VERTEX_API_ENDPOINT"], "faults", {"mode": "quota"})
        subscription = subscribe_to_vertex_events(cloud)
        idle_ids = [f"fo-idle-{i:03d}" for i in range(args.idle_jobs)]
        burst_ids = [f"fo-burst-{i:04d}" for i in range(args.jobs)]
        stage_assets(cloud, idle_ids + burst_ids)
        time.sleep(args.settle_s)  # let the staging bucket's finalize notifications drain first

        print(f"Idle: {len(idle_ids)} jobs one at a time ...", file=sys.stderr, flush=True)
        idle_published = run_idle(cloud, idle_ids, args.timeout_s)
        print(f"Burst: {len(burst_ids)} jobs in {args.waves} waves ...", file=sys.stderr, flush=True)
        burst_published, results.waves = run_burst(cloud, burst_ids, args.waves, args.timeout_s, args.stall_s)

        times = collect(cloud, subscription, {**idle_published, **burst_published})
        results.idle = [t for t in times if t.job_id in idle_published]
        results.burst = [t for t in times if t.job_id in burst_published]
    results.run_s = time.monotonic() - began
    return results


# --------------------------------------------------------------------------- report


def headline(jobs: Sequence[JobTimes]) -> dict[str, float | int]:
    return summarize(durations_ms(jobs, "vertex_failed", "insert_issued"))


def report(results: Results) -> dict[str, Any]:
    """Everything printed, as one JSON-ready object."""
    cold, warm = results.idle[:1], results.idle[1:]
    lost = [t for t in results.idle + results.burst if t.insert_issued is None]
    return {
        "without_vm": {t.job_id: t.final_status for t in lost},
        "burst": {
            "jobs": len(results.burst),
            "inserted": sum(t.insert_issued is not None for t in results.burst),
            "waves": [asdict(w) | {"jobs_per_s": round(w.jobs_per_s, 2)} for w in results.waves],
            "stages": stage_table(results.burst),
        },
        "idle": {"jobs": len(warm), "stages": stage_table(warm)},
        "cold_first_job": {"job_id": cold[0].job_id, "stages": stage_table(cold)} if cold else None,
        "cloud_up_s": results.up_s,
        "run_s": round(results.run_s, 1),
    }


def format_table(title: str, stages: dict[str, dict[str, float | int]]) -> str:
    lines = [title, f"  {'stage (ms)':<44}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    for label, figures in stages.items():
        if not figures["n"]:
            lines.append(f"  {label:<44}{0:>5}")
            continue
        flag = f"  ({figures['negative']} negative!)" if figures["negative"] else ""
        lines.append(f"  {label:<44}{figures['n']:>5}{figures['p50_ms']:>9.0f}{figures['p90_ms']:>9.0f}"
                     f"{figures['p99_ms']:>9.0f}{figures['max_ms']:>9.0f}{flag}")
    return "\n".join(lines)


def print_report(data: dict[str, Any]) -> None:
    burst, idle, cold = data["burst"], data["idle"], data["cold_first_job"]
    waves = ", ".join(f"{w['jobs']} in {w['seconds']:.1f} s ({w['jobs_per_s']:.1f}/s)" for w in burst["waves"])
    print(format_table(f"Burst: {burst['jobs']} jobs, {burst['inserted']} VMs inserted; waves: {waves}", burst["stages"]))
    print()
    print(format_table(f"Idle: {idle['jobs']} jobs one at a time (warm)", idle["stages"]))
    if cold:
        print()
        print(format_table(f"Cold: the first job ({cold['job_id']}), every function's first call", cold["stages"]))
    if data["without_vm"]:
        by_status: dict[str | None, int] = {}
        for status in data["without_vm"].values():
            by_status[status] = by_status.get(status, 0) + 1
        print()
        print(f"Jobs that got no VM: {len(data['without_vm'])}, by final status: "
              + ", ".join(f"{status}: {count}" for status, count in by_status.items())
              + f" ({', '.join(list(data['without_vm'])[:10])})")
    head, warm = burst["stages"]["Vertex FAILED -> insert issued"], idle["stages"]["Vertex FAILED -> insert issued"]
    rate = sum(w["jobs"] for w in burst["waves"]) / max(sum(w["seconds"] for w in burst["waves"]), 1e-9)
    print()
    print(f"failover: Vertex FAILED -> instances.insert p50 {head.get('p50_ms', float('nan')):.0f} ms, "
          f"p99 {head.get('p99_ms', float('nan')):.0f} ms over {head['n']} jobs in bursts ({rate:.1f} jobs/s); "
          f"idle p50 {warm.get('p50_ms', float('nan')):.0f} ms; cloud up {data['cloud_up_s']:.1f} s, run {data['run_s']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the burst (default 200)")
    parser.add_argument("--waves", type=int, default=4, help="waves the burst is published in (default 4)")
    parser.add_argument("--idle-jobs", type=int, default=20, help="jobs run one at a time first (default 20)")
    parser.add_argument("--timeout-s", type=float, default=180, help="wait at most this per wave / idle job for its inserts")
    parser.add_argument("--stall-s", type=float, default=20, help="stop waiting for a wave after this long without an insert")
    parser.add_argument("--settle-s", type=float, default=5, help="pause after staging the assets")
    parser.add_argument("--state-dir", type=Path, help="keep the cloud's state and logs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    if args.state_dir:
        results = run(args, args.state_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
            results = run(args, Path(tmp))
    data = report(results)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_report(data)
    complete = data["burst"]["inserted"] == data["burst"]["jobs"] and all(w["complete"] for w in data["burst"]["waves"])
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
