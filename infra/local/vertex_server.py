"""A local stand-in for Vertex AI custom jobs: the worker pool's command really runs.

    python -m infra.local.vertex_server --port 8792 --project fast-render-local \\
        --events-topic vertex-events

Each behaviour below models what Vertex AI is documented or publicly seen to
do, never what our product expects; ``docs/standins.md`` lists every behaviour
with its source, and ``vertex_errors`` carries the sources of the error shapes.

It serves the custom-job subset of the aiplatform v1 REST API, so
``aiplatform_v1.JobServiceClient(transport="rest", client_options={"api_endpoint":
"http://127.0.0.1:8792"}, credentials=AnonymousCredentials())`` works against it:

* ``POST   /v1/projects/P/locations/L/customJobs``            create
* ``GET    /v1/projects/P/locations/L/customJobs[?filter=]``  list (newest first)
* ``GET    /v1/projects/P/locations/L/customJobs/ID``         get
* ``POST   /v1/projects/P/locations/L/customJobs/ID:cancel``  cancel
* ``DELETE /v1/projects/P/locations/L/customJobs/ID``         delete (terminal jobs only)

Job names carry the project *number*, as Vertex AI's do
(``projects/123456789012/locations/us-central1/customJobs/4567...``); paths
accept the number or the id.

Lifecycle: JOB_STATE_QUEUED -> JOB_STATE_PENDING -> JOB_STATE_RUNNING ->
JOB_STATE_SUCCEEDED / JOB_STATE_FAILED, or JOB_STATE_CANCELLING ->
JOB_STATE_CANCELLED, with createTime, startTime, endTime, updateTime. When
RUNNING, the first worker pool's ``containerSpec.command`` + ``args`` run as a
local process group (``imageUri`` is required, as by Vertex AI, but not used),
in a fresh directory, with this server's environment plus ``containerSpec.env``
plus ``CLOUD_ML_PROJECT_ID`` and ``CLOUD_ML_JOB_ID`` (which Vertex AI sets too).
How it ends (``error`` is a google.rpc.Status; shapes in ``vertex_errors``):

* exit 0 -> SUCCEEDED.
* any non-zero exit -> FAILED with code 3 (INVALID_ARGUMENT), whatever the
  status: "The replica workerpool0-0 exited with a non-zero status of N.
  Termination reason: Error. To find out more about why your job exited please
  check the logs: https://console.cloud.google.com/logs/viewer?project=NUMBER&..."
  Code 3 therefore does not mean "bad input". The container's stderr is not in
  the message, except a Python traceback found in it (Vertex quotes those).
  A process killed by signal N reports status 128+N (137 for SIGKILL), as a
  container runtime does. Statuses Vertex calls transient (6, 11, 134, 139)
  make it run the command again, up to three more times, before failing.
* a command that cannot start (missing or non-executable) -> FAILED, code 3,
  "... non-zero status of 128. Termination reason: StartError. \\n Termination
  log message: failed to create containerd task: ...".
* ``jobSpec.scheduling.timeout`` passed -> the process group is killed and the
  job FAILED with code 4 DEADLINE_EXCEEDED (unknown: Vertex's real text and
  code for a timeout are not in public sources).
* cancel -> CANCELLING, the process group is killed, CANCELLED with error code 1.

Fault injection and inspection, for tests (``/_admin/``; modes in ``vertex_faults``):

* ``POST /_admin/faults`` replaces the faults, e.g. ``{"mode": "crash",
  "exit_code": 137, "crash_after_s": 2}``; modes ``ok``, ``quota``,
  ``quota_on_create``, ``timeout``, ``queued``, ``crash``, ``start_error``,
  ``internal``. Faults apply to jobs created after they are set.
* ``GET /_admin/faults``; ``POST /_admin/reset`` kills every job's process and
  clears faults and history; ``GET /_admin/custom_jobs`` lists every job ever
  created (deleted ones too) with its state history, command, pid, exit code,
  attempts and log paths.

Events: a convenience with no verified real counterpart. Vertex AI publishes
no documented job-state-change log entry for custom jobs (one exists for
pipeline jobs only; container logs carry ``resource.type="ml_job"``), so what
this server publishes has no known real shape, and a consumer in the cloud
must poll the job's state. Each state change is published to
``--events-topic`` in ``--project`` through the Pub/Sub emulator
(``PUBSUB_EMULATOR_HOST``; nothing is published without it, and the topic is
not created here), as a Cloud Logging LogEntry a log sink might route, with the
attribute ``logging.googleapis.com/timestamp``::

    {"logName": "projects/P/logs/ml.googleapis.com%2FJOB_ID",
     "resource": {"type": "aiplatform.googleapis.com/CustomJob",
                  "labels": {"job_id": "JOB_ID", "location": "us-central1",
                             "resource_container": "projects/NUMBER"}},
     "jsonPayload": {"message": "Job completed successfully.",
                     "customJob": "projects/NUMBER/locations/L/customJobs/JOB_ID",
                     "state": "JOB_STATE_SUCCEEDED", "previousState": "JOB_STATE_RUNNING",
                     "displayName": "...", "error": {"code": 3, "message": "..."}},
     "labels": {"ml.googleapis.com/job_state": "SUCCEEDED", "ml.googleapis.com/endpoint": "",
                ...the job's own labels...},
     "severity": "INFO" | "WARNING" | "ERROR", "timestamp": "...", "receiveTimestamp": "...",
     "insertId": "..."}

Treat an event as a hint: take ``jsonPayload.customJob`` and GET the job.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from common.logs import get_logger
from infra.local import vertex_errors as errors
from infra.local._http import (
    ApiError,
    ApiServer,
    JsonDict,
    Request,
    Route,
    exit_status,
    kill_groups,
    matches_filter,
    parse_duration_s,
    parse_filter,
    project_number,
    rfc3339,
    route,
    serve,
    server_args,
    spawn,
)
from infra.local.vertex_faults import Faults

log = get_logger("local-vertex")

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}
STEP_S = 0.1  # how long each of QUEUED and PENDING lasts when nothing holds the job
KILL_GRACE_S = 2.0
STATE_MESSAGES = {
    "JOB_STATE_QUEUED": "Job is queued.",
    "JOB_STATE_PENDING": "Waiting for job to be provisioned.",
    "JOB_STATE_RUNNING": "Job is running.",
    "JOB_STATE_SUCCEEDED": "Job completed successfully.",
    "JOB_STATE_FAILED": "Job failed.",
    "JOB_STATE_CANCELLING": "Job is being cancelled.",
    "JOB_STATE_CANCELLED": "Job was cancelled.",
}
# The REST client sends enums as numbers ("$alt=json;enum-encoding=int"); these
# are the ones read here, by number (google.cloud.aiplatform.v1 AcceleratorType
# and Scheduling.Strategy).
ACCELERATOR_TYPES = {
    0: "ACCELERATOR_TYPE_UNSPECIFIED",
    1: "NVIDIA_TESLA_K80",
    2: "NVIDIA_TESLA_P100",
    3: "NVIDIA_TESLA_V100",
    4: "NVIDIA_TESLA_P4",
    5: "NVIDIA_TESLA_T4",
    8: "NVIDIA_TESLA_A100",
    9: "NVIDIA_A100_80GB",
    11: "NVIDIA_L4",
    13: "NVIDIA_H100_80GB",
    14: "NVIDIA_H100_MEGA_80GB",
    15: "NVIDIA_H200_141GB",
    16: "NVIDIA_B200",
    17: "NVIDIA_GB200",
    18: "NVIDIA_RTX_PRO_6000",
}
STRATEGIES = {0: "STRATEGY_UNSPECIFIED", 1: "ON_DEMAND", 2: "LOW_COST", 3: "STANDARD", 4: "SPOT", 6: "FLEX_START"}


# --------------------------------------------------------------------------- requests


def with_enum_names(spec: JsonDict) -> JsonDict:
    """The job spec with the enums read here as names, however the client sent them."""
    spec = copy.deepcopy(spec)
    job_spec = spec.get("jobSpec") or {}
    for pool in job_spec.get("workerPoolSpecs") or []:
        machine = pool.get("machineSpec") or {}
        if isinstance(machine.get("acceleratorType"), int):
            machine["acceleratorType"] = ACCELERATOR_TYPES.get(
                machine["acceleratorType"], str(machine["acceleratorType"])
            )
    scheduling = job_spec.get("scheduling") or {}
    if isinstance(scheduling.get("strategy"), int):
        scheduling["strategy"] = STRATEGIES.get(scheduling["strategy"], str(scheduling["strategy"]))
    return spec


def _required(spec: JsonDict) -> list[str]:
    """Fields Vertex AI requires (plus ``command``: the image's entrypoint is unknown locally)."""
    pool = (spec.get("jobSpec", {}).get("workerPoolSpecs") or [None])[0]
    if pool is None:
        return ["custom_job.job_spec.worker_pool_specs"]
    checks = {
        "custom_job.display_name": spec.get("displayName"),
        "custom_job.job_spec.worker_pool_specs[0].machine_spec.machine_type": (pool.get("machineSpec") or {}).get(
            "machineType"
        ),
        "custom_job.job_spec.worker_pool_specs[0].container_spec.image_uri": (pool.get("containerSpec") or {}).get(
            "imageUri"
        ),
        "custom_job.job_spec.worker_pool_specs[0].container_spec.command": (pool.get("containerSpec") or {}).get(
            "command"
        ),
    }
    return [name for name, value in checks.items() if not value]


# --------------------------------------------------------------------------- jobs


@dataclass
class CustomJob:
    """One custom job and the process that runs it."""

    job_id: str
    project: str
    location: str
    spec: JsonDict
    faults: Faults
    work_dir: str
    state: str = "JOB_STATE_QUEUED"
    history: list[JsonDict] = field(default_factory=list)
    times: dict[str, str] = field(default_factory=dict)
    error: JsonDict | None = None
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    attempts: int = 0  # how many times the command ran (Vertex reruns transient exits)
    deleted: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return f"projects/{project_number(self.project)}/locations/{self.location}/customJobs/{self.job_id}"

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec.get("labels") or {})

    @property
    def container(self) -> JsonDict:
        return self.spec["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]

    @property
    def stdout_path(self) -> str:
        return os.path.join(os.path.dirname(self.work_dir), "stdout.log")

    @property
    def stderr_path(self) -> str:
        return os.path.join(os.path.dirname(self.work_dir), "stderr.log")

    def to_api(self) -> JsonDict:
        body = copy.deepcopy(self.spec)
        body.update(name=self.name, state=self.state, **self.times)
        if self.error:
            body["error"] = dict(self.error)
        return body

    def to_admin(self) -> JsonDict:
        return {
            "name": self.name,
            "job_id": self.job_id,
            "displayName": self.spec.get("displayName"),
            "labels": self.labels,
            "state": self.state,
            "state_history": list(self.history),
            "error": self.error,
            "command": [*self.container.get("command", []), *self.container.get("args", [])],
            "pid": self.proc.pid if self.proc else None,
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "deleted": self.deleted,
            "fault_mode": self.faults.mode,
            "work_dir": self.work_dir,
            "stdout_log": self.stdout_path,
            "stderr_log": self.stderr_path,
        }


def state_log_entry(job: CustomJob, previous: str | None) -> JsonDict:
    """The LogEntry a log sink would route for this state change (see the module docstring)."""
    now = rfc3339()
    payload: JsonDict = {
        "message": STATE_MESSAGES.get(job.state, job.state),
        "customJob": job.name,
        "state": job.state,
        "previousState": previous,
        "displayName": job.spec.get("displayName"),
    }
    if job.error:
        payload["error"] = dict(job.error)
    severity = {"JOB_STATE_FAILED": "ERROR", "JOB_STATE_CANCELLED": "WARNING"}.get(job.state, "INFO")
    return {
        "insertId": uuid.uuid4().hex[:16],
        "logName": f"projects/{job.project}/logs/ml.googleapis.com%2F{job.job_id}",
        "resource": {
            "type": "aiplatform.googleapis.com/CustomJob",
            "labels": {
                "job_id": job.job_id,
                "location": job.location,
                "resource_container": f"projects/{project_number(job.project)}",
            },
        },
        "jsonPayload": payload,
        "labels": {
            **job.labels,
            "ml.googleapis.com/job_state": job.state.removeprefix("JOB_STATE_"),
            "ml.googleapis.com/endpoint": "",
        },
        "severity": severity,
        "timestamp": now,
        "receiveTimestamp": now,
    }


class EventPublisher:
    """Publishes LogEntries to the events topic, in order, from one background thread.

    The Pub/Sub client is imported in that thread, so the server is listening
    before the (slow) import finishes.
    """

    def __init__(self, project: str, topic: str) -> None:
        self.topic_path = f"projects/{project}/topics/{topic}"
        self.enabled = bool(os.environ.get("PUBSUB_EMULATOR_HOST"))
        self._queue: queue.Queue[JsonDict | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        if self.enabled:
            self._thread.start()
        else:
            log.warning("PUBSUB_EMULATOR_HOST is not set: job-state events are not published")

    def publish(self, entry: JsonDict) -> None:
        if self.enabled:
            self._queue.put(entry)

    def _loop(self) -> None:
        from google.cloud import pubsub_v1

        client = pubsub_v1.PublisherClient()
        while (entry := self._queue.get()) is not None:
            try:
                data = json.dumps(entry).encode()
                client.publish(
                    self.topic_path, data, **{"logging.googleapis.com/timestamp": entry["timestamp"]}
                ).result(timeout=30)
            except Exception as err:  # noqa: BLE001 (a lost event must not stop the server)
                log.error(
                    "event not published", topic=self.topic_path, error=repr(err), job=entry["jsonPayload"]["customJob"]
                )

    def close(self, timeout_s: float) -> None:
        """Send what is queued (for at most ``timeout_s``), then stop."""
        if self.enabled:
            self._queue.put(None)
            self._thread.join(timeout_s)


# --------------------------------------------------------------------------- the service


class VertexService:
    """The state of the local Vertex AI and the logic behind each route."""

    def __init__(self, project: str, events: EventPublisher) -> None:
        self.project = project
        self.events = events
        self.root = tempfile.mkdtemp(prefix="local-vertex-")
        self.faults = Faults()
        self.jobs: dict[str, CustomJob] = {}
        self.lock = threading.RLock()

    # ----------------------------------------------------------------- state changes

    def _set_state(self, job: CustomJob, state: str, error: JsonDict | None = None) -> None:
        with self.lock:
            previous = job.state
            if previous in TERMINAL:
                return
            now = rfc3339()
            job.state, job.times["updateTime"] = state, now
            job.history.append({"state": state, "time": now})
            if state == "JOB_STATE_RUNNING":
                job.times["startTime"] = now
            delay_s = job.faults.error_delay_s if state == "JOB_STATE_FAILED" else 0
            if state in TERMINAL:
                job.times["endTime"] = now
                job.error = None if delay_s > 0 else error
            entry = state_log_entry(job, previous)
        log.info("custom job state", job=job.name, state=state, error=error)
        if delay_s > 0 and error is not None:
            # "About one minute after a job ends, [Vertex] sets the error code on the training job
            # object" (understanding-training-service): FAILED first, the error later.
            timer = threading.Timer(delay_s, self._set_error, (job, error))
            timer.daemon = True
            timer.start()
        if not job.faults.drop_events:
            self.events.publish(entry)

    def _set_error(self, job: CustomJob, error: JsonDict) -> None:
        with self.lock:
            job.error, job.times["updateTime"] = error, rfc3339()

    def _cancelled_while(self, job: CustomJob, wait_s: float | None) -> bool:
        """Wait ``wait_s`` (None: forever); if a cancel comes meanwhile, end the job CANCELLED."""
        if job.cancel.wait(wait_s):
            self._set_state(job, "JOB_STATE_CANCELLED", errors.cancelled_error())
            return True
        return False

    def _fail(self, job: CustomJob, error: JsonDict) -> None:
        self._set_state(job, "JOB_STATE_FAILED", error)

    def _run(self, job: CustomJob) -> None:
        """The job's life, in its own thread: queue, provision, run, end."""
        faults = job.faults
        queued = faults.mode == "queued"
        if self._cancelled_while(job, faults.queue_s if queued and faults.queue_state == "QUEUED" else STEP_S):
            return
        if faults.mode == "quota":
            self._fail(job, errors.quota_error(job.spec))
            return
        self._set_state(job, "JOB_STATE_PENDING")
        if self._cancelled_while(job, faults.queue_s if queued and faults.queue_state == "PENDING" else STEP_S):
            return
        if faults.mode == "internal":
            self._fail(job, errors.internal_error())
            return
        self._set_state(job, "JOB_STATE_RUNNING")
        if faults.mode == "timeout":
            if not self._cancelled_while(job, faults.timeout_after_s):
                self._fail(job, errors.timeout_error(faults.timeout_after_s))
            return
        if faults.mode == "start_error":
            executable = job.container["command"][0]
            self._end_attempt(job, 128)
            self._fail(job, errors.start_error(executable, **self._ids(job)))
            return
        self._run_replica(job)

    def _ids(self, job: CustomJob) -> dict[str, str]:
        return {"project_number": project_number(job.project), "job_id": job.job_id}

    def _run_replica(self, job: CustomJob) -> None:
        """Run the command; a transient exit status runs it again, up to three more times, as Vertex does."""
        timeout_s = parse_duration_s((job.spec["jobSpec"].get("scheduling") or {}).get("timeout"))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for attempt in range(1 + errors.TRANSIENT_RESTARTS):
            outcome = self._attempt(job, deadline, timeout_s)
            if outcome is None:  # the job already ended (cancelled, timed out, could not start)
                return
            status, crashed = outcome
            if status == 0:
                self._set_state(job, "JOB_STATE_SUCCEEDED")
                return
            if status not in errors.TRANSIENT_EXIT_CODES or attempt == errors.TRANSIENT_RESTARTS:
                break
            log.info("replica exited with a transient status: running it again", job=job.name, status=status)
        oom = crashed and job.faults.crash_oom
        self._fail(job, errors.replica_exit_error(status, stderr_path=job.stderr_path, oom=oom, **self._ids(job)))

    def _attempt(self, job: CustomJob, deadline: float | None, timeout_s: float | None) -> tuple[int, bool] | None:
        """One run of the command: its exit status and whether the ``crash`` fault ended it."""
        container = job.container
        argv = [*container["command"], *container.get("args", [])]
        env = {**os.environ, "CLOUD_ML_PROJECT_ID": job.project, "CLOUD_ML_JOB_ID": job.job_id}
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        try:
            proc = spawn(argv, cwd=job.work_dir, env=env, log_path=job.stdout_path, stderr_path=job.stderr_path)
        except OSError as err:  # the runtime cannot exec the command: StartError, status 128
            self._end_attempt(job, 128)
            self._fail(job, errors.start_error(argv[0], permission=isinstance(err, PermissionError), **self._ids(job)))
            return None
        with self.lock:
            job.proc = proc
            job.attempts += 1
        crash_at = time.monotonic() + job.faults.crash_after_s if job.faults.mode == "crash" else None
        while proc.poll() is None:
            if job.cancel.wait(0.05):
                kill_groups([proc], KILL_GRACE_S)
                self._set_state(job, "JOB_STATE_CANCELLED", errors.cancelled_error())
                return None
            if deadline is not None and time.monotonic() >= deadline:
                kill_groups([proc], KILL_GRACE_S)
                self._fail(job, errors.timeout_error(timeout_s or 0))
                return None
            if crash_at is not None and time.monotonic() >= crash_at:
                kill_groups([proc], 0)  # the whole group dies at once, as an OOM kill or a crashed driver would
                self._end_attempt(job, job.faults.exit_code)
                return job.faults.exit_code, True
        status = exit_status(proc.returncode)
        kill_groups([proc], 0)  # anything the command left running in its group
        self._end_attempt(job, status)
        return status, False

    def _end_attempt(self, job: CustomJob, status: int) -> None:
        with self.lock:
            job.exit_code = status

    # ----------------------------------------------------------------- routes

    def _check_parent(self, project: str) -> None:
        if project not in (self.project, project_number(self.project)):
            raise ApiError(403, f"Permission denied on resource project {project}.", status="PERMISSION_DENIED")

    def _job(self, req: Request) -> CustomJob:
        self._check_parent(req.params["project"])
        job = self.jobs.get(req.params["job"])
        if job is None or job.deleted or job.location != req.params["location"]:
            path = "projects/{project}/locations/{location}/customJobs/{job}".format(**req.params)
            message = f"The CustomJob does not exist: {path}"
            raise ApiError(404, message, status="NOT_FOUND")
        return job

    def create(self, req: Request) -> JsonDict:
        project, location = req.params["project"], req.params["location"]
        self._check_parent(project)
        spec = with_enum_names(req.body)
        missing = _required(spec)
        if missing:
            found = "".join(
                f"\n{n}.Field: {name}; Message: Required field is not set." for n, name in enumerate(missing, 1)
            )
            raise ApiError(400, f"List of found errors:{found}", status="INVALID_ARGUMENT")
        with self.lock:
            faults = self.faults
            if faults.mode == "quota_on_create" and faults.applies_to(spec):
                raise ApiError(429, errors.quota_message(spec), status="RESOURCE_EXHAUSTED")
            job_id = str(random.randrange(10**18, 10**19))
            work_dir = os.path.join(self.root, job_id, "work")
            os.makedirs(work_dir)
            job = CustomJob(job_id, self.project, location, spec, faults.for_job(spec), work_dir)
            now = rfc3339()
            job.times.update(createTime=now, updateTime=now)
            job.history.append({"state": job.state, "time": now})
            self.jobs[job_id] = job
            entry = state_log_entry(job, None)
            created = job.to_api()
        log.info("custom job created", job=job.name, display_name=spec.get("displayName"))
        self.events.publish(entry)
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return created

    def get(self, req: Request) -> JsonDict:
        with self.lock:
            return self._job(req).to_api()

    def list_jobs(self, req: Request) -> JsonDict:
        self._check_parent(req.params["project"])
        clauses = parse_filter(req.query.get("filter", ""))

        def fields(job: CustomJob) -> Callable[[str], str | None]:
            def read(name: str) -> str | None:
                if name.startswith("labels."):
                    return job.labels.get(name[len("labels.") :])
                value = {
                    "state": job.state,
                    "display_name": job.spec.get("displayName"),
                    "displayName": job.spec.get("displayName"),
                }.get(name)
                return None if value is None else str(value)

            return read

        with self.lock:
            jobs = [job for job in self.jobs.values() if not job.deleted and job.location == req.params["location"]]
            items = [job.to_api() for job in jobs if matches_filter(clauses, fields(job))]
        items.sort(key=lambda item: item["createTime"], reverse=True)
        return {"customJobs": items} if items else {}

    def cancel(self, req: Request) -> JsonDict:
        with self.lock:
            job = self._job(req)
            if job.state in TERMINAL:
                raise ApiError(
                    400, f"Cannot cancel {job.name}: it is in state {job.state}.", status="FAILED_PRECONDITION"
                )
            cancelling = job.state != "JOB_STATE_CANCELLING"
        if cancelling:
            self._set_state(job, "JOB_STATE_CANCELLING")
            job.cancel.set()
        return {}

    def delete(self, req: Request) -> JsonDict:
        with self.lock:
            job = self._job(req)
            if job.state not in TERMINAL:
                raise ApiError(
                    400, f"{job.name} is not in a terminal state; cancel it first.", status="FAILED_PRECONDITION"
                )
            job.deleted = True
        return {
            "name": f"{job.name}/operations/{random.randrange(10**18, 10**19)}",
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }

    # ----------------------------------------------------------------- admin

    def set_faults(self, req: Request) -> JsonDict:
        faults = Faults.from_json(req.body)
        with self.lock:
            self.faults = faults
        log.info("faults set", faults=faults.to_json())
        return faults.to_json()

    def get_faults(self, req: Request) -> JsonDict:
        with self.lock:
            return self.faults.to_json()

    def admin_jobs(self, req: Request) -> JsonDict:
        with self.lock:
            return {"custom_jobs": [job.to_admin() for job in self.jobs.values()]}

    def reset(self, req: Request | None = None) -> JsonDict:
        """Kill every job's process; forget faults and jobs."""
        with self.lock:
            jobs = list(self.jobs.values())
            self.jobs.clear()
            self.faults = Faults()
        for job in jobs:
            job.cancel.set()
        kill_groups([job.proc for job in jobs if job.proc is not None], KILL_GRACE_S)
        return {}

    def shutdown(self) -> None:
        self.reset()
        self.events.close(timeout_s=3.0)
        shutil.rmtree(self.root, ignore_errors=True)

    def routes(self) -> list[Route]:
        jobs = "/v1/projects/{project}/locations/{location}/customJobs"
        return [
            route("POST", jobs, self.create),
            route("GET", jobs, self.list_jobs),
            route("GET", f"{jobs}/{{job}}", self.get),
            route("DELETE", f"{jobs}/{{job}}", self.delete),
            route("POST", f"{jobs}/{{job}}:cancel", self.cancel),
            route("GET", "/_admin/faults", self.get_faults),
            route("POST", "/_admin/faults", self.set_faults),
            route("POST", "/_admin/reset", self.reset),
            route("GET", "/_admin/custom_jobs", self.admin_jobs),
        ]


def main() -> None:
    args = server_args(
        "A local stand-in for Vertex AI custom jobs.",
        lambda parser: parser.add_argument("--events-topic", default="vertex-events"),
    )
    service = VertexService(args.project, EventPublisher(args.project, args.events_topic))
    server = ApiServer((args.host, args.port), service.routes())
    log.info("local vertex ai starting", port=args.port, project=args.project, topic=args.events_topic)
    serve(server, service.shutdown)


if __name__ == "__main__":
    main()
