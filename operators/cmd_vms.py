"""``avmonitor vm-status``: every VM the system launched, with its job and its heartbeat."""

from __future__ import annotations

import argparse

from rich.table import Table

from operators import views
from operators.output import console, duration, emit, percent, usd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stale-after", type=float, default=None,
                        help="flag a heartbeat older than this many seconds (default VM_HEARTBEAT_TIMEOUT_S)")


def run(args: argparse.Namespace) -> int:
    views.preflight()
    rows = views.list_vms(stale_after_s=args.stale_after)
    emit(args.json, {"vms": rows}, _print)
    return 0


def _print(data: dict) -> None:
    table = Table(title=f"{len(data['vms'])} VMs", title_justify="left")
    # The VM's name and its flags are what a reader acts on: never cut them short, whatever the width
    # (av-render-<job>-a<n> names are long); the other columns give way first.
    keep = {"VM": max((len(vm["name"]) for vm in data["vms"]), default=2), "flags": len("ORPHAN STALE")}
    for column in ("VM", "zone", "GPU", "spot", "status", "age", "job", "job state", "cost so far", "heartbeat", "progress", "flags"):
        table.add_column(column, no_wrap=True, min_width=keep.get(column))
    for vm in data["vms"]:
        flags = " ".join(f for f, on in (("[red]ORPHAN[/]", vm["orphan"]), ("[yellow]STALE[/]", vm["stale"])) if on)
        table.add_row(vm["name"], vm["zone"], vm["gpu"] or "-", "yes" if vm["provisioning"] == "spot" else "no",
                      vm["status"], duration(vm["age_s"]), vm["job_id"] or "-", vm["job_state"] or "unknown",
                      usd(vm["cost_so_far_usd"]), duration(vm["heartbeat_age_s"]), percent(vm["progress"]), flags)
    console.print(table)
