"""The supervisor brings a killed function back, and stops for good when it is told to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.cloud import live_processes
from infra.local.supervise import read_pid
from infra.local.testkit import wait_until

REPO = Path(__file__).resolve().parents[2]
# A child that forks a worker into its own group, as gunicorn's master does.
CHILD = "import os, time\nif os.fork() == 0:\n    time.sleep(600)\ntime.sleep(600)\n"


def group_members(pgid: int) -> list[int]:
    return [pid for pid, (_, group) in live_processes().items() if group == pgid]


@pytest.fixture
def supervised(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    log = open(tmp_path / "supervise.log", "wb")  # noqa: SIM115 -- the child writes to it until teardown
    argv = [sys.executable, "-m", "infra.local.supervise", "--name", "t", "--pid-file", str(pid_file),
            "--", sys.executable, "-c", CHILD]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: read_pid(pid_file) and len(group_members(read_pid(pid_file))) == 2)
    yield proc, pid_file, tmp_path / "supervise.log"
    for pgid in {proc.pid, read_pid(pid_file) or proc.pid}:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=5)
    log.close()


def test_a_killed_child_is_started_again_with_its_new_pid_in_the_pid_file(supervised) -> None:
    proc, pid_file, log = supervised
    first = read_pid(pid_file)
    assert first != proc.pid and os.getpgid(first) == first  # its own group, not the supervisor's

    os.killpg(first, signal.SIGKILL)  # the child and the worker it forked
    began = time.monotonic()
    second = wait_until(lambda: (pid := read_pid(pid_file)) not in (None, first) and pid)
    assert time.monotonic() - began >= 0.4  # the restart delay (0.5 s)
    assert group_members(first) == []
    wait_until(lambda: len(group_members(second)) == 2)
    assert proc.poll() is None
    assert f"pid {first} ended (signal 9)" in log.read_text() and "restart 1" in log.read_text()


def test_sigterm_stops_the_supervisor_and_its_child_for_good(supervised) -> None:
    proc, pid_file, _ = supervised
    child = read_pid(pid_file)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert group_members(child) == [] and group_members(proc.pid) == []
    time.sleep(0.8)  # longer than the restart delay: nothing came back
    assert read_pid(pid_file) is None


def test_the_child_dies_with_a_killed_supervisor(supervised) -> None:
    proc, pid_file, _ = supervised
    child = read_pid(pid_file)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    wait_until(lambda: child not in live_processes())


def test_a_child_that_cannot_start_is_given_up_on(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "infra.local.supervise", "--pid-file", str(tmp_path / "p"),
            "--restart-delay-s", "0.05", "--", sys.executable, "-c", "raise SystemExit(3)"]
    done = subprocess.run(argv, check=False, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "3 times within 10 s of starting; giving up" in done.stdout
