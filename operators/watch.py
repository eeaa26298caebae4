"""``avmonitor watch [JOB...]``: live progress bars per job, from the renderers' heartbeats, until every job ends.

Without job ids it watches every active job. State changes are printed above
the bars as they happen. The exit code is 0 when every watched job succeeded,
1 otherwise (failed or cancelled). ``--json`` prints one line per change
instead (for scripts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from operators import views
from operators.output import console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="*", metavar="JOB", help="the jobs to watch (default: every active job)")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between polls (default 1)")


def run(args: argparse.Namespace) -> int:
    from functions.jobs import store

    views.preflight()
    job_ids = list(dict.fromkeys(args.job_ids)) or [s.job_id for s in store().active()
                                                     if not isinstance(s, ValueError) and not s.status.terminal]
    for job_id in job_ids:
        views.get_job(job_id)  # an unknown id: one line, before anything is drawn
    if not job_ids:
        console.print("no active jobs")
        return 0
    if args.json:
        return _watch_json(job_ids, args.every)
    return _watch_bars(job_ids, args.every)


def _snapshot(job_id: str) -> tuple[dict, object]:
    state = views.get_job(job_id)
    renderer = views.current_renderer(state)
    beat = views.read_heartbeat(job_id, renderer) if renderer and not state.status.terminal else None
    return views.job_row(state, beat), beat


def _watch_bars(job_ids: list[str], every_s: float) -> int:
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
               TextColumn("{task.fields[frames]}"), TextColumn("{task.fields[speed]}"), TimeRemainingColumn())
    last_state: dict[str, str] = {}
    done: dict[str, str] = {}
    with Progress(*columns, console=console, transient=False) as progress:
        tasks = {job_id: progress.add_task(job_id, total=1, frames="", speed="") for job_id in job_ids}
        while len(done) < len(job_ids):
            for job_id in job_ids:
                if job_id in done:
                    continue
                row, beat = _snapshot(job_id)
                if row["state"] != last_state.get(job_id):
                    at = datetime.now().strftime("%H:%M:%S")
                    progress.console.print(f"{at} {job_id}: {row['state']}: {row['error'] or row['last_note']}")
                    last_state[job_id] = row["state"]
                total = max(row["frames_total"] or 0, 1)
                completed = total if row["state"] == "succeeded" else (row["frames_done"] or 0)
                frames = f"{row['frames_done']}/{row['frames_total']} frames" if row["frames_total"] else row["state"]
                speed = f"{beat.fps:.0f} fps" if beat is not None and beat.fps else ""
                progress.update(tasks[job_id], total=total, completed=completed, frames=frames, speed=speed,
                                description=f"{job_id} ({row['state']})")
                if row["state"] in ("succeeded", "failed", "cancelled"):
                    done[job_id] = row["state"]
            if len(done) < len(job_ids):
                time.sleep(every_s)
    return 0 if all(state == "succeeded" for state in done.values()) else 1


def _watch_json(job_ids: list[str], every_s: float) -> int:
    seen: dict[str, tuple] = {}
    done: dict[str, str] = {}
    while len(done) < len(job_ids):
        for job_id in job_ids:
            if job_id in done:
                continue
            row, _ = _snapshot(job_id)
            key = (row["state"], row["frames_done"])
            if seen.get(job_id) != key:
                sys.stdout.write(json.dumps(row, default=str) + "\n")
                sys.stdout.flush()
                seen[job_id] = key
            if row["state"] in ("succeeded", "failed", "cancelled"):
                done[job_id] = row["state"]
        if len(done) < len(job_ids):
            time.sleep(every_s)
    return 0 if all(state == "succeeded" for state in done.values()) else 1
