"""``avmonitor health`` against a local cloud of its own: all green, then red with the reason as parts stop.

This module starts its own cloud (free ports, its own state dir) because it
breaks it: the tests run in file order, the first on the whole cloud, each later
one stopping or deleting one more part and looking for the line that names it.
The session's ``cloud`` (tests/operators/conftest.py) is never touched.

Most tests call ``health.run`` in this process, with the cloud's environment in
``os.environ`` for the call only (``functions.clients`` caches its clients per
environment, so the caches are cleared around it): the client libraries are then
imported already, and a test can tell how long the probing itself took. One test
runs ``python -m operators health`` as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from functions import clients
from infra.local.cloud import LocalCloud, Ports, is_running, stop_processes
from infra.local.topology import load_topology
from operators import health

REPO = Path(__file__).resolve().parents[2]
PROJECT = "fast-render-health"
# What says which cloud a client talks to: taken from the test's cloud, never from this process.
CLOUD_VARS = (
    "GOOGLE_CLOUD_PROJECT", "PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST",
    "COMPUTE_API_ENDPOINT", "VERTEX_API_ENDPOINT", "API_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS",
    "LOCAL_CLOUD_STATE_DIR", "WORKER_IMAGE", "VM_WORKER_COMMAND", "GPU_CATALOG", "STAGING_BUCKET", "OUTPUT_BUCKET",
    "FIRESTORE_DATABASE", "REGION",
)


@pytest.fixture(scope="module")
def health_cloud(new_cloud: Callable[..., LocalCloud]) -> Iterator[LocalCloud]:
    # The renderer runs here, not in Docker.
    local = new_cloud(PROJECT, "health-cloud", extra_env={"VM_WORKER_COMMAND": "python -m render_vm worker"})
    with local:
        # A just-started emulator's JVM answers its first query in seconds on a loaded machine; health's
        # deadline is for a live service, so the cold start is paid here.
        local.firestore().collection("jobs").limit(1).get()
        yield local


def env_of(cloud: LocalCloud) -> dict[str, str]:
    """An operator's shell after `eval "$(python -m infra.local env)"`, for this cloud's state dir."""
    return {**cloud.env, "LOCAL_CLOUD_STATE_DIR": str(cloud.state_dir)}


def _clear_client_caches() -> None:
    for value in vars(clients).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``env``'s cloud settings (and no others) in ``os.environ`` while inside; everything restored after."""
    saved = dict(os.environ)
    for name in CLOUD_VARS:
        os.environ.pop(name, None)
    os.environ.update(env)
    _clear_client_caches()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _clear_client_caches()


def run_health(env: dict[str, str], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str, float]:
    """``health.run`` as ``avmonitor health ARGS`` calls it: exit code, stdout, stderr, seconds taken."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")  # the CLI adds it to every command
    health.add_arguments(parser)
    capsys.readouterr()
    with environment(env):
        began = time.monotonic()
        code = health.run(parser.parse_args(list(args)))
        seconds = time.monotonic() - began
    out, err = capsys.readouterr()
    return code, out, err, seconds


def red_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("✗") and "checks failing" not in line]


def line_for(text: str, name: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()[2:].startswith(f"{name}:")]
    assert len(lines) == 1, f"{name!r} in:\n{text}"
    return lines[0]


def process(cloud: LocalCloud, name: str):
    return next(record for record in cloud.processes if record.name == name)


# --------------------------------------------------------------------------- a healthy cloud


def test_a_running_local_cloud_is_all_green_one_line_per_dependency(health_cloud: LocalCloud, capsys) -> None:
    code, out, err, _ = run_health(env_of(health_cloud), capsys)
    assert code == 0, out + err
    assert red_lines(out) == []
    topology = health_cloud.topology
    for name in [
        *(f"topic {topic}" for topic in topology.all_topics),
        *(f"subscription {s.name}" for s in topology.pull_subscriptions),
        *(f"trigger of {f.name}" for f in topology.functions),
        *(f"function {name}" for name in topology.function_names),
        "bucket staging", "bucket output", "notification staging -> staging-events", "notification output -> output-events",
        "database (default)", "instances", "custom jobs", "gpu catalog", "Vertex AI container", "VM worker", "push relay",
    ]:
        assert line_for(out, name).startswith("✓"), name
    # Locally the notification configs are the router's; the line says so rather than pretending.
    assert "emulated" in line_for(out, "notification staging -> staging-events")
    # What the functions were started with, not what this shell has.
    assert "VM_WORKER_COMMAND=`python -m render_vm worker` (fallback-launcher's environment)" in line_for(out, "VM worker")
    assert out.rstrip().endswith("checks healthy")


def test_the_command_line_prints_json_and_exits_0(health_cloud: LocalCloud) -> None:
    base = {name: value for name, value in os.environ.items() if name not in CLOUD_VARS}
    result = subprocess.run([sys.executable, "-m", "operators", "health", "--json"], check=False, cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**base, "PYTHONPATH": str(REPO), **env_of(health_cloud)})
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(result.stdout)
    assert {c["component"] for c in checks} == set(health.COMPONENTS)
    assert all(c["ok"] and c["detail"] and set(c) == {"component", "name", "ok", "detail", "fix"} for c in checks)


# --------------------------------------------------------------------------- parts stop, one by one


def test_a_stopped_function_is_a_red_line_naming_it(health_cloud: LocalCloud, capsys) -> None:
    supervisor = process(health_cloud, "fn-primary")
    stop_processes([supervisor])  # its supervisor too, so it stays down (a killed function alone is restarted)
    assert not is_running(supervisor)
    code, out, _, _ = run_health(env_of(health_cloud), capsys)
    assert code == 1
    line = line_for(out, "function primary")
    assert line.startswith("✗ function primary: stopped") and "fix:" in line and "python -m infra.local" in line
    assert red_lines(out) == [line]  # nothing else is blamed
    assert line_for(out, "function fallback-launcher").startswith("✓")


def test_a_deleted_topic_is_a_red_line_naming_it(health_cloud: LocalCloud, capsys) -> None:
    publisher, _ = health_cloud.pubsub()
    publisher.delete_topic(topic=publisher.topic_path(PROJECT, "render-fallback"))
    code, out, _, _ = run_health(env_of(health_cloud), capsys)
    assert code == 1
    line = line_for(out, "topic render-fallback")
    assert line.startswith("✗ topic render-fallback: missing") and "terraform -chdir=infra/terraform apply" in line
    # What hung off it is red too, and says why.
    assert "not render-fallback (was its topic deleted?)" in line_for(out, "trigger of fallback-launcher")
    assert line_for(out, "topic render-primary").startswith("✓")


def test_a_stopped_firestore_emulator_is_one_red_line_within_seconds(health_cloud: LocalCloud, capsys) -> None:
    stop_processes([process(health_cloud, "firestore")])
    code, out, _, seconds = run_health(env_of(health_cloud), capsys)
    assert code == 1
    line = line_for(out, "Firestore")
    # A new connection is refused; the client's connection from the check before is reset instead,
    # whichever gRPC tries first: both say the server is gone, in one short line.
    unreachable = f"✗ Firestore: unreachable at {health_cloud.env['FIRESTORE_EMULATOR_HOST']}: "
    assert line.startswith((unreachable + "connection refused", unreachable + "connection reset (the server went away)"))
    assert "fix:" in line
    assert [check for check in red_lines(out) if "Firestore" in check] == [line]  # one line, not one per collection
    assert seconds < 10, f"took {seconds:.1f} s"  # not the client's minutes of retries


# --------------------------------------------------------------------------- bad environments, no cloud


def test_unreachable_endpoints_each_give_one_line_and_a_non_zero_exit(tmp_path: Path, capsys) -> None:
    dead = Ports.free(load_topology(PROJECT))  # nothing listens on these
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT, "API_CREDENTIALS": "anonymous", "LOCAL_CLOUD_STATE_DIR": str(tmp_path),
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{dead.pubsub}", "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{dead.firestore}",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{dead.gcs}", "COMPUTE_API_ENDPOINT": f"http://127.0.0.1:{dead.compute}",
        "VERTEX_API_ENDPOINT": f"http://127.0.0.1:{dead.vertex}",
    }
    code, out, _, seconds = run_health(env, capsys)
    assert code == 1
    for heading, port in [("Pub/Sub", dead.pubsub), ("Cloud Storage", dead.gcs), ("Firestore", dead.firestore),
                          ("Compute Engine API", dead.compute), ("Vertex AI API", dead.vertex)]:
        line = line_for(out, heading)
        assert line.startswith(f"✗ {heading}: unreachable at ") and f":{port}: connection refused" in line, line
    # No local cloud to look at: the line says where it looked, and what else it could not do.
    assert f"no local cloud state in {tmp_path}" in line_for(out, "Cloud Functions API")
    assert seconds < 10, f"took {seconds:.1f} s"


def test_missing_credentials_are_one_line_and_exit_1(tmp_path: Path) -> None:
    base = {name: value for name, value in os.environ.items() if name not in CLOUD_VARS}
    env = {**base, "PYTHONPATH": str(REPO), "GOOGLE_CLOUD_PROJECT": PROJECT, "LOCAL_CLOUD_STATE_DIR": str(tmp_path),
           "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json"),
           "COLUMNS": "400"}  # rich wraps stderr at 80 columns when it is not a terminal
    result = subprocess.run([sys.executable, "-m", "operators", "health"], check=False, cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no Google credentials" in result.stderr and "no-such-key.json" in result.stderr


def test_a_dropped_connection_reads_as_one_short_reason() -> None:
    from operators.health_model import _reason

    dropped = Exception("503 Stream removed (recvmsg:Connection reset by peer (104)) [a paragraph of gRPC detail]")
    assert _reason(dropped) == "connection reset (the server went away)"
    assert _reason(Exception("failed to connect to all addresses; Connection refused")) == "connection refused"
