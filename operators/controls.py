"""The operators' controls: launch a VM for a job, retry a failed job, cancel a job.

Each is one transaction on the job's state (a change function, like every
step of the functions) followed by the same message the functions would
publish, so the launcher, the watchdog, the budget and the clean-up treat it
like any other job: a duplicate click is a no-op, a launch still reserves its
budget, a cancelled job's VM is deleted by the same clean-up. Each is logged
with the operator's identity and recorded in the job's timeline. A control
the job's state does not allow changes nothing and raises
:class:`OperatorError` with one line.
"""

from __future__ import annotations

from typing import Any

from common.logs import get_logger
from functions import clients
from functions.state import PRIMARY_STATES, FallbackRun, JobState, PrimaryRun, RenderResult, Status
from operators.errors import ConflictError, NotFoundError, OperatorError
from operators.views import get_job, job_row

log = get_logger("controls")

PROVISIONING = ("spot", "on-demand")


def _apply(job_id: str, change) -> JobState:
    """Run ``change`` (which raises OperatorError to refuse) in the job's transaction."""
    from functions.jobs import store

    refused: list[OperatorError] = []

    def guarded(state: JobState | None) -> JobState | None:
        refused.clear()
        if state is None:
            raise NotFoundError(f"no job {job_id!r}")
        try:
            return change(state)
        except OperatorError as err:  # refused: nothing is written
            refused.append(err)
            return None

    state, _ = store().update(job_id, guarded)
    if refused:
        raise refused[0]
    return state


def check_option(catalog, name: str) -> None:
    """Refuse, in one line that lists the choices, a name that is none of the catalog's options.

    Any option may be asked for: a GPU (t4) or a CPU-only machine (c3-highcpu-8),
    by the name the catalog gives it (the launcher blocks every other option).
    """
    if name in catalog.options:
        return
    cpus = f"; CPU-only: {', '.join(catalog.cpus)}" if catalog.cpus else ""
    raise OperatorError(f"--gpu: {name!r} is not in the catalog; one of: GPUs: {', '.join(catalog.gpus)}{cpus}")


def launch(job_id: str, *, gpu: str | None = None, provisioning: str | None = None, operator: str) -> dict[str, Any]:
    """Render this job on a VM now (the design note's manual launch), optionally on a chosen option and provisioning.

    `gpu` is any option's name: a GPU's or a CPU-only machine's (the job's state,
    labels and learned speeds call both ``gpu``).

    A job still with the primary gets a VM beside it (a hedge: the first video
    wins, the other renderer is stopped); one waiting for a VM gets the choice
    and is announced again. The launcher still picks the zone, checks the
    budget and falls back across zones as for any job.
    """
    from functions.fallback import catalog

    if gpu is not None:
        check_option(catalog(), gpu)
    get_job(job_id)  # a clear line for an invalid or unknown id
    if provisioning is not None and provisioning not in PROVISIONING:
        raise OperatorError(f"provisioning: {provisioning!r} is not spot or on-demand")
    choice = " ".join(x for x in (gpu, provisioning) if x) or "the selector's choice"

    def change(state: JobState) -> JobState:
        if state.status.terminal:
            raise ConflictError(f"job {job_id} is {state.status.value}: use `avmonitor retry` to render it again")
        if state.status in (Status.VM_LAUNCHING, Status.VM_RUNNING):
            raise ConflictError(f"job {job_id} is {state.status.value} on {state.fallback.instance or 'a VM being launched'}: "
                                f"it has its VM")
        state.fallback.pinned_gpu, state.fallback.pinned_provisioning = gpu, provisioning
        state.fallback.retry_at = None  # a job backing off is launched now
        if state.status in PRIMARY_STATES:
            state.primary.failure, state.primary.error = "manual", f"{operator} launched a VM ({choice})"
        state.move_to(Status.FALLBACK_REQUESTED, f"{operator} launched a VM ({choice})", operator=operator)
        return state

    state = _apply(job_id, change)
    clients.publish(clients.config().topic_fallback, {"job_id": job_id, "reason": "operator launch"}, job_id=job_id)
    log.warning("operator launched a VM", job_id=job_id, operator=operator, gpu=gpu, provisioning=provisioning)
    return job_row(state)


def retry(job_id: str, *, operator: str) -> dict[str, Any]:
    """Start a failed or cancelled job again from its staged assets, as a new run (its timeline is kept)."""
    get_job(job_id)

    def change(state: JobState) -> JobState:
        if state.status not in (Status.FAILED, Status.CANCELLED):
            raise ConflictError(f"job {job_id} is {state.status.value}: only a failed or cancelled job can be retried")
        # Attempt numbers go on from the last run: VM names and request ids are
        # made from them, and must never repeat (a reused request id returns the old operation).
        # The last run's Vertex job and VM go into the attempts before, so their cost is still counted.
        old_primary, old_vm = state.primary, state.fallback
        primary_before = [*old_primary.previous, *([{"custom_job": old_primary.custom_job, "error": old_primary.error}]
                                                   if old_primary.custom_job else [])]
        vm_before = [*old_vm.previous,
                     *([old_vm.as_attempt(state.status.value, old_vm.deleted_at)] if old_vm.instance else [])]
        state.primary = PrimaryRun(attempt=old_primary.attempt + 1, first_attempt=old_primary.attempt + 1,
                                   previous=primary_before)
        next_vm = old_vm.attempt + 1
        state.fallback = FallbackRun(attempt=next_vm, first_attempt=next_vm, previous=vm_before)
        state.result, state.error, state.runs = RenderResult(), None, state.runs + 1
        state.outcome_published, state.outcome_claim, state.cleaned_up = False, None, False
        state.dead_letters, state.first_dead_letter_at = 0, None
        state.move_to(Status.RECEIVED, f"{operator} retried the job (run {state.runs})", operator=operator)
        return state

    state = _apply(job_id, change)
    clients.publish(clients.config().topic_primary, {"job_id": job_id}, job_id=job_id)
    log.warning("operator retried a job", job_id=job_id, operator=operator, run=state.runs)
    return job_row(state)


def cancel(job_id: str, *, operator: str) -> dict[str, Any]:
    """Stop a job: it ends ``cancelled``; its Vertex job is cancelled and its VM deleted (the usual clean-up)."""
    from functions.outcome import finish_job

    get_job(job_id)

    def change(state: JobState) -> JobState:
        if state.status.terminal:
            raise ConflictError(f"job {job_id} is already {state.status.value}: nothing to cancel")
        state.error = f"cancelled by {operator}"
        state.move_to(Status.CANCELLED, f"cancelled by {operator}", operator=operator)
        return state

    state = finish_job(_apply(job_id, change))
    log.warning("operator cancelled a job", job_id=job_id, operator=operator)
    return job_row(state)
