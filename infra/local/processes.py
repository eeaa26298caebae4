"""The local cloud's processes: what is recorded of each, whether it runs, how its whole group is stopped.

Every process the local cloud starts runs in its own session (process group),
so stopping it stops what it started too; ``ProcessRecord`` is what the state
file keeps to find it again from another process (``python -m infra.local down``).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class ProcessRecord:
    """One started process group: what the state file keeps to find and stop it again."""

    name: str
    pid: int  # also its process group id
    started: int  # /proc start time (clock ticks): tells our process from a later one with the same pid
    port: int | None
    log: str
    argv: tuple[str, ...] = ()
    # False: SIGKILL at once. True: SIGTERM first, to clean up (the local
    # Compute Engine stops its VMs' processes; a function's supervisor stops
    # restarting and SIGKILLs its functions-framework process, which keeps no
    # state and whose gunicorn master takes seconds of CPU to exit on SIGTERM).
    graceful: bool = True


def proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of a process from /proc, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def live_processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process that is not a zombie."""
    result = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] != "Z":
                result[int(entry)] = (stat[1], stat[2])
    return result


def is_running(record: ProcessRecord) -> bool:
    """Whether the record's own process (same pid, same start time) is alive and not a zombie."""
    stat = proc_stat(record.pid)
    return stat is not None and stat[0] != "Z" and stat[3] == record.started


def _groups_to_stop(records: Iterable[ProcessRecord]) -> set[int]:
    """The process groups of the records and of everything they started.

    A process that started its own session (a VM's startup script under the
    local Compute Engine) is in another group; it is found through the parent
    links, before anything is signalled and those links are lost.
    """
    live = live_processes()
    groups: set[int] = set()
    for record in records:
        if is_running(record):
            groups.add(record.pid)
        elif record.pid not in live and any(pgid == record.pid for _, pgid in live.values()):
            groups.add(record.pid)  # leader gone, members alive: a pid in use as a pgid is never reused
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in live.items():
        children.setdefault(ppid, []).append(pid)
    pending = [pid for pid, (_, pgid) in live.items() if pgid in groups]
    while pending:
        pid = pending.pop()
        groups.add(live[pid][1])
        pending.extend(children.get(pid, []))
    return groups


def _signal_groups(groups: Iterable[int], signum: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass


def _wait_groups_gone(groups: set[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not any(pgid in groups for _, pgid in live_processes().values()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_processes(records: Iterable[ProcessRecord], grace_s: float = STOP_GRACE_S) -> None:
    """Signal every group (and its descendants' groups), then SIGKILL what outlives ``grace_s``.

    Graceful records get SIGTERM, the others SIGKILL (see ``ProcessRecord.graceful``).
    """
    records = list(records)
    gentle = _groups_to_stop([record for record in records if record.graceful])
    abrupt = _groups_to_stop([record for record in records if not record.graceful])
    _signal_groups(abrupt, signal.SIGKILL)
    _signal_groups(gentle, signal.SIGTERM)
    if not _wait_groups_gone(gentle | abrupt, grace_s):
        _signal_groups(gentle, signal.SIGKILL)
        _wait_groups_gone(gentle | abrupt, 5.0)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """Whether a server could bind ``port`` (as servers do, ignoring closed connections' TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            return True
        except OSError:
            return False


def log_tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
