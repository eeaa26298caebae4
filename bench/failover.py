"""Benchmark: primary failure to fallback ``instances.insert``, on the local cloud.

    .venv/bin/python bench/failover.py [--jobs 100] [--rate 10] [--idle-jobs 20] [--json] [--state-dir DIR]

(about 70 s with the defaults: the cloud starts in ~5 s, the idle jobs take ~1 s
each, the burst ``--jobs / --rate`` seconds plus its tail.)

What it measures: how long Fast Render takes, once Vertex AI has failed a job
(GPU quota), to issue the Compute Engine ``instances.insert`` for its fallback
VM, and how much of that is the product's own code and how much the local
Pub/Sub emulator's delivery. The Vertex stand-in fails every custom job with
RESOURCE_EXHAUSTED; the VM's worker command is ``true``, so each VM deletes
itself at once: the launch is measured, not the render.

1. Start a local cloud on free ports (its state and logs in a temp dir, or
   ``--state-dir``, which is then kept). The watchdog's tick is an hour away
   and its queue timeout longer, so it never acts.
2. Stage every job's assets (one small PNG each) before any timing starts.
3. Idle: ``--idle-jobs`` jobs one at a time, each after the previous one's VM
   has gone. The first of them meets every function cold (the handlers import
   their modules and make their clients on first call); it is reported on its own.
4. Burst: ``--jobs`` jobs at ``--rate`` jobs per second, published ``--rate``
   at once every second; then wait until every VM has been inserted (or none
   has come for ``--stall-s``: such jobs are listed with their final status).

Two ways of timing each job, which agree:

* From outside, every time read from the machine's wall clock (``time.time()``)
  by the process that saw the event: published (this process, before its
  publish call); Vertex FAILED (the Vertex stand-in's state history); the
  FAILED entry's publish time (a pull subscription of ours on
  ``vertex-events``); fallback_requested / vm_launching (the job's state
  history); insert issued (the Compute stand-in's ``insertTime``).
* From inside: each function logs one ``delivery timing`` line per call
  (``functions/timing.py``): its message's publish time, when the handler
  began, its named parts and when it sent the insert. That splits
  "Vertex FAILED -> insert" into the emulator's delivery (publish -> handler
  start, on both hops: ``bench/failover_logs.py``) and the product's own time
  (handler start -> fallback published, and handler start -> insert
  answered), with the product's parts: import (first call), state reads and
  transactions, selection, the insert request.

Reading the burst figures: the Pub/Sub emulator pushes a subscription's
messages a few at a time, so delivery includes queueing behind the
function's earlier calls (their whole length, the operation wait and the
VM's record included: "service time" below). Cloud Functions push
concurrently to as many instances as needed; the product's own part is what
one call costs.

Beside each phase a probe (``failover_cloud.FirestoreProbe``) reads one document and commits
another every 100 ms, outside the product: what one Firestore round trip costs on the emulator
at that moment. The product's calls make two reads and two commits on the way to the insert, so
in a burst most of "product" is the emulator's answer time on a shared machine, not our code
(whose CPU is printed too).

Percentiles are nearest-rank. A stage that ends before it starts is counted as
a clock-order violation (there should be none). The load average and the CPU
seconds (this process and the local cloud's) are printed for each phase: the
machine is shared, and a loaded machine stretches every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench import failover_cloud as fc  # noqa: E402
from bench.failover_logs import (  # noqa: E402
    FALLBACK_LOG,
    PARTS,
    SUBPARTS,
    VERTEX_LOG,
    Split,
    hops,
    outcomes,
    service_times_ms,
    split,
)
from bench.failover_stats import Figures, Phase, format_table, measure, summarize  # noqa: E402
from infra.local.cloud import LocalCloud, Ports  # noqa: E402
from infra.local.testkit import admin  # noqa: E402
from infra.local.topology import load_topology  # noqa: E402

PROJECT = "fast-render-bench"
ONE_HOUR_S = 3600


@dataclass
class JobTimes:
    """Epoch seconds of each step of one job's failover (None: not seen), and its inside view."""

    job_id: str
    published: float | None = None
    vertex_failed: float | None = None
    event_published: float | None = None
    fallback_requested: float | None = None
    vm_launching: float | None = None
    insert_issued: float | None = None
    final_status: str | None = None  # the state object's status at the end (for jobs that got no VM)
    split: Split | None = None


# (label, from, to): the outside view, in order. The first is the headline.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("Vertex FAILED -> insert issued", "vertex_failed", "insert_issued"),
    ("  job published -> Vertex FAILED", "published", "vertex_failed"),
    ("  Vertex FAILED -> fallback_requested", "vertex_failed", "fallback_requested"),
    ("  fallback_requested -> vm_launching", "fallback_requested", "vm_launching"),
    ("  vm_launching -> insert issued", "vm_launching", "insert_issued"),
    # Not always on the path: the handler of the job's earlier QUEUED event GETs
    # the job, and may find it FAILED already and request the fallback itself.
    ("  (Vertex FAILED -> its event published)", "vertex_failed", "event_published"),
)


def durations_ms(jobs: Sequence[JobTimes], start: str, end: str) -> list[float]:
    values = []
    for job in jobs:
        began, ended = getattr(job, start), getattr(job, end)
        if began is not None and ended is not None:
            values.append((ended - began) * 1000)
    return values


def stage_table(jobs: Sequence[JobTimes]) -> dict[str, Figures]:
    table = {label: summarize(durations_ms(jobs, start, end)) for label, start, end in STAGES}
    splits = [j.split for j in jobs if j.split is not None]
    table["delivery: the emulator (+ relay), both hops"] = summarize([s.delivery_ms for s in splits])
    table["  to vertex-events (after a NotYet: its redelivery)"] = summarize([s.vertex_hop_ms for s in splits])
    table["  to fallback-launcher"] = summarize([s.fallback_hop_ms for s in splits])
    table["product: own code, both hops (to insert answered)"] = summarize([s.product_ms for s in splits])
    for key, label in PARTS.items():
        table[f"  {label}"] = summarize([s.parts_ms[key] for s in splits])
        if key == "transaction":
            for sub_key, sub_label in SUBPARTS.items():
                table[f"    {sub_label}"] = summarize([s.parts_ms[sub_key] for s in splits])
    table["  other (Vertex read, code between the parts)"] = summarize([s.parts_ms["other"] for s in splits])
    table["  (CPU of both calls, whole)"] = summarize([s.cpu_ms for s in splits])
    table["  (transactions lost to another writer and run again: a count)"] = summarize([s.retries for s in splits])
    return table


# --------------------------------------------------------------------------- the runs


@dataclass
class Results:
    idle: list[JobTimes] = field(default_factory=list)
    burst: list[JobTimes] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    burst_rate: float = 0.0  # jobs/s, first publish to last publish
    service_ms: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    up_s: float = 0.0
    run_s: float = 0.0
    probe: dict[str, dict[str, Figures]] = field(default_factory=dict)  # phase -> read/commit -> figures


def run_idle(cloud: LocalCloud, job_ids: Sequence[str], timeout_s: float) -> dict[str, float]:
    """One job at a time; the next once the previous VM has deleted itself."""
    compute = cloud.env["COMPUTE_API_ENDPOINT"]
    published: dict[str, float] = {}
    for job_id in job_ids:
        published.update(fc.publish_jobs(cloud, [job_id]))
        if not fc.wait_for_inserts(compute, [job_id], timeout_s, stall_s=timeout_s):
            print(f"  idle job {job_id}: no insert after {timeout_s:.0f} s", file=sys.stderr)
            continue
        fc.wait_for_vm_gone(compute, job_id, timeout_s=30)
    return published


def run_burst(cloud: LocalCloud, job_ids: Sequence[str], rate: int, timeout_s: float, stall_s: float) -> tuple[dict[str, float], float]:
    """``rate`` jobs published at once every second; then wait for every insert. Returns the publish times and the rate."""
    published: dict[str, float] = {}
    began = time.monotonic()
    for second, start in enumerate(range(0, len(job_ids), rate)):
        time.sleep(max(0.0, began + second - time.monotonic()))
        published.update(fc.publish_jobs(cloud, job_ids[start : start + rate]))
    span = max(published.values()) - min(published.values())
    complete = fc.wait_for_inserts(cloud.env["COMPUTE_API_ENDPOINT"], job_ids, timeout_s, stall_s)
    if not complete:
        print(f"  burst: not every job got a VM; none came for {stall_s:.0f} s", file=sys.stderr)
    return published, len(job_ids) / (span + 1.0)  # n jobs over n/rate seconds


def collect(cloud: LocalCloud, subscription: str, published: dict[str, float]) -> list[JobTimes]:
    """Every job's times, from the stand-ins, the emulator, the state objects and the functions' logs."""
    compute, vertex = cloud.env["COMPUTE_API_ENDPOINT"], cloud.env["VERTEX_API_ENDPOINT"]
    failed, job_of_name = fc.vertex_failures(vertex)
    events = fc.failed_event_times(cloud, subscription, job_of_name)
    inserts = fc.insert_times(compute)
    ve = hops(cloud.log_dir, VERTEX_LOG, "on_vertex_event", "fallback_published")
    fl = hops(cloud.log_dir, FALLBACK_LOG, "launch_fallback", "insert_returned")
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = dict(zip(published, pool.map(lambda job_id: fc.read_state(cloud, job_id), published)))
    jobs = []
    for job_id, sent in published.items():
        history = fc.history_times(states[job_id])
        both = job_id in ve and job_id in fl and job_id in failed
        jobs.append(JobTimes(
            job_id=job_id,
            published=sent,
            vertex_failed=failed.get(job_id),
            event_published=events.get(job_id),
            fallback_requested=history.get("fallback_requested"),
            vm_launching=history.get("vm_launching"),
            insert_issued=inserts.get(job_id),
            final_status=states[job_id].get("status"),
            split=split(failed[job_id], ve[job_id], fl[job_id]) if both else None,
        ))
    return jobs


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
        subscription = fc.subscribe_to_vertex_events(cloud)
        idle_ids = [f"fo-idle-{i:03d}" for i in range(args.idle_jobs)]
        burst_ids = [f"fo-burst-{i:04d}" for i in range(args.jobs)]
        fc.stage_assets(cloud, idle_ids + burst_ids)
        time.sleep(args.settle_s)  # let the staging bucket's finalize notifications drain first

        print(f"Idle: {len(idle_ids)} jobs one at a time ...", file=sys.stderr, flush=True)
        with measure("idle") as phase, fc.FirestoreProbe(cloud) as probe:
            idle_published = run_idle(cloud, idle_ids, args.timeout_s)
        results.phases.append(phase)
        results.probe["idle"] = {"read": summarize(probe.read_ms), "commit": summarize(probe.commit_ms)}
        print(f"Burst: {len(burst_ids)} jobs at {args.rate}/s ...", file=sys.stderr, flush=True)
        with measure("burst") as phase, fc.FirestoreProbe(cloud) as probe:
            burst_published, results.burst_rate = run_burst(cloud, burst_ids, args.rate, args.timeout_s, args.stall_s)
        results.phases.append(phase)
        results.probe["burst"] = {"read": summarize(probe.read_ms), "commit": summarize(probe.commit_ms)}

        times = collect(cloud, subscription, {**idle_published, **burst_published})
        results.idle = [t for t in times if t.job_id in idle_published]
        results.burst = [t for t in times if t.job_id in burst_published]
        results.service_ms = {
            "vertex-events (on_vertex_event)": service_times_ms(cloud.log_dir, VERTEX_LOG, "on_vertex_event"),
            "fallback-launcher (launch_fallback)": service_times_ms(cloud.log_dir, FALLBACK_LOG, "launch_fallback"),
        }
        results.outcomes = {
            "vertex-events": outcomes(cloud.log_dir, VERTEX_LOG, "on_vertex_event"),
            "fallback-launcher": outcomes(cloud.log_dir, FALLBACK_LOG, "launch_fallback"),
        }
    results.run_s = time.monotonic() - began
    return results


# --------------------------------------------------------------------------- report


def report(results: Results) -> dict[str, Any]:
    """Everything printed, as one JSON-ready object."""
    cold, warm = results.idle[:1], results.idle[1:]
    lost = [t for t in results.idle + results.burst if t.insert_issued is None]
    return {
        "without_vm": {t.job_id: t.final_status for t in lost},
        "burst": {
            "jobs": len(results.burst),
            "inserted": sum(t.insert_issued is not None for t in results.burst),
            "jobs_per_s": round(results.burst_rate, 2),
            "stages": stage_table(results.burst),
        },
        "idle": {"jobs": len(warm), "stages": stage_table(warm)},
        "cold_first_job": {"job_id": cold[0].job_id, "stages": stage_table(cold)} if cold else None,
        "service_ms": {name: summarize(values[1:]) for name, values in results.service_ms.items()},  # first: cold
        "outcomes": results.outcomes,
        "phases": [asdict(p) for p in results.phases],
        "phase_lines": [p.line() for p in results.phases],
        "cloud_up_s": results.up_s,
        "run_s": round(results.run_s, 1),
        "firestore_probe_ms": results.probe,
    }


def _probe_line(probe: dict[str, Figures] | None) -> str:
    if not probe:
        return "  (no Firestore probe)"
    read, commit = probe["read"], probe["commit"]
    return (f"  the Firestore emulator meanwhile, probed outside the product every 100 ms: one read p50 "
            f"{_p(read, 'p50_ms'):.0f} / p99 {_p(read, 'p99_ms'):.0f} ms, one commit p50 {_p(commit, 'p50_ms'):.0f} / "
            f"p99 {_p(commit, 'p99_ms'):.0f} ms ({read.get('n', 0)} probes)")


def _p(figures: Figures, key: str) -> float:
    return float(figures.get(key, float("nan")))


def print_report(data: dict[str, Any]) -> None:
    burst, idle, cold = data["burst"], data["idle"], data["cold_first_job"]
    for line in data["phase_lines"]:
        print(line)
    print()
    print(format_table(f"Burst: {burst['jobs']} jobs at {burst['jobs_per_s']:.1f}/s, {burst['inserted']} VMs inserted",
                       burst["stages"]))
    print(_probe_line(data["firestore_probe_ms"].get("burst")))
    print()
    print(format_table(f"Idle: {idle['jobs']} jobs one at a time (warm)", idle["stages"]))
    print(_probe_line(data["firestore_probe_ms"].get("idle")))
    if cold:
        print()
        print(format_table(f"Cold: the first job ({cold['job_id']}), every function's first call", cold["stages"]))
    print()
    print(format_table("Service time: each call's whole length, warm (what a push subscription waits for)",
                       data["service_ms"]))
    print("  calls (all jobs): " + "; ".join(
        f"{name} {sum(counts.values())}, raised {counts.get('raised', 0)}" for name, counts in data["outcomes"].items())
        + " (vertex-events raises NotYet when Vertex's event comes before the primary recorded its job: delivered again)")
    if data["without_vm"]:
        by_status: dict[str | None, int] = {}
        for status in data["without_vm"].values():
            by_status[status] = by_status.get(status, 0) + 1
        print()
        print(f"Jobs that got no VM: {len(data['without_vm'])}, by final status: "
              + ", ".join(f"{status}: {count}" for status, count in by_status.items())
              + f" ({', '.join(list(data['without_vm'])[:10])})")
    product, delivery = "product: own code, both hops (to insert answered)", "delivery: the emulator (+ relay), both hops"
    head = "Vertex FAILED -> insert issued"
    b, i = burst["stages"], idle["stages"]
    print()
    print(f"failover: Vertex FAILED -> instances.insert: idle p50 {_p(i[head], 'p50_ms'):.0f} / p99 {_p(i[head], 'p99_ms'):.0f} ms "
          f"(product {_p(i[product], 'p50_ms'):.0f} / {_p(i[product], 'p99_ms'):.0f}, delivery {_p(i[delivery], 'p50_ms'):.0f} / "
          f"{_p(i[delivery], 'p99_ms'):.0f}); burst {burst['jobs_per_s']:.1f} jobs/s p50 {_p(b[head], 'p50_ms'):.0f} / "
          f"p99 {_p(b[head], 'p99_ms'):.0f} ms (product {_p(b[product], 'p50_ms'):.0f} / {_p(b[product], 'p99_ms'):.0f}, "
          f"delivery {_p(b[delivery], 'p50_ms'):.0f} / {_p(b[delivery], 'p99_ms'):.0f}); "
          f"cloud up {data['cloud_up_s']:.1f} s, run {data['run_s']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the burst (default 100)")
    parser.add_argument("--rate", type=int, default=10, help="burst jobs published per second, at once (default 10)")
    parser.add_argument("--idle-jobs", type=int, default=20, help="jobs run one at a time first (default 20)")
    parser.add_argument("--timeout-s", type=float, default=180, help="wait at most this for the burst / an idle job's inserts")
    parser.add_argument("--stall-s", type=float, default=20, help="stop waiting for the burst after this long without an insert")
    parser.add_argument("--settle-s", type=float, default=5, help="pause after staging the assets")
    parser.add_argument("--state-dir", type=Path, help="keep the cloud's state and logs here (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.rate < 1:
        parser.error("--rate: at least 1 job per second")

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
    return 0 if data["burst"]["inserted"] == data["burst"]["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main())
