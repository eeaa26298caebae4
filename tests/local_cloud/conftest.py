"""Fixtures for the local cloud's tests: free ports, server processes, the Pub/Sub emulator.

Every process started here runs in its own process group and is stopped by
group (SIGTERM, then SIGKILL), so nothing it started outlives the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A child process in its own group whose output is read until ``ready_text``.

    The output keeps being drained afterwards (so the child never blocks on a
    full pipe) and is kept in ``lines`` for debugging a failed test.
    """

    def __init__(
        self, argv: list[str], ready_text: str, env: dict[str, str] | None = None, timeout_s: float = 60
    ) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if ready_text in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"{argv[:4]} not ready in {timeout_s}s:\n" + "\n".join(self.lines[-20:]))

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL it: its leader may be gone while others live on."""
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=5)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)


class LocalServer:
    """A running ``infra.local`` server: its endpoint and its admin API."""

    def __init__(self, module: str, project: str, extra_args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.project = project
        self.endpoint = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", module, "--port", str(self.port), "--project", project, *extra_args]
        self.process = ManagedProcess(argv, f"listening on 127.0.0.1:{self.port}", env=env, timeout_s=20)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST (JSON body) ``/_admin/<path>``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/_admin/{path}", data=data, method="GET" if data is None else "POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(fn, timeout_s=10)``: poll ``fn`` until it returns something truthy, and return that."""

    def wait(fn: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout_s}s (last value: {value!r})")
            time.sleep(interval_s)

    return wait


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """A Pub/Sub emulator for the session; yields its ``HOST:PORT``.

    ``PUBSUB_EMULATOR_HOST`` is set in this process while it runs, so the
    Pub/Sub clients the tests create talk to it.
    """
    host = f"127.0.0.1:{free_port()}"
    argv = ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}", "--project=local-cloud-tests"]
    emulator = ManagedProcess(argv, "Server started", timeout_s=60)
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


@pytest.fixture(scope="session")
def start_server() -> Iterator[Callable[..., LocalServer]]:
    """``start_server(module, project, *args, env=None)``; every server is stopped at the end."""
    servers: list[LocalServer] = []

    def start(module: str, project: str, *args: str, env: dict[str, str] | None = None) -> LocalServer:
        server = LocalServer(module, project, list(args), env=env)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
