"""What operators see, as plain data: the rows behind ``avmonitor`` and ``/status``.

Read from the same places the functions write: the job documents (through
``functions.jobs.store()``), the renderers' heartbeats, and Compute Engine's
list of our VMs. Everything here is a read; the controls are in
``operators/controls.py``. Each row is a plain dict of JSON values, so the CLI
prints it, ``--json`` dumps it, and the HTTP function returns it as it is.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from common import layout
from common.heartbeat import RendererHeartbeat
from functions.state import JobState, Status
from operators.errors import NotFoundError, OperatorError

__all__ = ["NotFoundError", "OperatorError"]  # re-exported: callers catch them from here or from operators.errors

RENDERER_VERTEX = "vertex"  # the primary's heartbeat name (functions/vertex_events.py)


# ---------------------------------------------------------------- parsing


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration_s(text: str) -> float:
    """``90s``, ``15m``, ``24h``, ``7d`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise OperatorError(f"--since: {text!r} is not a duration like 30m, 24h or 7d")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_status(text: str | None) -> Status | None:
    if text is None:
        return None
    try:
        return Status(text)
    except ValueError:
        raise OperatorError(f"--state: {text!r} is not a state; one of: {', '.join(s.value for s in Status)}") from None


def age_s(iso: str, now: datetime | None = None) -> float:
    return ((now or datetime.now(timezone.utc)) - datetime.fromisoformat(iso)).total_seconds()


def preflight() -> None:
    """Fail in seconds, with one line, when the job store cannot be reached (its client would retry for minutes)."""
    from google.api_core import exceptions as api

    from functions import clients

    try:
        clients.firestore_client().collection("jobs").limit(1).get(timeout=5, retry=None)
    except (api.ServiceUnavailable, api.DeadlineExceeded, api.RetryError) as err:
        host = os.environ.get("FIRESTORE_EMULATOR_HOST") or "firestore.googleapis.com"
        raise OperatorError(f"cannot reach Firestore at {host} ({type(err).__name__}); is the cloud up? "
                            f"(avmonitor health; locally: make up)") from None


# ---------------------------------------------------------------- heartbeats


def read_heartbeat(job_id: str, renderer: str) -> RendererHeartbeat | None:
    from functions.heartbeats import read_heartbeat as read

    return read(job_id, renderer)


def current_renderer(state: JobState) -> str | None:
    """Whose heartbeat tells this job's progress: its VM's while one runs, else the primary's."""
    if state.status in (Status.VM_RUNNING, Status.VM_LAUNCHING) and state.fallback.instance:
        return state.fallback.instance
    if state.result.rendered_by == "vm" and state.result.instance:
        return state.result.instance
    if state.primary.custom_job:
        return RENDERER_VERTEX
    return None


# ---------------------------------------------------------------- jobs


def job_row(state: JobState, beat: RendererHeartbeat | None = None) -> dict[str, Any]:
    """One line of ``avmonitor status``."""
    fb, result = state.fallback, state.result
    progress = 1.0 if state.status is Status.SUCCEEDED else (beat.progress if beat else None)
    last = state.history[-1] if state.history else {}
    return {
        "job_id": state.job_id,
        "state": state.status.value,
        "method": state.method,
        "gpu": result.gpu or fb.gpu or (state.primary.accelerator and "vertex"),
        "zone": fb.zone,
        "provisioning": fb.provisioning,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "age_s": round(age_s(state.created_at), 1),
        "progress": None if progress is None else round(progress, 4),
        "frames_done": beat.frames_done if beat else None,
        "frames_total": beat.frames_total if beat else None,
        "estimated_cost_usd": fb.estimated_cost_usd,
        "actual_cost_usd": result.cost_usd,
        "video_length_s": state.video_length_s,
        "attempt": fb.attempt if state.primary.failure else state.primary.attempt,
        "last_note": last.get("note", ""),
        "error": state.error,
        "video": result.video,
    }


def list_jobs(*, status: Status | None = None, since_s: float | None = None, limit: int = 50,
              cursor: str | None = None, with_progress: bool = True) -> tuple[list[dict[str, Any]], str | None]:
    """Jobs by last change, newest first, one page; returns ``(rows, cursor of the next page or None)``."""
    from functions.jobs import store

    if limit < 1 or limit > 1000:
        raise OperatorError(f"--limit: {limit} is not between 1 and 1000")
    page = store().newest(limit=limit, cursor=cursor, status=status.value if status else None)
    rows, cutoff = [], (time.time() - since_s) if since_s else None
    for state in page.jobs:
        if cutoff is not None and datetime.fromisoformat(state.updated_at).timestamp() < cutoff:
            return rows, None  # newest first: everything after this is older still
        beat = None
        if with_progress and not state.status.terminal:
            renderer = current_renderer(state)
            beat = read_heartbeat(state.job_id, renderer) if renderer else None
        rows.append(job_row(state, beat))
    return rows, page.cursor


def get_job(job_id: str) -> JobState:
    from functions.jobs import store

    if not layout.is_valid_job_id(job_id):
        raise OperatorError(f"job id {job_id!r} is not valid (lowercase letters, digits and dashes, at most 40)")
    state = store().get(job_id)
    if state is None:
        raise NotFoundError(f"no job {job_id!r}")
    return state


def job_detail(job_id: str) -> dict[str, Any]:
    """Everything about one job: its row, its timeline with each decision's reasons, every attempt."""
    state = get_job(job_id)
    renderer = current_renderer(state)
    beat = read_heartbeat(job_id, renderer) if renderer else None
    return {
        **job_row(state, beat),
        "heartbeat": None if beat is None else {**asdict(beat), "age_s": beat.age_s()},
        "timeline": state.history,
        "primary": state.primary.to_dict(),
        "fallback": state.fallback.to_dict(),
        "result": state.result.to_dict(),
        "vm_attempts": [*state.fallback.previous, *([_current_attempt(state)] if state.fallback.instance else [])],
    }


def _current_attempt(state: JobState) -> dict[str, Any]:
    end = state.status.value if state.status.terminal else "current"
    return state.fallback.as_attempt(end, state.fallback.deleted_at)


# ---------------------------------------------------------------- VMs


def list_vms(stale_after_s: float | None = None) -> list[dict[str, Any]]:
    """Every VM labelled as ours, with its job; orphans and stale heartbeats flagged."""
    from functions import clients
    from functions.jobs import store
    from functions.watchdog import is_current_vm

    cfg = clients.config()
    stale_after_s = cfg.vm_heartbeat_timeout_s if stale_after_s is None else stale_after_s
    rows = []
    request = {"project": cfg.project, "filter": f"labels.{layout.JOB_LABEL}:*"}
    for zone_scope, scoped in clients.instances_client().aggregated_list(request=request):
        for instance in scoped.instances:
            labels = dict(instance.labels)
            job_id = labels.get(layout.JOB_LABEL, "")
            zone = zone_scope.rsplit("/", 1)[-1]
            state = store().get(job_id) if layout.is_valid_job_id(job_id) else None
            beat = read_heartbeat(job_id, instance.name) if state else None
            created = datetime.fromisoformat(instance.creation_timestamp) if instance.creation_timestamp else None
            vm_age = (datetime.now(timezone.utc) - created).total_seconds() if created else None
            price = state.fallback.price_per_hour if state and state.fallback.instance == instance.name else None
            heartbeat_age = beat.age_s() if beat else None
            rows.append({
                "name": instance.name,
                "zone": zone,
                "status": instance.status,
                "gpu": labels.get(layout.GPU_LABEL),
                "provisioning": "spot" if instance.scheduling.provisioning_model == "SPOT" else "on-demand",
                "age_s": None if vm_age is None else round(vm_age, 1),
                "job_id": job_id,
                "job_state": state.status.value if state else None,
                "attempt": labels.get(layout.ATTEMPT_LABEL),
                "price_per_hour": price,
                "cost_so_far_usd": round(vm_age / 3600 * price, 6) if price and vm_age else None,  # a CPU Spot VM: cents an hour
                "heartbeat_age_s": None if heartbeat_age is None else round(heartbeat_age, 1),
                "progress": beat.progress if beat else None,
                "orphan": not is_current_vm(state, labels, zone),
                "stale": heartbeat_age is not None and heartbeat_age > stale_after_s,
            })
    return sorted(rows, key=lambda row: (row["age_s"] is None, -(row["age_s"] or 0)))


def since_day(since_s: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=since_s)).date().isoformat()
