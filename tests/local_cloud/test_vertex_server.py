"""The local Vertex AI, driven only through ``aiplatform_v1.JobServiceClient`` (REST).

One server and one Pub/Sub emulator for the module; each test starts from
``/_admin/reset`` and reads the job-state events from a subscription of its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, pubsub_v1

from infra.local._http import project_number

PROJECT = "vertex-tests"
TOPIC = "vertex-events"
PARENT = f"projects/{PROJECT}/locations/us-central1"
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


@pytest.fixture(scope="module")
def vertex(start_server: Callable[..., Any], pubsub_emulator: str) -> Any:
    pubsub_v1.PublisherClient().create_topic(name=f"projects/{PROJECT}/topics/{TOPIC}")
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_emulator}
    return start_server("infra.local.vertex_server", PROJECT, "--events-topic", TOPIC, env=env)


@pytest.fixture(autouse=True)
def clean(vertex: Any) -> Iterator[None]:
    vertex.admin("reset", {})
    yield
    vertex.admin("reset", {})


@pytest.fixture(scope="module")
def jobs(vertex: Any) -> aiplatform_v1.JobServiceClient:
    options = {"api_endpoint": vertex.endpoint}
    return aiplatform_v1.JobServiceClient(transport="rest", credentials=AnonymousCredentials(), client_options=options)


@pytest.fixture
def events(vertex: Any) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """``events(job_name)``: the LogEntries published for that job, until its terminal state."""
    subscriber = pubsub_v1.SubscriberClient()
    subscription = f"projects/{PROJECT}/subscriptions/events-{uuid.uuid4().hex[:8]}"
    subscriber.create_subscription(name=subscription, topic=f"projects/{PROJECT}/topics/{TOPIC}")
    seen: list[dict[str, Any]] = []

    def for_job(name: str, timeout_s: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            mine = [e for e in seen if e["jsonPayload"]["customJob"] == name]
            if any(e["jsonPayload"]["state"] in TERMINAL for e in mine):
                return sorted(mine, key=lambda e: e["timestamp"])
            response = subscriber.pull(subscription=subscription, max_messages=50, timeout=2)
            if response.received_messages:
                seen.extend(json.loads(m.message.data) for m in response.received_messages)
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
        raise AssertionError(f"no terminal event for {name}: {seen}")

    yield for_job
    subscriber.delete_subscription(subscription=subscription)


def custom_job(
    command: list[str], *, label: str = "lighthouse-0042", timeout: str | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "worker_pool_specs": [
            {
                "machine_spec": {
                    "machine_type": "n1-standard-8",
                    "accelerator_type": "NVIDIA_TESLA_T4",
                    "accelerator_count": 1,
                },
                "replica_count": 1,
                "container_spec": {
                    "image_uri": "us-docker.pkg.dev/fast-render/render/worker:latest",
                    "command": command,
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                },
            }
        ]
    }
    if timeout:
        spec["scheduling"] = {"timeout": timeout}
    return {"display_name": f"render-{label}", "labels": {"fast-render-job": label}, "job_spec": spec}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_terminal(
    jobs: aiplatform_v1.JobServiceClient, name: str, wait_for: Callable[..., Any], timeout_s: float = 10
) -> aiplatform_v1.CustomJob:
    return wait_for(lambda: (job := jobs.get_custom_job(name=name)).state.name in TERMINAL and job, timeout_s=timeout_s)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (a zombie counts until its parent, or init, reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_job_runs_its_command_and_succeeds(
    jobs: aiplatform_v1.JobServiceClient, events: Callable[..., Any], wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    seen = "{'foo': os.environ['FOO'], 'job': os.environ['CLOUD_ML_JOB_ID'], 'cwd': os.getcwd()}"
    code = f"import json, os; json.dump({seen}, open({str(out)!r}, 'w'))"

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(python(code), env={"FOO": "bar"}))
    job = wait_terminal(jobs, created.name, wait_for)

    assert created.state.name == "JOB_STATE_QUEUED"
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    written = json.loads(out.read_text())
    assert written["foo"] == "bar" and created.name.endswith(f"/customJobs/{written['job']}")
    assert job.create_time <= job.start_time <= job.end_time
    assert job.labels["fast-render-job"] == "lighthouse-0042"

    entries = events(created.name)
    assert [e["jsonPayload"]["state"] for e in entries] == [
        "JOB_STATE_QUEUED",
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_SUCCEEDED",
    ]
    last = entries[-1]
    assert last["resource"]["type"] == "aiplatform.googleapis.com/CustomJob"
    assert last["resource"]["labels"]["job_id"] == written["job"]
    assert last["resource"]["labels"]["location"] == "us-central1"
    assert last["labels"]["fast-render-job"] == "lighthouse-0042"
    assert last["labels"]["ml.googleapis.com/job_state"] == "SUCCEEDED"
    assert jobs.get_custom_job(name=last["jsonPayload"]["customJob"]).state.name == "JOB_STATE_SUCCEEDED"


def replica_message(status: int, job_name: str, reason: str = "Error") -> str:
    """Vertex's message for a replica that exited, with no traceback in it."""
    job_id = job_name.rsplit("/", 1)[-1]
    logs = (
        f"https://console.cloud.google.com/logs/viewer?project={project_number(PROJECT)}"
        f"&resource=ml_job%2Fjob_id%2F{job_id}"
        f"&advancedFilter=resource.type%3D%22ml_job%22%0Aresource.labels.job_id%3D%22{job_id}%22"
    )
    return (
        f"The replica workerpool0-0 exited with a non-zero status of {status}. Termination reason: {reason}. "
        f"To find out more about why your job exited please check the logs: {logs}"
    )


@pytest.mark.parametrize("exit_code", [1, 2])
def test_any_non_zero_exit_is_code_3_with_the_replica_message_and_no_stderr(
    jobs: aiplatform_v1.JobServiceClient, events: Callable[..., Any], wait_for: Callable[..., Any], exit_code: int
) -> None:
    command = [
        "bash",
        "-c",
        f"echo working; echo 'noise' >&2; echo 'error: scenes[3].image: file not found' >&2; exit {exit_code}",
    ]

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(command))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.code == 3  # INVALID_ARGUMENT, whatever the status: it does not mean "bad input"
    assert job.error.message == replica_message(exit_code, created.name)
    assert "scenes[3]" not in job.error.message and "noise" not in job.error.message
    failed = events(created.name)[-1]
    assert failed["severity"] == "ERROR" and failed["jsonPayload"]["error"]["code"] == 3


def test_a_python_traceback_is_quoted_in_the_message_but_other_stderr_is_not(
    jobs: aiplatform_v1.JobServiceClient, wait_for: Callable[..., Any]
) -> None:
    code = "import sys; print('noise before', file=sys.stderr); raise ValueError('scene 3 has no image')"

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(python(code)))
    job = wait_terminal(jobs, created.name, wait_for)

    head, rest = job.error.message.split(" \n", 1)
    assert head == "The replica workerpool0-0 exited with a non-zero status of 1. Termination reason: Error."
    traceback, link = rest.split("\n\n")
    assert traceback.startswith("Traceback (most recent call last):")
    assert traceback.endswith("ValueError: scene 3 has no image")
    assert "noise before" not in job.error.message
    assert link.startswith("To find out more about why your job exited please check the logs: https://")


def test_a_process_killed_by_sigkill_reports_status_137(
    jobs: aiplatform_v1.JobServiceClient, wait_for: Callable[..., Any]
) -> None:
    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["bash", "-c", "kill -KILL $$"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.error.code == 3
    assert job.error.message == replica_message(137, created.name)


def test_a_missing_command_is_status_128_start_error(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-worker")

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job([missing, "--render"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED" and job.error.code == 3
    expected_start = "The replica workerpool0-0 exited with a non-zero status of 128. Termination reason: StartError. "
    assert job.error.message.startswith(expected_start + "\n Termination log message: failed to create containerd task")
    assert f'exec: "{missing}": executable file not found in $PATH: unknown' in job.error.message
    (record,) = vertex.admin("custom_jobs")["custom_jobs"]
    assert record["exit_code"] == 128 and record["attempts"] == 0


def test_transient_exit_statuses_run_the_command_again_three_times(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    command = ["bash", "-c", f"echo run >> {runs}; exit 139"]  # 139: SIGSEGV in a custom container

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(command))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.error.message == replica_message(139, created.name)
    assert runs.read_text().splitlines() == ["run"] * 4
    assert vertex.admin("custom_jobs")["custom_jobs"][0]["attempts"] == 4


@pytest.mark.parametrize(("exit_code", "oom"), [(137, False), (1, False), (137, True)])
def test_crash_fault_kills_the_running_command_and_fails_as_that_exit(
    jobs: aiplatform_v1.JobServiceClient,
    vertex: Any,
    wait_for: Callable[..., Any],
    tmp_path: Path,
    exit_code: int,
    oom: bool,
) -> None:
    vertex.admin("faults", {"mode": "crash", "exit_code": exit_code, "crash_after_s": 0.5, "crash_oom": oom})
    pid_file = tmp_path / "pid"
    command = ["bash", "-c", f"sleep 600 & echo $! > {pid_file}; wait"]

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(command))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED" and job.error.code == 3
    if oom:
        assert job.error.message.startswith(
            "The replica workerpool0-0 ran out of memory and exited with a non-zero status of 137. To find out more"
        )
    else:
        assert job.error.message == replica_message(exit_code, created.name)
    wait_for(lambda: not alive(pid), timeout_s=5)  # the whole process group, not only its leader
    assert jobs.get_custom_job(name=created.name).start_time


def test_start_error_fault_never_starts_the_command(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    vertex.admin("faults", {"mode": "start_error"})
    marker = tmp_path / "ran"

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["touch", str(marker)]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.error.code == 3
    assert "non-zero status of 128. Termination reason: StartError." in job.error.message
    assert 'exec: "touch": executable file not found in $PATH' in job.error.message
    assert not marker.exists()
    assert vertex.admin("custom_jobs")["custom_jobs"][0]["pid"] is None


def test_internal_fault_fails_with_code_13_before_running(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, events: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    vertex.admin("faults", {"mode": "internal"})

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.error.code == 13
    assert job.error.message == "Internal error occurred for the current attempt."
    assert "JOB_STATE_RUNNING" not in [e["jsonPayload"]["state"] for e in events(created.name)]


def test_error_delay_fault_shows_a_failed_job_without_its_error_at_first(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, wait_for: Callable[..., Any]
) -> None:
    vertex.admin("faults", {"error_delay_s": 1.0})

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["false"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED" and job.error.code == 0 and not job.error.message
    later = wait_for(lambda: (j := jobs.get_custom_job(name=created.name)).error.code and j, timeout_s=5)
    assert later.error.message == replica_message(1, created.name)


def test_scheduling_timeout_kills_the_process(
    jobs: aiplatform_v1.JobServiceClient, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    command = ["bash", "-c", f"echo $$ > {pid_file}; exec sleep 600"]

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(command, timeout="1s"))
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.code == 4  # DEADLINE_EXCEEDED
    wait_for(lambda: not alive(pid), timeout_s=5)  # a zombie lingers until reaped


def test_quota_fault_fails_the_job_with_resource_exhausted(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, events: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    vertex.admin("faults", {"mode": "quota"})

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.code == 8
    metric = "aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus"
    assert job.error.message == f"The following quota metrics exceed quota limits: {metric}"
    assert events(created.name)[-1]["jsonPayload"]["error"]["code"] == 8


def test_quota_on_create_refuses_the_request(jobs: aiplatform_v1.JobServiceClient, vertex: Any) -> None:
    vertex.admin("faults", {"mode": "quota_on_create"})

    with pytest.raises(exceptions.TooManyRequests, match="custom_model_training_nvidia_t4_gpus"):
        jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"]))


def test_timeout_fault_fails_after_running(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, events: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    vertex.admin("faults", {"mode": "timeout", "timeout_after_s": 0.5})

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"]))
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_FAILED" and job.error.code == 4
    assert [e["jsonPayload"]["state"] for e in events(created.name)][-2:] == ["JOB_STATE_RUNNING", "JOB_STATE_FAILED"]


@pytest.mark.parametrize("queue_state", ["QUEUED", "PENDING"])
def test_queued_job_waits_until_cancelled(
    jobs: aiplatform_v1.JobServiceClient,
    vertex: Any,
    events: Callable[..., Any],
    wait_for: Callable[..., Any],
    queue_state: str,
) -> None:
    vertex.admin("faults", {"mode": "queued", "queue_state": queue_state})

    created = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"]))
    time.sleep(1.0)
    assert jobs.get_custom_job(name=created.name).state.name == f"JOB_STATE_{queue_state}"
    jobs.cancel_custom_job(name=created.name)
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_CANCELLED" and job.error.code == 1
    assert [e["jsonPayload"]["state"] for e in events(created.name)][-2:] == [
        "JOB_STATE_CANCELLING",
        "JOB_STATE_CANCELLED",
    ]
    (record,) = vertex.admin("custom_jobs")["custom_jobs"]
    assert record["pid"] is None  # it never ran


def test_cancel_kills_a_running_job(
    jobs: aiplatform_v1.JobServiceClient, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    created = jobs.create_custom_job(
        parent=PARENT, custom_job=custom_job(["bash", "-c", f"echo $$ > {pid_file}; exec sleep 600"])
    )
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))

    jobs.cancel_custom_job(name=created.name)
    job = wait_terminal(jobs, created.name, wait_for)

    assert job.state.name == "JOB_STATE_CANCELLED"
    wait_for(lambda: not alive(pid), timeout_s=5)  # a zombie lingers until reaped
    with pytest.raises(exceptions.BadRequest):  # FAILED_PRECONDITION: already over
        jobs.cancel_custom_job(name=created.name)


def test_faults_limited_by_prefix_and_list_filter(
    jobs: aiplatform_v1.JobServiceClient, vertex: Any, wait_for: Callable[..., Any]
) -> None:
    vertex.admin("faults", {"mode": "quota", "job_id_prefix": "bad-"})

    bad = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"], label="bad-1"))
    good = jobs.create_custom_job(parent=PARENT, custom_job=custom_job(["true"], label="good-1"))

    assert wait_terminal(jobs, bad.name, wait_for).state.name == "JOB_STATE_FAILED"
    assert wait_terminal(jobs, good.name, wait_for).state.name == "JOB_STATE_SUCCEEDED"
    request = aiplatform_v1.ListCustomJobsRequest(parent=PARENT, filter='labels.fast-render-job="good-1"')
    assert [job.name for job in jobs.list_custom_jobs(request=request)] == [good.name]
    assert len(list(jobs.list_custom_jobs(parent=PARENT))) == 2

    jobs.delete_custom_job(name=bad.name).result(timeout=10)
    with pytest.raises(exceptions.NotFound):
        jobs.get_custom_job(name=bad.name)
    assert [job["deleted"] for job in vertex.admin("custom_jobs")["custom_jobs"]] == [True, False]
