"""The errors the local Vertex AI puts on a custom job, each with where its shape comes from.

``error`` on a CustomJob is a ``google.rpc.Status`` (``code``, ``message``). Every
builder here names its public source; where the real text or code is unknown
the builder says so and models the harsher case. The table of all of them, for
readers, is ``docs/standins.md``.

Sources used below (quoted short; read them for the full picture):

* [TRAINING] "Understand the custom training service",
  https://cloud.google.com/vertex-ai/docs/training/understanding-training-service
  (stored copy: docs.cloud.google.com/gemini-enterprise-agent-platform/machine-learning/
  training/understanding-training-service): the "User code exception" row gives
  "The replica REPLICA_NAME exited with a non-zero status of EXIT_CODE. Termination
  reason: REASON."; the "Out-of-memory" row gives "The replica REPLICA_NAME ran out of
  memory and exited with a non-zero status of EXIT_CODE."; exit codes 6/134 (SIGABRT)
  and 11/139 (SIGSEGV) make Vertex "restart the job up to three times"; an internal
  error is retried twice, then "Internal error occurred for the current attempt.";
  "About one minute after a job ends, [Vertex] sets the error code on the training job
  object, based on the exit code."
* [PR1504] GoogleCloudPlatform/vertex-ai-samples PR 1504 (2023): ``code: 3 message:
  "The replica workerpool1-1 exited with a non-zero status of 1. Termination reason:
  Error. \\nTraceback (most recent call last):\\n  [...]\\n  File ..."``: code 3 for a plain
  exit 1, and the Python traceback from the replica's stderr, its middle cut to "[...]".
* [I1898] GoogleCloudPlatform/vertex-ai-samples issue 1898 (2023): ``code: 3 message:
  "The replica workerpool0-0 exited with a non-zero status of 128. Termination reason:
  StartError. \\n Termination log message: failed to create containerd task: ..."``
  (the command "trainer.task" was not an executable).
* [LOG2026] a ``gcloud ai custom-jobs stream-logs`` capture (2026, stored in the code
  corpus) of a failed job: the service line is "The replica workerpool0-0 exited with a
  non-zero status of 1. Termination reason: Error. \\n" + the Python traceback (only the
  traceback: earlier stderr lines and pip warnings are not in it) + "\\n\\nTo find out
  more about why your job exited please check the logs:
  https://console.cloud.google.com/logs/viewer?project=608533675308&resource=ml_job%2F
  job_id%2F8501620632646057984&advancedFilter=resource.type%3D%22ml_job%22%0A
  resource.labels.job_id%3D%228501620632646057984%22" (the project *number*).
* [TF10735] tensorflow/models issue 10735 (2022, Vertex): a job whose replica printed a
  ValueError traceback to its log ends with "The replica workerpool0-0 exited with a
  non-zero status of 1. To find out more about why your job exited please check the
  logs: ..." and no traceback in it: the traceback is not always there.
* [OCI] the containerd/runc start-failure text, "failed to create containerd task:
  failed to create shim task: OCI runtime create failed: runc create failed: unable to
  start container process: exec: "X": executable file not found in $PATH: unknown"
  (kubeflow/pipelines issue 11166, TangleML/tangle issue 3: exit code 128, reason
  StartError).
* [Q700] vertex-ai-samples issue 700: ``code: 8 message: "The following quota metrics
  exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_k80_gpus"``;
  [Q12] GoogleCloudPlatform/stable-diffusion-on-gcp issue 12 and google-deepmind/xmanager
  issue 29: the same message on the create call, HTTP 429 RESOURCE_EXHAUSTED.
* [CANCEL] customJobs.cancel reference: a cancelled job gets "a CustomJob.error value
  with a google.rpc.Status.code of 1, corresponding to Code.CANCELLED".
"""

from __future__ import annotations

import os

from infra.local._http import JsonDict

REPLICA = "workerpool0-0"  # the first replica of the first worker pool, as Vertex names it
# [TRAINING]: exit codes Vertex treats as possibly transient: it restarts the job up to three times.
TRANSIENT_EXIT_CODES = frozenset({6, 11, 134, 139})
TRANSIENT_RESTARTS = 3
# How much of a long traceback is kept. [PR1504] shows the middle cut to "[...]"; the length
# Vertex keeps is unknown: we keep the header and the last lines.
TRACEBACK_MAX_LINES = 20
_TRACEBACK_HEADER = "Traceback (most recent call last):"


def logs_url(project_number: str, job_id: str) -> str:
    """The Logs Explorer link Vertex appends to a replica's exit message ([LOG2026])."""
    return (
        f"https://console.cloud.google.com/logs/viewer?project={project_number}"
        f"&resource=ml_job%2Fjob_id%2F{job_id}"
        f"&advancedFilter=resource.type%3D%22ml_job%22%0Aresource.labels.job_id%3D%22{job_id}%22"
    )


def _with_logs_link(head: str, body: str, project_number: str, job_id: str) -> str:
    link = f"To find out more about why your job exited please check the logs: {logs_url(project_number, job_id)}"
    return f"{head}\n{body}\n\n{link}" if body else f"{head}{link}"


def python_traceback(stderr_path: str, limit_bytes: int = 256 * 1024) -> str:
    """The last Python traceback in a replica's stderr, as Vertex quotes it, or "".

    Only the traceback ([LOG2026]: other stderr lines are left out): from
    "Traceback (most recent call last):" to the exception line (the first
    unindented line after it). A long one keeps its header and last lines, the
    middle replaced by "  [...]" ([PR1504]).
    """
    try:
        with open(stderr_path, "rb") as err:
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - limit_bytes))
            tail = err.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = tail.splitlines()
    starts = [n for n, line in enumerate(lines) if line.strip() == _TRACEBACK_HEADER]
    if not starts:
        return ""
    block = [_TRACEBACK_HEADER]
    for line in lines[starts[-1] + 1 :]:
        block.append(line.rstrip())
        if line and not line[0].isspace():  # the exception line ends the traceback
            break
    if len(block) > TRACEBACK_MAX_LINES:
        block = [block[0], "  [...]", *block[-(TRACEBACK_MAX_LINES - 2) :]]
    return "\n".join(block)


def replica_exit_error(
    status: int, *, project_number: str, job_id: str, stderr_path: str | None = None, oom: bool = False
) -> JsonDict:
    """A replica that exited non-zero: code 3 whatever the status ([PR1504], [I1898], [TRAINING]).

    The container's stderr is not in the message, except a Python traceback
    ([LOG2026], [PR1504]); a program that prints its reason and exits (no
    traceback) gets none ([TF10735]). ``oom``: the out-of-memory row of
    [TRAINING]; its rpc code is not documented, unknown: we keep 3 (a consumer
    cannot tell it from a bad input by the code alone, the harsher case).
    """
    if oom:
        head = f"The replica {REPLICA} ran out of memory and exited with a non-zero status of {status}. "
    else:
        head = f"The replica {REPLICA} exited with a non-zero status of {status}. Termination reason: Error. "
    traceback = python_traceback(stderr_path) if stderr_path else ""
    return {"code": 3, "message": _with_logs_link(head, traceback, project_number, job_id)}


def start_error(executable: str, *, project_number: str, job_id: str, permission: bool = False) -> JsonDict:
    """A container that could not start: status 128, reason StartError ([I1898], [OCI]).

    The runtime's reason is quoted as the "Termination log message" ([I1898]);
    whether the logs link follows it is not visible in the issue (its message is
    cut): unknown, we append it as for other exits.
    """
    why = "permission denied" if permission else "executable file not found in $PATH"
    runtime = (
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
        f'runc create failed: unable to start container process: exec: "{executable}": {why}: unknown'
    )
    head = f"The replica {REPLICA} exited with a non-zero status of 128. Termination reason: StartError. "
    return {"code": 3, "message": _with_logs_link(head, f" Termination log message: {runtime}", project_number, job_id)}


def internal_error() -> JsonDict:
    """Vertex's own failure, after its two retries: code 13 and the documented text ([TRAINING])."""
    return {"code": 13, "message": "Internal error occurred for the current attempt."}


def quota_message(spec: JsonDict) -> str:
    """Vertex's quota refusal, naming the metric for the job's accelerator ([Q700], [Q12])."""
    pool = (spec.get("jobSpec", {}).get("workerPoolSpecs") or [{}])[0]
    accelerator = str((pool.get("machineSpec") or {}).get("acceleratorType", ""))
    if accelerator in ("", "ACCELERATOR_TYPE_UNSPECIFIED"):
        metric = "custom_model_training_cpus"  # vertex-ai-samples issue 3479
    else:
        gpu = accelerator.lower().replace("tesla_", "").replace("h100_80gb", "h100")
        # "_preemptible_" for Spot: the metric name of Vertex's preemptible quota; unknown
        # whether a Spot job's refusal names it, we assume it does.
        spot = (spec.get("jobSpec", {}).get("scheduling") or {}).get("strategy") == "SPOT"
        metric = f"custom_model_training_{'preemptible_' if spot else ''}{gpu}_gpus"
    return f"The following quota metrics exceed quota limits: aiplatform.googleapis.com/{metric}"


def quota_error(spec: JsonDict) -> JsonDict:
    """A job that failed on quota: code 8 RESOURCE_EXHAUSTED ([Q700])."""
    return {"code": 8, "message": quota_message(spec)}


def timeout_error(timeout_s: float) -> JsonDict:
    """``scheduling.timeout`` reached.

    Unknown: no public source shows the text or code Vertex uses (one report,
    tensorflow/tfx issue 6223, saw a job at the 7-day default end "cancelled").
    We model FAILED with code 4 DEADLINE_EXCEEDED and a message of our own.
    """
    return {
        "code": 4,
        "message": f"The job exceeded its maximum running time (scheduling.timeout: {timeout_s:g}s) and was stopped.",
    }


def cancelled_error() -> JsonDict:
    """A cancelled job's error: code 1 ([CANCEL]); the message text is unknown, ours is "CANCELED"."""
    return {"code": 1, "message": "CANCELED"}

