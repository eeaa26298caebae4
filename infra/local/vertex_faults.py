"""Fault injection for the local Vertex AI: what ``POST /_admin/faults`` sets.

Kept apart from the service (as LocalStack keeps its chaos API apart): the
service asks ``Faults`` what to do with a job; the shapes of the resulting
errors live in ``vertex_errors``. Every mode models a real failure, named with
its source in ``docs/standins.md``.

    {"mode": "ok" | "quota" | "quota_on_create" | "timeout" | "queued"
             | "crash" | "start_error" | "internal",
     "queue_s": null, "queue_state": "QUEUED", "timeout_after_s": 2,
     "exit_code": 1, "crash_after_s": 1.0, "crash_oom": false,
     "error_delay_s": 0, "job_id_prefix": null, "drop_events": false}

* ``quota``: FAILED soon after creation, code 8 and Vertex's quota message.
* ``quota_on_create``: the create call itself answers HTTP 429 RESOURCE_EXHAUSTED.
* ``timeout``: RUNNING without starting the command, FAILED as a timeout after
  ``timeout_after_s``.
* ``queued``: held in ``queue_state`` (QUEUED, where Vertex documents a job
  waiting for quota; or PENDING) for ``queue_s`` seconds (null: until
  cancelled), then runs normally.
* ``crash``: the command starts; after ``crash_after_s`` its process group is
  killed and the job ends as a replica that exited with ``exit_code`` (137 an
  OOM kill, 1 a CUDA error...), with the out-of-memory wording if
  ``crash_oom``. An ``exit_code`` Vertex treats as transient (6, 11, 134, 139)
  is retried like a real one.
* ``start_error``: the container never starts: FAILED with status 128 StartError.
* ``internal``: FAILED soon after creation, code 13, Vertex's internal-error text.
* ``error_delay_s``: a FAILED job shows no ``error`` for that long (Vertex sets
  the error code "about one minute after a job ends").
* ``job_id_prefix`` limits the faults to jobs whose display name or a label
  value starts with it; ``drop_events`` publishes no job-state events.

Faults apply to jobs created after they are set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from infra.local._http import ApiError, JsonDict

MODES = ("ok", "quota", "quota_on_create", "timeout", "queued", "crash", "start_error", "internal")
QUEUE_STATES = ("QUEUED", "PENDING")


@dataclass
class Faults:
    """Injected behaviour; see the module docstring."""

    mode: str = "ok"
    queue_s: float | None = None
    queue_state: str = "QUEUED"
    timeout_after_s: float = 2.0
    exit_code: int = 1
    crash_after_s: float = 1.0
    crash_oom: bool = False
    error_delay_s: float = 0.0
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
        if faults.queue_state not in QUEUE_STATES:
            raise ApiError(400, f"queue_state must be one of {QUEUE_STATES}", status="INVALID_ARGUMENT")
        if not isinstance(faults.exit_code, int) or not 1 <= faults.exit_code <= 255:
            raise ApiError(400, "exit_code must be an exit status from 1 to 255", status="INVALID_ARGUMENT")
        return faults

    def to_json(self) -> JsonDict:
        return asdict(self)

    def applies_to(self, spec: JsonDict) -> bool:
        if not self.job_id_prefix:
            return True
        names = [str(spec.get("displayName", "")), *map(str, (spec.get("labels") or {}).values())]
        return any(name.startswith(self.job_id_prefix) for name in names)

    def for_job(self, spec: JsonDict) -> Faults:
        """The faults that apply to this job (none, if the prefix does not match)."""
        return self if self.applies_to(spec) else Faults()
