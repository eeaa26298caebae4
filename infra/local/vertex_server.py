"""A local stand-in for Vertex AI custom jobs: the worker pool's command really runs.

    python -m infra.local.vertex_server --port 8792 --project fast-render-local \\
        --events-topic vertex-events

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
How it ends (``error`` is a google.rpc.Status):

* exit 0 -> SUCCEEDED.
* exit 2 (the renderer's "invalid job") -> FAILED, code 3 INVALID_ARGUMENT;
  any other exit -> FAILED, code 13 INTERNAL. The message reads like Vertex AI's
  ("The replica workerpool0-0 exited with a non-zero status of N. Termination
  reason: Error.") and its last line is the process's last line on stderr.
* ``jobSpec.scheduling.timeout`` passed -> the process group is killed and the
  job FAILED with code 4 DEADLINE_EXCEEDED. (The exact text Vertex AI uses for
  a timeout was not found in public sources; code 4 is the natural mapping.)
* cancel -> CANCELLING, the process group is killed, CANCELLED with error
  ``{code: 1, message: "CANCELED"}``.

Fault injection and inspection, for tests (``/_admin/``):

* ``POST /_admin/faults`` replaces the faults::

      {"mode": "ok" | "quota" | "quota_on_create" | "timeout" | "queued",
       "queue_s": null, "timeout_after_s": 2, "job_id_prefix": null, "drop_events": false}

  ``quota``: FAILED soon after creation with code 8 RESOURCE_EXHAUSTED and
  Vertex AI's message, "The following quota metrics exceed quota limits:
  aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus" (the metric
  follows the machine spec's accelerator, ``..._preemptible_...`` for Spot,
  ``custom_model_training_cpus`` without one). ``quota_on_create``: the create
  call itself fails with HTTP 429 RESOURCE_EXHAUSTED and the same message
  (Vertex AI refuses some requests that way). ``timeout``: RUNNING without
  starting the command, then FAILED as a timeout after ``timeout_after_s``.
  ``queued``: stays PENDING for ``queue_s`` seconds (null: until cancelled),
  then runs normally. ``job_id_prefix`` limits the faults to jobs whose display
  name or any label value starts with it (the render job id); other jobs run
  normally. Faults apply to jobs created after they are set.
* ``GET /_admin/faults``; ``POST /_admin/reset`` kills every job's process and
  clears faults and history; ``GET /_admin/custom_jobs`` lists every job ever
  created (deleted ones too) with its state history, command, pid, exit code
  and log paths.

Events. Each state change is published to ``--events-topic`` in ``--project``
through the Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``; nothing is published
without it, and the topic is not created here). The message data is a Cloud
Logging LogEntry as a log sink would route it, with the attribute
``logging.googleapis.com/timestamp``::

    {"logName": "projects/P/logs/ml.googleapis.com%2FJOB_ID",
     "resource": {"type": "aiplatform.googleapis.com/CustomJob",
                  "labels": {"job_id": "JOB_ID", "location": "us-central1",
                             "resource_container": "projects/NUMBER"}},
     "jsonPayload": {"message": "Job completed successfully.",
                     "customJob": "projects/NUMBER/locations/L/customJobs/JOB_ID",
                     "state": "JOB_STATE_SUCCEEDED", "previousState": "JOB_STATE_RUNNING",
                     "displayName": "...", "error": {"code": 13, "message": "..."}},
     "labels": {"ml.googleapis.com/job_state": "SUCCEEDED", "ml.googleapis.com/endpoint": "",
                ...the job's own labels...},
     "severity": "INFO" | "WARNING" | "ERROR", "timestamp": "...", "receiveTimestamp": "...",
     "insertId": "..."}

A consumer should take ``jsonPayload.customJob`` and GET the job for the
authoritative state. In the cloud, Vertex AI writes its own job-state lines
("Job completed successfully.", with the label ``ml.googleapis.com/job_state``)
to the job's log (publicly seen under ``resource.type="ml_job"``), so the sink
that feeds ``vertex-events`` would use a filter such as::

    (resource.type="ml_job" OR resource.type="aiplatform.googleapis.com/CustomJob")
    AND labels."ml.googleapis.com/job_state":*

Those real entries carry the job id (``resource.labels.job_id``) rather than
the full name, and not every intermediate state is guaranteed to be logged:
the consumer must treat the event as a hint and GET the job.
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
from infra.local._http import (
    ApiError,
    ApiServer,
    JsonDict,
    Request,
    Route,
    exit_status,
    kill_groups,
    last_line,
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
MODES = ("ok", "quota", "quota_on_create", "timeout", "queued")
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


# --------------------------------------------------------------------------- faults, errors


@dataclass
class Faults:
    """Injected behaviour; see the module docstring."""

    mode: str = "ok"
    queue_s: float | None = None
    timeout_after_s: float = 2.0
    job_id_prefix: str | None = None
    drop_events: bool = False  # state changes happen but no log entry is published (a lost event)

    @classmethod
    def from_json(cls, body: JsonDict) -> Faults:
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApiError(400, f"unknown fault keys: {sorted(unknown)}", status="INVALID_ARGUMENT")
        faults = cls(**body)
        if faults.mode not in MODES:
            raise ApiError(400, f"mode must be one of {MODES}", status="INVALID_ARGUMENT")
        return faults

    def to_json(self) -> JsonDict:
        return dict(self.__dict__)

    def applies_to(self, spec: JsonDict) -> bool:
        if not self.job_id_prefix:
            return True
        names = [str(spec.get("displayName", "")), *map(str, (spec.get("labels") or {}).values())]
        return any(name.startswith(self.job_id_prefix) for name in names)


def quota_message(spec: JsonDict) -> str:
    """Vertex AI's quota refusal, naming the metric for the job's accelerator."""
    pool = (spec.get("jobSpec", {}).get("workerPoolSpecs") or [{}])[0]
    accelerator = str((pool.get("machineSpec") or {}).get("acceleratorType", ""))
    if accelerator in ("", "ACCELERATOR_TYPE_UNSPECIFIED"):
        metric = "custom_model_training_cpus"
    else:
        gpu = accelerator.lower().replace("tesla_", "").replace("h100_80gb", "h100")
        spot = (spec.get("jobSpec", {}).get("scheduling") or {}).get("strategy") == "SPOT"
        metric = f"custom_model_training_{'preemptible_' if spot else ''}{gpu}_gpus"
    return f"The following quota metrics exceed quota limits: aiplatform.googleapis.com/{metric}"


def exit_error(code: int, last_stderr: str) -> JsonDict:
    """The job error for a non-zero exit: 3 for exit 2 (invalid input), else 13."""
    message = f"The replica workerpool0-0 exited with a non-zero status of {code}. Termination reason: Error."
    if last_stderr:
        message += f" \n{last_stderr}"
    return {"code": 3 if code == 2 else 13, "message": message}


def timeout_error(timeout_s: float) -> JsonDict:
    return {
        "code": 4,
        "message": f"The job exceeded its maximum running time (scheduling.timeout: {timeout_s:g}s) and was stopped.",
    }


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
            "deleted": self.deleted,
            "fault_mode": self.faults.mode if self.faults.applies_to(self.spec) else "ok",
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
            if state in TERMINAL:
                job.times["endTime"] = now
                job.error = error
            entry = state_log_entry(job, previous)
        log.info("custom job state", job=job.name, state=state, error=error)
        if not (job.faults.drop_events and job.faults.applies_to(job.spec)):
            self.events.publish(entry)

    def _cancelled_while(self, job: CustomJob, wait_s: float | None) -> bool:
        """Wait ``wait_s`` (None: forever); if a cancel comes meanwhile, end the job CANCELLED."""
        if job.cancel.wait(wait_s):
            self._set_state(job, "JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
            return True
        return False

    def _run(self, job: CustomJob) -> None:
        """The job's life, in its own thread: queue, provision, run, end."""
        faults = job.faults if job.faults.applies_to(job.spec) else Faults()
        if self._cancelled_while(job, STEP_S):
            return
        if faults.mode == "quota":
            self._set_state(job, "JOB_STATE_FAILED", {"code": 8, "message": quota_message(job.spec)})
            return
        self._set_state(job, "JOB_STATE_PENDING")
        if self._cancelled_while(job, faults.queue_s if faults.mode == "queued" else STEP_S):
            return
        self._set_state(job, "JOB_STATE_RUNNING")
        if faults.mode == "timeout":
            if not self._cancelled_while(job, faults.timeout_after_s):
                self._set_state(job, "JOB_STATE_FAILED", timeout_error(faults.timeout_after_s))
            return
        self._run_process(job)

    def _run_process(self, job: CustomJob) -> None:
        container = job.container
        argv = [*container["command"], *container.get("args", [])]
        env = {**os.environ, "CLOUD_ML_PROJECT_ID": job.project, "CLOUD_ML_JOB_ID": job.job_id}
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        timeout_s = parse_duration_s((job.spec["jobSpec"].get("scheduling") or {}).get("timeout"))
        try:
            proc = spawn(argv, cwd=job.work_dir, env=env, log_path=job.stdout_path, stderr_path=job.stderr_path)
        except OSError as err:  # e.g. the command does not exist: the container would exit 127
            self._set_state(job, "JOB_STATE_FAILED", exit_error(127, str(err)))
            return
        with self.lock:
            job.proc = proc
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while proc.poll() is None:
            if job.cancel.wait(0.05):
                kill_groups([proc], KILL_GRACE_S)
                self._set_state(job, "JOB_STATE_CANCELLED", {"code": 1, "message": "CANCELED"})
                return
            if deadline is not None and time.monotonic() >= deadline:
                kill_groups([proc], KILL_GRACE_S)
                self._set_state(job, "JOB_STATE_FAILED", timeout_error(timeout_s or 0))
                return
        code = exit_status(proc.returncode)
        with self.lock:
            job.exit_code = code
        kill_groups([proc], 0)  # anything the command left running in its group
        if code == 0:
            self._set_state(job, "JOB_STATE_SUCCEEDED")
        else:
            self._set_state(job, "JOB_STATE_FAILED", exit_error(code, last_line(job.stderr_path)))

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
                raise ApiError(429, quota_message(spec), status="RESOURCE_EXHAUSTED")
            job_id = str(random.randrange(10**18, 10**19))
            work_dir = os.path.join(self.root, job_id, "work")
            os.makedirs(work_dir)
            job = CustomJob(job_id, self.project, location, spec, faults, work_dir)
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
