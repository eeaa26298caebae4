"""Profile the failover's two handlers, warm, in this process, against a local cloud.

    .venv/bin/python bench/failover_profile.py [--calls 30] [--top 25] [--sort tottime]   (about 40 s)

Where ``bench/failover.py`` times the deployed functions from outside and from
their logs, this runs their plain functions here under cProfile, on job
states written for the purpose, so the cost of each step is seen without
the emulator's delivery:

* ``vertex_events.apply_primary_state``: a job with the primary and a FAILED
  Vertex job (read once from the Vertex stand-in, as the handler's GET does)
  -> ``fallback_requested`` and the publish to ``render-fallback`` (the
  deployed launcher then launches that job's VM: load beside us, as in a burst);
* ``fallback.launch_fallback``: a job in ``fallback_requested`` -> its insert
  (the VM's worker is ``true``: it deletes itself).

It prints the wall time per call (p50/p90, each call's ``delivery timing``
parts) and the cProfile top by cumulative time, with the load average.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench import failover_cloud as fc  # noqa: E402
from infra.local.cloud import LocalCloud, Ports  # noqa: E402
from infra.local.testkit import admin  # noqa: E402
from infra.local.topology import load_topology  # noqa: E402

PROJECT = "fast-render-bench"


def _state(job_id: str, status, custom_job: str):
    from functions.state import JobState, Status

    state = JobState(job_id=job_id, status=Status.RECEIVED, source="message", video_length_s=2.0)
    state.move_to(Status.RECEIVED, "job accepted")
    state.move_to(Status.PRIMARY_SUBMITTING, "submitting")
    state.primary.custom_job = custom_job
    state.move_to(Status.PRIMARY_SUBMITTED, f"Vertex AI job {custom_job}")
    if status is Status.FALLBACK_REQUESTED:
        state.primary.failure, state.primary.error = "quota", "primary quota: bench"
        state.move_to(Status.FALLBACK_REQUESTED, "primary quota: bench", failure="quota")
    return state


def _write(job_id: str, state) -> None:
    from functions.jobs import store

    store().update(job_id, lambda _: state)


def profile(label: str, calls: list, top: int, sort: str) -> None:
    from functions import timing

    profiler, walls = cProfile.Profile(), []
    for call in calls:
        began = time.perf_counter()
        with timing.delivery(label, None):
            profiler.enable()
            call()
            profiler.disable()
        walls.append((time.perf_counter() - began) * 1000)
    walls.sort()
    print(f"\n== {label}: {len(walls)} calls, wall p50 {statistics.median(walls):.1f} ms, "
          f"p90 {walls[int(0.9 * (len(walls) - 1))]:.1f} ms, max {walls[-1]:.1f} ms; load {os.getloadavg()}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(top)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative (default) or tottime (CPU where spent)")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-failover-profile-") as tmp:
        cloud = LocalCloud(project=PROJECT, ports=Ports.free(load_topology(PROJECT)), state_dir=Path(tmp), tick_every_s=3600,
                           extra_env={"VM_WORKER_COMMAND": "true", "PRIMARY_QUEUE_TIMEOUT_S": str(86400)})
        with cloud:
            os.environ.update(cloud.process_env())
            admin(cloud.env["VERTEX_API_ENDPOINT"], "faults", {"mode": "quota"})
            fc.stage_assets(cloud, ["fp-seed"])
            fc.publish_jobs(cloud, ["fp-seed"])  # one job through the pipeline: a FAILED Vertex job to reuse
            fc.wait_for_inserts(cloud.env["COMPUTE_API_ENDPOINT"], ["fp-seed"], 120, 120)

            from functions import clients, fallback, vertex_events
            from functions.state import Status

            custom_job = fc.read_state(cloud, "fp-seed")["primary"]["custom_job"]
            vertex_job = clients.job_client().get_custom_job(name=custom_job)
            # Warm: one call of each first (clients made, modules imported), outside the profile.
            warm_ids = [f"fp-warm-{i}" for i in range(2)]
            _write(warm_ids[0], _state(warm_ids[0], Status.PRIMARY_SUBMITTED, custom_job))
            vertex_events.apply_primary_state(warm_ids[0], vertex_job)
            _write(warm_ids[1], _state(warm_ids[1], Status.FALLBACK_REQUESTED, custom_job))
            fallback.launch_fallback(warm_ids[1])

            ve_ids = [f"fp-ve-{i:03d}" for i in range(args.calls)]
            fl_ids = [f"fp-fl-{i:03d}" for i in range(args.calls)]
            for job_id in ve_ids:
                _write(job_id, _state(job_id, Status.PRIMARY_SUBMITTED, custom_job))
            for job_id in fl_ids:
                _write(job_id, _state(job_id, Status.FALLBACK_REQUESTED, custom_job))
            began = time.perf_counter()
            clients.job_client().get_custom_job(name=custom_job)
            print(f"one Vertex GET (the handler's first step, not profiled below): {(time.perf_counter() - began) * 1000:.1f} ms")
            profile("apply_primary_state", [lambda j=j: vertex_events.apply_primary_state(j, vertex_job) for j in ve_ids], args.top, args.sort)
            profile("launch_fallback", [lambda j=j: fallback.launch_fallback(j) for j in fl_ids], args.top, args.sort)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
