"""The official Firestore emulator for the store's tests, started once and stopped at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from functions.store import StateStore
from infra.local.emulators import close_firestore_client, firestore_argv, firestore_client

HOST = "127.0.0.1"
READY = "Dev App Server is now running"


@pytest.fixture(scope="session")
def firestore_host(tmp_path_factory: pytest.TempPathFactory):
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("firestore") / "emulator.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(firestore_argv(HOST, port, "store-tests"), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"})
    try:
        deadline = time.monotonic() + 60
        while READY not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Firestore emulator did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"{HOST}:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def store(firestore_host: str, request: pytest.FixtureRequest):
    """A store on a project of its own per test, so no test sees another's documents."""
    project = "t-" + request.node.name.replace("_", "-")[:24].strip("-").lower() + f"-{time.time_ns() % 10**6}"
    client = firestore_client(firestore_host, project)
    yield StateStore(client)
    close_firestore_client(client)
