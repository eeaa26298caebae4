"""``avmonitor status`` and ``avmonitor show JOB``."""

from __future__ import annotations

import argparse
from datetime import datetime

from rich.table import Table

from operators import views
from operators.output import console, duration, emit, percent, usd


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", help="only jobs in this state (received, vm_running, failed, ...)")
    parser.add_argument("--since", help="only jobs changed within this long (30m, 24h, 7d)")
    parser.add_argument("--limit", type=int, default=50, help="jobs per page (default 50)")
    parser.add_argument("--cursor", help="the next page: the cursor the previous page printed")


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="JOB")


def run_status(args: argparse.Namespace) -> int:
    status = views.parse_status(args.state)
    since_s = views.parse_duration_s(args.since) if args.since else None
    views.preflight()
    rows, cursor = views.list_jobs(status=status, since_s=since_s, limit=args.limit, cursor=args.cursor)
    emit(args.json, {"jobs": rows, "cursor": cursor}, _print_status)
    return 0


def _print_status(data: dict) -> None:
    n = len(data["jobs"])
    table = Table(title=f"{n} job{'' if n == 1 else 's'}, newest first", title_justify="left")
    for column in ("job", "state", "method", "GPU / zone", "age", "progress", "est.", "actual", "last note"):
        table.add_column(column, no_wrap=column not in ("last note",), overflow="fold")
    for row in data["jobs"]:
        where = " ".join(x for x in (row["gpu"], row["provisioning"], row["zone"]) if x) or "-"
        table.add_row(row["job_id"], _state(row["state"]), row["method"], where, duration(row["age_s"]),
                      percent(row["progress"]), usd(row["estimated_cost_usd"]), usd(row["actual_cost_usd"]),
                      (row["error"] or row["last_note"])[:80])
    console.print(table)
    if data["cursor"]:
        console.print(f"more: avmonitor status --cursor '{data['cursor']}'")


def _state(state: str) -> str:
    colour = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(state, "cyan")
    return f"[{colour}]{state}[/]"


def run_show(args: argparse.Namespace) -> int:
    views.preflight()
    detail = views.job_detail(args.job_id)
    emit(args.json, detail, _print_show)
    return 0


def _print_show(d: dict) -> None:
    console.print(f"[bold]{d['job_id']}[/]  {_state(d['state'])}  method {d['method']}  "
                  f"video {d['video_length_s'] or '-'} s  age {duration(d['age_s'])}")
    if d["error"]:
        console.print(f"[red]error:[/] {d['error']}", markup=True)
    if d["video"]:
        console.print(f"video: {d['video']}")
    console.print(f"cost: estimated {usd(d['estimated_cost_usd'])}, reported by the renderer {usd(d['actual_cost_usd'])}")
    beat = d["heartbeat"]
    if beat:
        console.print(f"renderer: {beat['stage']}, {beat['frames_done']}/{beat['frames_total']} frames, "
                      f"{beat['fps']} fps, heartbeat {duration(beat['age_s'])} ago")
    timeline = Table(title="timeline", title_justify="left")
    for column in ("at", "state", "note"):
        timeline.add_column(column, overflow="fold")
    for entry in d["timeline"]:
        at = datetime.fromisoformat(entry["at"]).strftime("%H:%M:%S")
        timeline.add_row(at, entry["status"], entry.get("note", ""))
    console.print(timeline)
    primary = d["primary"]
    if primary["custom_job"] or primary["previous"]:
        console.print(f"primary: attempt {primary['attempt']}, {primary['custom_job'] or '-'}"
                      + (f", failed: {primary['failure']}: {primary['error']}" if primary["failure"] else ""))
        for old in primary["previous"]:
            console.print(f"  earlier: {old.get('custom_job')}: {old.get('error')}")
    if d["vm_attempts"]:
        vms = Table(title="VM attempts", title_justify="left")
        for column in ("attempt", "instance", "GPU", "zone", "end"):
            vms.add_column(column)
        for vm in d["vm_attempts"]:
            vms.add_row(str(vm.get("attempt")), vm.get("instance") or "-", f"{vm.get('gpu')} {vm.get('provisioning')}",
                        vm.get("zone") or "-", vm.get("end") or "-")
        console.print(vms)
    fallback = d["fallback"]
    if fallback["why"]:
        console.print(f"why this VM: {fallback['why']}")
    for tried in fallback["tried"]:
        console.print(f"  refused: {tried.get('gpu')} {tried.get('provisioning')} in {tried.get('zone')}: "
                      f"{tried.get('kind')} ({str(tried.get('detail', ''))[:100]})")
