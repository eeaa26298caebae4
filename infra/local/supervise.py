"""Keep one process running: restart it when it dies, as Cloud Functions replaces a crashed instance.

    python -m infra.local.supervise --pid-file run/fn-x/child.pid -- functions-framework --target ...

Cloud Functions (gen2, on Cloud Run) starts a new instance when one crashes or
is reclaimed, and Pub/Sub redelivers what the dead one had not acknowledged.
Locally each function is one functions-framework process, so without this a
killed function stayed down and every push to it failed until the dead-letter
policy took the message.

* The child runs in its own session (process group), so ``kill -9 -PID`` on the
  pid in ``--pid-file`` kills the function and the workers it forked, and not
  this supervisor. ``LocalCloud.kill_function`` and the push relay's ``kill``
  fault do exactly that.
* When the child dies, for whatever reason, it is started again after
  ``--restart-delay-s`` (0.5 s), and one line is logged.
* SIGTERM or SIGINT to the supervisor stop it for good: the child's group gets
  SIGKILL (a functions-framework process keeps no state; gunicorn takes
  seconds of CPU to exit on SIGTERM), the supervisor waits for it and exits.
  The child also gets SIGKILL should the supervisor itself be killed
  (``PR_SET_PDEATHSIG``), so no function outlives it.
* A child that cannot start (it exits by itself, not by a signal, within
  ``--min-uptime-s`` of starting, ``--max-quick-exits`` times in a row) is given
  up on: the supervisor exits with the child's status, so the local cloud's
  start reports the function's log instead of waiting for a port that never opens.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the supervisor dies (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def read_pid(pid_file: Path) -> int | None:
    """The supervised child's pid (also its process group id), or None while there is none."""
    try:
        text = Path(pid_file).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def kill_function_process(pid_file: Path) -> int | None:
    """SIGKILL the process group whose leader's pid is in ``pid_file``; the pid, or None if none ran."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


def _write_pid(pid_file: Path, pid: int | None) -> None:
    temporary = pid_file.with_suffix(".tmp")
    temporary.write_text("" if pid is None else f"{pid}\n")
    temporary.replace(pid_file)


def _log(name: str, message: str) -> None:
    print(f"supervise[{name}]: {message}", flush=True)


def _how(returncode: int) -> str:
    return f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"


class Supervisor:
    """Runs ``argv`` until told to stop; see the module docstring."""

    def __init__(
        self,
        argv: list[str],
        pid_file: Path,
        *,
        name: str = "",
        restart_delay_s: float = 0.5,
        min_uptime_s: float = 10.0,
        max_quick_exits: int = 3,
    ) -> None:
        self.argv = argv
        self.pid_file = Path(pid_file)
        self.name = name or Path(argv[0]).name
        self.restart_delay_s = restart_delay_s
        self.min_uptime_s = min_uptime_s
        self.max_quick_exits = max_quick_exits
        self.restarts = 0
        self._stopping = False  # set by a signal handler: a plain flag, no lock a handler could deadlock on
        self._child: subprocess.Popen[bytes] | None = None

    def stop(self, *_: object) -> None:
        """Stop for good (a signal handler): no restart after this; the child's group is killed."""
        self._stopping = True
        child = self._child
        if child is not None and child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        quick_exits = 0
        while not self._stopping:
            started = time.monotonic()
            # preexec_fn is safe here: the supervisor runs no threads.
            self._child = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
            _write_pid(self.pid_file, self._child.pid)
            if self._stopping:  # a stop that came while it was starting
                self.stop()
            returncode = self._child.wait()
            uptime = time.monotonic() - started
            _write_pid(self.pid_file, None)
            self._reap_group(self._child.pid)
            if self._stopping:
                break
            quick_exits = quick_exits + 1 if returncode >= 0 and uptime < self.min_uptime_s else 0
            if quick_exits >= self.max_quick_exits:
                _log(self.name, f"{_how(returncode)} {quick_exits} times within {self.min_uptime_s:g} s of starting; giving up")
                return returncode or 1
            self.restarts += 1
            _log(self.name, f"pid {self._child.pid} ended ({_how(returncode)}) after {uptime:.1f} s; "
                            f"restarting in {self.restart_delay_s:g} s (restart {self.restarts})")
            self._pause(self.restart_delay_s)
        return 0

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))

    @staticmethod
    def _reap_group(pgid: int) -> None:
        """Workers the child forked may outlive it for a moment: kill what is left of its group."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--pid-file", type=Path, required=True, help="holds the child's pid (empty between runs)")
    parser.add_argument("--name", default="", help="for the log lines")
    parser.add_argument("--restart-delay-s", type=float, default=0.5)
    parser.add_argument("--min-uptime-s", type=float, default=10.0)
    parser.add_argument("--max-quick-exits", type=int, default=3)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to keep running")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    args.pid_file.parent.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(
        command,
        args.pid_file,
        name=args.name,
        restart_delay_s=args.restart_delay_s,
        min_uptime_s=args.min_uptime_s,
        max_quick_exits=args.max_quick_exits,
    )
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
