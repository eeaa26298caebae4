"""The primary renderer: submit the job to Vertex AI as a custom job on a GPU.

Vertex's ``CreateCustomJob`` takes no request id, so duplicates are kept out by
the job's state: a delivery first claims the job (``RECEIVED`` ->
``PRIMARY_SUBMITTING``), and only the claimant creates the Vertex job, labelled
with our job id and attempt. A duplicate that finds a live claim returns: the
claimant finishes the work. A claimant that crashed is detected by its claim's
age (``CLAIM_TIMEOUT_S``) and the watchdog announces the job again; the
successor looks the Vertex job up by label before creating one.
"""

from __future__ import annotations

import time
import uuid

from google.api_core.exceptions import GoogleAPICallError
from google.cloud import aiplatform_v1
from google.protobuf import duration_pb2

from common import layout
from common.logs import get_logger
from functions import clients, experiments
from functions.config import Config
from functions.failures import Action, classify
from functions.jobs import fail_job, request_fallback, store
from functions.state import EXPERIMENT, Claim, JobState, Status, claim_is_live, claimed_by

log = get_logger("primary")

JOB_LABEL, ATTEMPT_LABEL = layout.JOB_LABEL, layout.ATTEMPT_LABEL


def submit_primary(job_id: str) -> JobState | None:
    token = uuid.uuid4().hex
    now = time.time()
    cfg = clients.config()

    vm_first: list[str] = []  # why this job goes to a VM first, if its A/B arm says so

    def claim(state: JobState | None) -> JobState | None:
        vm_first.clear()
        if state is None or state.status not in (Status.RECEIVED, Status.PRIMARY_SUBMITTING):
            return None
        if experiments.sends_to_vm_first(state) and state.experiment:
            # Decided here, not at intake: every announcement of a received job (the watchdog's too) comes here.
            vm_first.append(f"experiment {state.experiment.name}, arm {state.experiment.arm}: a VM first")
            return None
        if state.status is Status.PRIMARY_SUBMITTING and claim_is_live(state.primary.claim, cfg.claim_timeout_s, now):
            return None
        state.primary.claim = Claim.new(token, now)
        state.move_to(Status.PRIMARY_SUBMITTING, "submitting to Vertex AI")
        return state

    state, claimed = store().update(job_id, claim)
    if vm_first:
        return request_fallback(job_id, vm_first[0], kind=EXPERIMENT)
    if state is None:
        log.warning("primary: unknown job", job_id=job_id)
        return None
    if not claimed:
        log.info("primary: nothing to do (a duplicate, or another delivery is submitting it)", job_id=job_id,
                 status=state.status.value)
        return state

    attempt = state.primary.attempt
    try:
        vertex_job = _find_existing(cfg, job_id, attempt) or clients.job_client().create_custom_job(
            parent=cfg.vertex_parent, custom_job=build_custom_job(cfg, job_id, attempt)
        )
    except GoogleAPICallError as err:
        # Vertex refused the job outright (e.g. 429 RESOURCE_EXHAUSTED for GPU quota).
        code = err.grpc_status_code.value[0] if err.grpc_status_code else 0
        rule = classify(code, str(err.message))
        reason = f"primary {rule.kind}: {err.message}"
        if rule.action is Action.FAIL:
            return fail_job(job_id, reason, when=lambda current: claimed_by(current.primary.claim, token))
        return request_fallback(job_id, reason, kind=rule.kind)

    def submitted(state: JobState | None) -> JobState | None:
        if state is None or state.status is not Status.PRIMARY_SUBMITTING or not claimed_by(state.primary.claim, token):
            return None
        state.primary.custom_job = vertex_job.name
        state.primary.machine_type, state.primary.accelerator = cfg.vertex_machine_type, cfg.vertex_accelerator
        state.move_to(Status.PRIMARY_SUBMITTED, "Vertex AI custom job created", custom_job=vertex_job.name)
        return state

    state, _ = store().update(job_id, submitted)
    log.info("primary submitted", job_id=job_id, custom_job=vertex_job.name)
    return state


def build_custom_job(cfg: Config, job_id: str, attempt: int = 1) -> aiplatform_v1.CustomJob:
    """One replica of the render container on one GPU, with the 1-hour limit."""
    container = aiplatform_v1.ContainerSpec(
        image_uri=cfg.worker_image,
        command=list(cfg.vertex_worker_command),
        args=["--job-id", job_id, "--staging-bucket", cfg.staging_bucket, "--output-bucket", cfg.output_bucket, "--rendered-by", "vertex"],
    )
    machine = aiplatform_v1.MachineSpec(
        machine_type=cfg.vertex_machine_type,
        accelerator_type=aiplatform_v1.AcceleratorType[cfg.vertex_accelerator],
        accelerator_count=1,
    )
    return aiplatform_v1.CustomJob(
        display_name=f"fast-render-{job_id}",
        labels={JOB_LABEL: job_id, ATTEMPT_LABEL: str(attempt)},
        job_spec=aiplatform_v1.CustomJobSpec(
            worker_pool_specs=[aiplatform_v1.WorkerPoolSpec(machine_spec=machine, replica_count=1, container_spec=container)],
            scheduling=aiplatform_v1.Scheduling(timeout=duration_pb2.Duration(seconds=cfg.vertex_timeout_s)),
            # The render account (VERTEX_SERVICE_ACCOUNT), as on the VMs; "" leaves Vertex's default.
            service_account=cfg.vertex_service_account,
        ),
    )


def _find_existing(cfg: Config, job_id: str, attempt: int) -> aiplatform_v1.CustomJob | None:
    """The Vertex job a crashed claimant may have created already."""
    request = aiplatform_v1.ListCustomJobsRequest(
        parent=cfg.vertex_parent, filter=f'labels.{JOB_LABEL}="{job_id}" AND labels.{ATTEMPT_LABEL}="{attempt}"'
    )
    for vertex_job in clients.job_client().list_custom_jobs(request=request):
        if vertex_job.labels.get(JOB_LABEL) == job_id and vertex_job.labels.get(ATTEMPT_LABEL) == str(attempt):
            return vertex_job
    return None
