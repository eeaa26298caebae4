"""A/B experiments between render methods: declared in ``catalog/experiments.yml``, assigned at intake.

An experiment splits a share of new jobs between two or more arms; each arm
changes one or more things, from a closed set:

* ``route: vertex-first`` (today's behaviour) or ``vm-first`` (the fallback VM
  is launched at once; Vertex AI renders the job only if no VM can be had);
* ``gpu: <a catalog GPU>``: the launcher tries that GPU first, then any;
* ``provisioning: spot | on-demand``: tried first, then the other.

An arm never takes a way out away from a job: a preference orders the
launcher's choices, it does not forbid the others (an operator's pin, from
``avmonitor launch --gpu``, does), and a VM-first job the VMs cannot take goes
to Vertex AI.

Assignment is deterministic: SHA-256 of the experiment's name and the job id
gives two numbers in [0, 1); the job is in the experiment when the first is
below ``share``, and its arm is the second's slice (equal slices, in the file's
order). So a redelivered message gets the same arm, growing ``share`` keeps the
jobs already in, and two experiments split jobs independently. A job is in at
most one experiment: the first active one, in file order, whose share takes it.
The arm, with what it changes, is recorded on the job (``JobState.experiment``).

The file is ``$EXPERIMENTS_FILE``, else the bundled ``catalog/experiments.yml``
(beside the GPU catalog it names GPUs from, and deployed with the functions'
source the same way). Every problem is one :class:`ExperimentError` line naming
the field, as for the catalog; intake logs it and runs the job as today, since
a broken experiment must never stop a job. ``python -m functions.experiments
[FILE]`` checks a file.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from catalog.model import PROVISIONINGS, CatalogError, load_catalog
from common import strict_yaml
from common.logs import get_logger
from functions.state import EXPERIMENT, ExperimentArm, JobState, Status

log = get_logger("experiments")

ENV_EXPERIMENTS = "EXPERIMENTS_FILE"
DEFAULT_EXPERIMENTS_PATH = Path(__file__).resolve().parents[1] / "catalog" / "experiments.yml"
VERTEX_FIRST, VM_FIRST = "vertex-first", "vm-first"
ROUTES = (VERTEX_FIRST, VM_FIRST)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOP_FIELDS = {"version", "experiments"}
_EXPERIMENT_REQUIRED = {"description", "share", "active", "arms"}
_ARM_FIELDS = {"route", "gpu", "provisioning"}


class ExperimentError(ValueError):
    """An experiments file is invalid; the message is one line naming the field."""


@dataclass(frozen=True)
class Arm:
    name: str
    route: str = VERTEX_FIRST
    gpu: str | None = None
    provisioning: str | None = None

    @property
    def changes(self) -> str:
        """What the arm does, for people: ``VM first, l4 first, spot first``."""
        parts = ["VM first" if self.route == VM_FIRST else "Vertex AI first"]
        parts += [f"{value} first" for value in (self.gpu, self.provisioning) if value]
        return ", ".join(parts)


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    share: float  # of new jobs, 0..1
    active: bool
    arms: tuple[Arm, ...]


# ---------------------------------------------------------------- assignment (pure)


def position(experiment: str, job_id: str) -> tuple[float, float]:
    """Two independent numbers in [0, 1) from SHA-256(experiment, job id): (in the share?, which arm?)."""
    digest = hashlib.sha256(f"{experiment}\0{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big") / 2**64


def assign(job_id: str, experiments: Iterable[Experiment]) -> ExperimentArm | None:
    """The arm of the first active experiment whose share takes this job; None when none does."""
    for experiment in experiments:
        if not experiment.active:
            continue
        share_at, arm_at = position(experiment.name, job_id)
        if share_at < experiment.share:
            arm = experiment.arms[min(int(arm_at * len(experiment.arms)), len(experiment.arms) - 1)]
            return ExperimentArm(name=experiment.name, arm=arm.name, route=arm.route, gpu=arm.gpu,
                                 provisioning=arm.provisioning)
    return None


def sends_to_vm_first(state: JobState) -> bool:
    """Whether the primary should hand this job to the fallback at once instead of submitting it.

    Only a job just received whose VM-first try has not been given up
    (``fallback.hedge_failed``: then Vertex AI is its way out).
    """
    arm = state.experiment
    return (arm is not None and arm.route == VM_FIRST and state.status is Status.RECEIVED
            and state.primary.failure is None and state.fallback.hedge_failed is None)


def vm_gave_up(job_id: str, reason: str, *, when: Callable[[JobState], bool], **details: object) -> JobState | None:
    """The fallback cannot render this job: a VM-first job goes to Vertex AI; any other, ``jobs.fallback_gave_up``.

    A job its A/B arm sent to a VM first has not tried Vertex AI yet, so no VM
    is no reason to fail it (every arm still falls back). ``when`` is the
    launcher's check that the launch is still its own. ``fallback.hedge_failed``
    records why, and keeps the primary from sending the job to a VM first again.
    """
    from functions import clients
    from functions.jobs import fallback_gave_up, store

    current = store().get(job_id)
    if current is None or current.primary.failure != EXPERIMENT or current.primary.custom_job:
        return fallback_gave_up(job_id, reason, when=when, **details)

    def to_vertex(state: JobState | None) -> JobState | None:
        if state is None or state.status.terminal or not when(state) or state.primary.failure != EXPERIMENT:
            return None
        state.fallback.claim, state.fallback.retry_at, state.fallback.hedge_failed = None, None, reason
        state.primary.failure = state.primary.error = None  # its method reads "vertex" again
        state.move_to(Status.RECEIVED, f"no VM for its VM-first arm ({reason}): submitting to Vertex AI", **details)
        return state

    state, changed = store().update(job_id, to_vertex)
    if changed or (state is not None and state.status is Status.RECEIVED):
        clients.publish(clients.config().topic_primary, {"job_id": job_id}, job_id=job_id)
        log.warning("VM-first arm: no VM, falling back to Vertex AI", job_id=job_id, reason=reason)
    return state


# ---------------------------------------------------------------- the configured experiments


def for_new_job(job_id: str) -> ExperimentArm | None:
    """The arm a new job is in under the configured experiments; None if none, or if the file is invalid (logged)."""
    try:
        return assign(job_id, configured())
    except ExperimentError as err:
        log.error("experiments ignored: the file is invalid; jobs run as without experiments", job_id=job_id,
                  reason=str(err))
        return None


def configured() -> tuple[Experiment, ...]:
    """The experiments of ``$EXPERIMENTS_FILE`` (or the bundled file), read once per process per path."""
    return _load_cached(os.environ.get(ENV_EXPERIMENTS, "").strip() or str(DEFAULT_EXPERIMENTS_PATH))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> tuple[Experiment, ...]:
    return load_experiments(path)


def load_experiments(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                     gpus: Iterable[str] | None = None) -> tuple[Experiment, ...]:
    """Read and validate an experiments file: ``path``, else ``$EXPERIMENTS_FILE``, else the bundled one.

    ``gpus``: the option names an arm may prefer: GPUs and CPU-only machines (default: the catalog's, ``$GPU_CATALOG``).
    """
    env = os.environ if environ is None else environ
    chosen = Path(path) if path is not None else Path(env.get(ENV_EXPERIMENTS, "").strip() or DEFAULT_EXPERIMENTS_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as err:
        raise ExperimentError(f"experiments: {chosen}: cannot read: {err.strerror or err}") from None
    if gpus is None:
        try:
            gpus = load_catalog(environ=env).options
        except CatalogError as err:
            raise ExperimentError(f"experiments: the GPU catalog the arms name GPUs from is invalid: {err}") from None
    return parse_experiments(_parse_yaml(text, str(chosen)), gpus=gpus)


def parse_experiments(data: object, gpus: Iterable[str]) -> tuple[Experiment, ...]:
    """Validate an already-parsed experiments document (as YAML or JSON gives it)."""
    gpus = tuple(gpus)
    top = _fields(data, "", required={"experiments"}, optional=_TOP_FIELDS)
    if "version" in top and top["version"] != 1:
        raise ExperimentError(f"experiments: version: must be 1, got {top['version']!r}")
    entries = top["experiments"]
    if entries is None:
        return ()  # "experiments:" with nothing under it: none
    if not isinstance(entries, dict):
        raise ExperimentError("experiments: experiments: must be a mapping of experiment names to experiments")
    return tuple(_experiment(name, entry, gpus) for name, entry in entries.items())


def _experiment(name: object, data: object, gpus: tuple[str, ...]) -> Experiment:
    at = f"experiments.{name}"
    _name(name, at)
    raw = _fields(data, at, required=_EXPERIMENT_REQUIRED, optional=set())
    description = raw["description"]
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise ExperimentError(f"experiments: {at}.description: must be one line of text, got {description!r}")
    share = raw["share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share) or not 0 <= share <= 1:
        raise ExperimentError(f"experiments: {at}.share: must be a number from 0 to 1 (the share of new jobs), got {share!r}")
    if not isinstance(raw["active"], bool):
        raise ExperimentError(f"experiments: {at}.active: must be true or false, got {raw['active']!r}")
    arms = raw["arms"]
    if not isinstance(arms, dict) or len(arms) < 2:
        raise ExperimentError(f"experiments: {at}.arms: must be a mapping of two or more arm names to what each changes")
    return Experiment(name=str(name), description=description.strip(), share=float(share), active=raw["active"],
                      arms=tuple(_arm(arm, spec, f"{at}.arms.{arm}", gpus) for arm, spec in arms.items()))


def _arm(name: object, data: object, at: str, gpus: tuple[str, ...]) -> Arm:
    _name(name, at)
    raw = _fields({} if data is None else data, at, required=set(), optional=_ARM_FIELDS)  # an empty arm: today's behaviour
    route = raw.get("route", VERTEX_FIRST)
    if route not in ROUTES:
        raise ExperimentError(f"experiments: {at}.route: must be {' or '.join(ROUTES)}, got {route!r}")
    gpu = raw.get("gpu")
    if gpu is not None and gpu not in gpus:
        raise ExperimentError(f"experiments: {at}.gpu: must be one of the catalog's options ({', '.join(gpus)}), got {gpu!r}")
    provisioning = raw.get("provisioning")
    if provisioning is not None and provisioning not in PROVISIONINGS:
        raise ExperimentError(f"experiments: {at}.provisioning: must be {' or '.join(PROVISIONINGS)}, got {provisioning!r}")
    return Arm(name=str(name), route=route, gpu=gpu, provisioning=provisioning)


# ---------------------------------------------------------------- validation helpers


def _error(message: str) -> ExperimentError:
    return ExperimentError(f"experiments: {message}")


def _parse_yaml(text: str, source: str) -> object:
    return strict_yaml.load(text, source, _error)


def _fields(data: object, at: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    """A mapping with every required field and nothing unknown (a misspelt field must not be ignored)."""
    return strict_yaml.fields(data, at, required, optional, _error, list_allowed=True)


def _name(name: object, at: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentError(f"experiments: {at}: names are 1 to 63 characters of a-z, 0-9, '-' and '_', got {name!r}")


def main(argv: list[str] | None = None) -> int:
    """``python -m functions.experiments [FILE]``: check a file; print each experiment and its arms."""
    args = sys.argv[1:] if argv is None else argv
    try:
        experiments = load_experiments(args[0] if args else None)
    except ExperimentError as err:
        print(err, file=sys.stderr)
        return 1
    for e in experiments:
        print(f"{e.name}: {'active' if e.active else 'inactive'}, {e.share:.0%} of new jobs: {e.description}")
        for arm in e.arms:
            print(f"  {arm.name}: {arm.changes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
