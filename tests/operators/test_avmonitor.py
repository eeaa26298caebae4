"""``avmonitor`` against the local cloud, as an operator runs it: real jobs, real commands, real exit codes."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.testkit import admin, submit_job, wait_until
from functions.vm_spec import instance_name

REPO = Path(__file__).resolve().parents[2]


def avmonitor(cloud, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """``./avmonitor ARGS`` with the cloud's environment, as a user's shell would run it."""
    env = {**os.environ, **cloud.env, "AVMONITOR_OPERATOR": "ops@example.com", "COLUMNS": "200"}
    return subprocess.run([str(REPO / "avmonitor"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def as_json(cloud, *args: str) -> dict:
    result = avmonitor(cloud, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def vertex(cloud):
    endpoint = cloud.env["VERTEX_API_ENDPOINT"]
    yield lambda **faults: admin(endpoint, "faults", faults)
    admin(endpoint, "faults", {"mode": "ok"})


@pytest.fixture
def compute(cloud):
    endpoint = cloud.env["COMPUTE_API_ENDPOINT"]
    yield lambda **faults: admin(endpoint, "faults", faults)
    admin(endpoint, "faults", {})


def _submit(cloud, job_dir: Path) -> str:
    from functions import clients

    return submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)


def _status_of(job_id: str) -> str | None:
    from functions.jobs import store

    state = store().get(job_id)
    return state.status.value if state else None  # None until intake has recorded it


def test_status_and_show_tell_a_vertex_job_from_a_fallback_one(cloud, outcomes, vertex, job_dir, another_job_dir) -> None:
    on_vertex = _submit(cloud, job_dir)
    assert outcomes.wait(on_vertex)["status"] == "succeeded"
    vertex(mode="quota")
    on_vm = _submit(cloud, another_job_dir)
    assert outcomes.wait(on_vm)["status"] == "succeeded"
    rows = {row["job_id"]: row for row in as_json(cloud, "status", "--limit", "100")["jobs"]}
    assert rows[on_vertex]["method"] == "vertex" and rows[on_vertex]["state"] == "succeeded"
    assert rows[on_vm]["method"] == "vm" and rows[on_vm]["gpu"] and rows[on_vm]["zone"]
    assert rows[on_vm]["estimated_cost_usd"] > 0 and rows[on_vm]["progress"] == 1.0
    detail = as_json(cloud, "show", on_vm)
    assert [e["status"] for e in detail["timeline"]][-1] == "succeeded" and detail["fallback"]["why"]
    assert detail["vm_attempts"] and detail["vm_attempts"][-1]["instance"]
    table = avmonitor(cloud, "status", "--limit", "100")
    assert table.returncode == 0 and on_vm in table.stdout and "succeeded" in table.stdout
    shown = avmonitor(cloud, "show", on_vm)
    assert "timeline" in shown.stdout and "why this VM" in shown.stdout
    only_failed = as_json(cloud, "status", "--state", "failed")["jobs"]
    assert on_vm not in {row["job_id"] for row in only_failed}


def test_a_hedged_job_shows_as_a_hedge(cloud, outcomes, vertex, job_dir) -> None:
    vertex(mode="queued")  # the primary never leaves the queue: past PRIMARY_QUEUE_TIMEOUT_S a VM is launched beside it
    job_id = _submit(cloud, job_dir)
    assert outcomes.wait(job_id)["rendered_by"] == "vm"
    [row] = [r for r in as_json(cloud, "status", "--limit", "100")["jobs"] if r["job_id"] == job_id]
    assert row["method"] == "hedge" and row["state"] == "succeeded"


def test_vm_status_shows_the_running_vm_with_its_job_and_flags_a_stale_heartbeat(cloud, vertex, long_job_dir) -> None:
    vertex(mode="quota")
    job_id = _submit(cloud, long_job_dir)

    def row(**want):  # the job's VM row if it matches want (a value of None: the field is set at all)
        rows = [r for r in as_json(cloud, "vm-status", "--stale-after", "4")["vms"] if r["job_id"] == job_id]
        return rows[0] if rows and all(rows[0][k] == v if v is not None else rows[0][k] is not None
                                       for k, v in want.items()) else None

    try:
        live = wait_until(lambda: row(heartbeat_age_s=None, stale=False), timeout_s=90)  # rendering, heartbeat fresh
        assert live["job_state"] == "vm_running" and not live["orphan"] and live["gpu"] and live["zone"]
        assert live["provisioning"] in ("spot", "on-demand") and live["cost_so_far_usd"] > 0
        # Freeze it (SIGSTOP, as a hung guest): its heartbeat goes stale, 15 s before the watchdog relaunches.
        admin(cloud.env["COMPUTE_API_ENDPOINT"], f"instances/{live['zone']}/{live['name']}/hang", {})
        stale = wait_until(lambda: row(stale=True), timeout_s=30)
        assert stale["name"] == live["name"]
        table = avmonitor(cloud, "vm-status", "--stale-after", "4")
        assert live["name"] in table.stdout and "STALE" in table.stdout
    finally:
        avmonitor(cloud, "cancel", job_id)


def test_bad_input_gets_one_line_and_a_non_zero_exit(cloud) -> None:
    for args, says in ((("show", "no-such-job"), "no job 'no-such-job'"),
                       (("show", "Not_A_Job"), "not valid"),
                       (("status", "--state", "sleeping"), "--state: 'sleeping' is not a state"),
                       (("status", "--since", "soon"), "--since"),
                       (("cancel", "no-such-job"), "no job")):
        result = avmonitor(cloud, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


def test_an_unreachable_cloud_is_one_line_in_seconds(cloud) -> None:
    env = {**os.environ, **cloud.env, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}  # nothing listens there
    began = time.monotonic()
    result = subprocess.run([str(REPO / "avmonitor"), "status"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot reach Firestore at 127.0.0.1:9" in result.stderr
    assert time.monotonic() - began < 30


def test_cancel_of_a_running_job_deletes_its_vm_and_tells_the_main_app(cloud, outcomes, vertex, compute, job_dir) -> None:
    vertex(mode="quota")
    compute(hang_after_s=0.5)  # the VM stops making progress: it stays "running" long enough to cancel
    job_id = _submit(cloud, job_dir)
    wait_until(lambda: _status_of(job_id) == "vm_running", timeout_s=60)
    result = avmonitor(cloud, "cancel", job_id)
    assert result.returncode == 0, result.stderr
    outcome = outcomes.wait(job_id, timeout_s=30)
    assert outcome == {"job_id": job_id, "status": "cancelled", "reason": "cancelled by ops@example.com"}
    vms = [i for i in admin(cloud.env["COMPUTE_API_ENDPOINT"], "instances")["instances"]
           if i.get("labels", {}).get("fast-render-job") == job_id]
    wait_until(lambda: all(i["deleted"] for i in admin(cloud.env["COMPUTE_API_ENDPOINT"], "instances")["instances"]
                           if i.get("labels", {}).get("fast-render-job") == job_id), timeout_s=20)
    assert vms
    again = avmonitor(cloud, "cancel", job_id)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_launch_renders_on_the_named_option_a_cpu_only_machine_too_and_an_unknown_name_is_one_line(
        cloud, outcomes, vertex, job_dir) -> None:
    from catalog.model import load_catalog
    from functions.jobs import store

    catalog = load_catalog()
    unknown = avmonitor(cloud, "launch", "no-such-job", "--gpu", "a10")
    [line] = unknown.stderr.strip().splitlines()
    assert unknown.returncode == 1 and "--gpu: 'a10' is not in the catalog" in line, unknown.stderr
    assert all(name in line for name in catalog.options), line  # the choices: the GPUs and the CPU-only machines
    cpu_only = next(iter(catalog.cpus))  # c3-highcpu-8
    # The primary runs and never finishes (it times out after 120 s): no hedge of the system's own comes first.
    vertex(mode="timeout", timeout_after_s=120)
    job_id = _submit(cloud, job_dir)
    wait_until(lambda: _status_of(job_id) == "primary_running", timeout_s=60)
    launched = avmonitor(cloud, "launch", job_id, "--gpu", cpu_only, "--on-demand")
    assert launched.returncode == 0, launched.stderr
    outcome = outcomes.wait(job_id, timeout_s=120)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    fb = store().get(job_id).fallback
    assert (fb.gpu, fb.provisioning, fb.pinned_gpu) == (cpu_only, "on-demand", cpu_only)
    assert fb.price_per_hour == catalog.cpus[cpu_only].cost_per_hour


def test_retry_of_a_failed_job_ends_with_its_video(cloud, outcomes, vertex, job_dir) -> None:
    from catalog.model import load_catalog
    from functions import budget

    vertex(mode="quota")
    budget.record_spend("earlier-jobs", load_catalog().budget.daily_usd)  # today's budget is spent: the VM is refused
    try:
        job_id = _submit(cloud, job_dir)
        failed = outcomes.wait(job_id)
        assert failed["status"] == "failed" and failed["reason"].startswith("daily budget"), failed
    finally:
        budget.release_spend("earlier-jobs")
    vertex(mode="ok")
    running = avmonitor(cloud, "retry", "--json", job_id)
    assert running.returncode == 0, running.stderr
    wait_until(lambda: _status_of(job_id) == "succeeded", timeout_s=90)
    detail = as_json(cloud, "show", job_id)
    assert detail["video"] and any("ops@example.com retried" in e["note"] for e in detail["timeline"])
    refused = avmonitor(cloud, "retry", job_id)
    assert refused.returncode == 1 and "only a failed or cancelled job can be retried" in refused.stderr


def test_watch_shows_a_bar_advancing_and_ends_when_the_job_does(cloud, outcomes, vertex, long_job_dir) -> None:
    vertex(mode="quota")
    job_id = _submit(cloud, long_job_dir)
    wait_until(lambda: _status_of(job_id) in ("vm_running", "succeeded"), timeout_s=60)
    screen, code = _run_in_terminal(cloud, ["watch", job_id], timeout_s=120)
    assert code == 0, screen[-2000:]
    percents = [float(p) for p in __import__("re").findall(r"(\d+\.\d)%", screen)]
    assert percents and percents[-1] == 100.0 and len(set(percents)) >= 2, screen[-2000:]
    assert f"{job_id}: succeeded" in screen


def test_logs_gather_the_jobs_lines_from_every_function(cloud, outcomes, vertex, job_dir) -> None:
    vertex(mode="quota")
    job_id = _submit(cloud, job_dir)
    assert outcomes.wait(job_id)["status"] == "succeeded"
    lines = as_json(cloud, "logs", job_id)["lines"]  # the local cloud's env names its log folder
    sources = {line["source"] for line in lines}
    assert {"fn-intake-message", "fn-primary", "fn-fallback-launcher", "fn-output-finalize"} <= sources, sources
    vm = instance_name(job_id, 1).removesuffix("1")  # any attempt of this job's VM
    assert any(source.startswith(vm) for source in sources), sources  # the VM's own lines (its worker's)
    assert all(line["entry"].get("job_id") == job_id or line["entry"].get("logging.googleapis.com/labels", {}).get("job_id")
               == job_id for line in lines if line["entry"])


def _run_in_terminal(cloud, args: list[str], timeout_s: float) -> tuple[str, int]:
    """Run avmonitor in a pseudo-terminal (so it draws its live bars) and collect what it drew."""
    env = {**os.environ, **cloud.env, "COLUMNS": "160", "LINES": "40", "TERM": "xterm-256color"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen([str(REPO / "avmonitor"), *args], cwd=REPO, env=env, stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -9
    os.close(controller)
    return b"".join(chunks).decode(errors="replace"), code


@pytest.fixture
def job_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return _job_dir(tmp_path / "a", request.node.name)


@pytest.fixture
def another_job_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return _job_dir(tmp_path / "b", "b-" + request.node.name, scenes=2)


@pytest.fixture
def long_job_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A job that takes the renderer several seconds, so its progress can be seen moving."""
    return _job_dir(tmp_path, "long-" + request.node.name, scenes=6, seconds_per_scene=3.0, width=640, height=360)


def _job_dir(parent: Path, name: str, scenes: int = 3, seconds_per_scene: float = 1.0, width: int = 320,
             height: int = 180) -> Path:
    from render_vm.sample_job import make_sample_job

    job_id = name.replace("_", "-").lower()[:30].strip("-") + "-" + format(time.time_ns() % 10**6, "06d")
    folder = parent / job_id
    make_sample_job(folder, scenes=scenes, width=width, height=height, seconds_per_scene=seconds_per_scene, job_id=job_id)
    return folder


if sys.platform != "linux":  # pragma: no cover
    pytest.skip("the local cloud runs on Linux", allow_module_level=True)
