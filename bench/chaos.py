"""The fault campaign: "everything at least once, anything may crash", with figures.

    make chaos                                 # = python -m bench.chaos --size small
    python -m bench.chaos --size full          # more jobs per case, more malformed messages
    python -m bench.chaos --only kills,preemption --keep

One local cloud (infra/local, short timeouts, a watchdog tick every 2 s) runs
every scenario of bench/chaos_scenarios.py in turn: duplicated and reordered
deliveries, functions SIGKILLed mid-delivery, the primary's container
crashing, stale events, a hung VM, a lost finalize event, Spot preemption at
10/50/90 %, launches at the edge of the daily budget, malformed messages. Each
job is judged from what the main app and the stand-ins see (bench/chaos_harness.py).
Per-scenario figures, the failures in detail, the wall time, then exactly one line:

    chaos: N jobs, 0 lost, 0 stuck, 0 second VMs, 0 double completions, 0 healthy jobs failed, 0 over budget, rework R frames

The exit status is 1 if any of those zeros is not zero (or a message was
retried forever, or a malformed message changed a healthy job's course), 0 otherwise. A scenario the stand-ins cannot run yet is
reported as skipped and does not count.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python bench/chaos.py): the repo root is the package root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chaos_harness import Campaign, chaos_cloud, totals
from bench.chaos_scenarios import SCENARIOS, SIZES, Result, run

ZEROS = ("lost", "stuck", "second_vm", "double_completion", "healthy_failed")


def summary_line(results: list[Result]) -> str:
    counts = totals([v for r in results for v in r.verdicts])
    over = sum(r.over_budget for r in results)
    rework = sum(r.rework_frames for r in results)
    return (f"chaos: {counts['jobs']} jobs, {counts['lost']} lost, {counts['stuck']} stuck, "
            f"{counts['second_vm']} second VMs, {counts['double_completion']} double completions, "
            f"{counts['healthy_failed']} healthy jobs failed, {over} over budget, rework {rework} frames")


def failed_promises(results: list[Result]) -> Counter:
    counts = Counter({name: n for name, n in totals([v for r in results for v in r.verdicts]).items() if name in ZEROS})
    counts["over_budget"] = sum(r.over_budget for r in results)
    counts["retried_forever"] = sum(r.retried_forever for r in results)
    counts["healthy_touched"] = sum(r.touched for r in results)
    return +counts


def print_result(result: Result, out=sys.stdout) -> None:
    counts = totals(result.verdicts)
    if result.skipped:
        print(f"{result.name:14} SKIPPED: {result.skipped}", file=out)
        return
    outcomes = Counter(v.outcome for v in result.verdicts)
    print(f"{result.name:14} {counts['jobs']:3} jobs  {outcomes['succeeded']:3} ok {outcomes['failed']:3} failed  "
          f"lost {counts['lost']} stuck {counts['stuck']} 2nd-VM {counts['second_vm']} "
          f"double {counts['double_completion']} healthy-failed {counts['healthy_failed']}  {result.wall_s:6.1f} s"
          f"  -- {result.title}", file=out)
    for key, value in result.figures.items():
        if value not in ("", None):
            print(f"{'':16}{key}: {value}", file=out)


def print_failures(results: list[Result], out=sys.stdout) -> None:
    broken = [(r, v) for r in results for v in r.verdicts if v.broken]
    if not broken:
        return
    print("\nfailures (scenario, job, what broke, its state history):", file=out)
    for result, verdict in broken:
        job = next(j for j in result.jobs if j.job_id == verdict.job_id)
        print(f"- {result.name} {verdict.job_id}: {', '.join(verdict.broken)}; status {verdict.status}, outcome "
              f"{verdict.outcome}{' (' + verdict.reason + ')' if verdict.reason else ''}, {verdict.vms} VM(s) for "
              f"{verdict.attempts} attempt(s); {'; '.join(job.notes)}", file=out)
        print(verdict.timeline, file=out)
        for line in verdict.diagnostics:
            print(f"    {line}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--keep", action="store_true", help="keep the cloud's state dir and logs (printed at the end)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    size = SIZES[args.size]
    work = Path(tempfile.mkdtemp(prefix="fast-render-chaos-"))
    began = time.monotonic()
    results: list[Result] = []
    print(f"chaos campaign, size {size.name}: {', '.join(names)}", flush=True)
    try:
        with chaos_cloud(work / "cloud") as cloud:
            campaign = Campaign(cloud, work / "jobs")
            print(f"local cloud up in {cloud.up_seconds} s", flush=True)
            for name in names:
                result = run(campaign, name, size)
                results.append(result)
                print_result(result)
                sys.stdout.flush()
            campaign.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_failures(results)
    print(f"\nwall time {time.monotonic() - began:.0f} s" + (f"; state and logs in {work}" if args.keep else ""))
    print(summary_line(results))
    return 1 if failed_promises(results) else 0


if __name__ == "__main__":
    sys.exit(main())
