"""Configuration, from environment variables with documented defaults.

Only endpoints differ between the local cloud and Google Cloud: the Pub/Sub,
Storage and Firestore clients read ``PUBSUB_EMULATOR_HOST`` /
``STORAGE_EMULATOR_HOST`` / ``FIRESTORE_EMULATOR_HOST`` themselves, and Compute Engine / Vertex AI take ``COMPUTE_API_ENDPOINT`` /
``VERTEX_API_ENDPOINT``. There is no "local mode".

The functions' settings are the fields of `Config` below (the variable is the
field's name in capitals unless ``load_config`` says otherwise). The GPU
catalog has settings of its own, read by ``catalog.model.load_catalog`` (and
``catalog.runtime_model.load_calibration``) when the fallback launcher, the
watchdog or ``avmonitor`` loads the catalog, not by `Config`; set them on the
functions as any other (catalog/model.py is their reference):

=========================  ==================================  ===============================================
variable                   default                             what it does
=========================  ==================================  ===============================================
GPU_CATALOG                catalog/gpu_catalog.yml (bundled)   the catalog file: options, prices, zones, budget
CATALOG_PRICING            the catalog's ``pricing:``          ``model`` (the runtime model, from the
                           (bundled: ``model``; the design     renderer's measured costs) or ``speed_factor``
                           note's short form: speed_factor)    (the design note's baseline / speed_factor)
CATALOG_CALIBRATION        catalog/calibration.json (bundled)  the runtime model's measured per-frame costs
BASELINE_T4_SPEED_S_PER_S  the catalog's baseline_s_per_s      render seconds per video second on a T4;
                           (bundled: 20)                       setting it also selects ``speed_factor`` pricing
                                                               unless CATALOG_PRICING says otherwise
FALLBACK_GPU_ONLY          false                               true: CPU-only machines are not launched (they
                                                               stay in each decision, excluded with that reason)
=========================  ==================================  ===============================================

A bad value is one line naming the variable (``catalog: CATALOG_PRICING: must be
one of model, speed_factor, got 'fast'``). ``REGION`` (below) also places the
short form's entries that list no zones, and ``VIDEO_LENGTH_S`` overrides a
job's computed length (functions/intake.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


@dataclass(frozen=True)
class Config:
    project: str
    region: str
    staging_bucket: str
    output_bucket: str
    # Firestore (native mode) database holding job state and the fleet's memory.
    firestore_database: str = "(default)"
    # Pub/Sub topic ids (infra/topology.yaml).
    topic_primary: str = "render-primary"
    topic_fallback: str = "render-fallback"
    topic_completed: str = "render-completed"
    topic_failed: str = "render-failed"
    # Endpoints: None means Google's.
    compute_endpoint: str | None = None
    vertex_endpoint: str | None = None
    anonymous_credentials: bool = False
    # The primary renderer (Vertex AI custom job).
    vertex_machine_type: str = "n1-standard-8"
    vertex_accelerator: str = "NVIDIA_TESLA_T4"
    vertex_timeout_s: int = 3600
    worker_image: str = "us-docker.pkg.dev/fast-render/render/worker:latest"
    # What runs the worker: inside the Vertex container, and on the fallback VM.
    # VM_WORKER_COMMAND empty (the default): the VM's startup script pulls
    # WORKER_IMAGE and runs it on the GPU; set, it runs that command line instead
    # (the local cloud's `python -m render_vm worker`). See render_vm/startup.sh.
    vertex_worker_command: tuple[str, ...] = ("python", "-m", "render_vm", "worker")
    vm_worker_command: str = ""
    vm_image: str = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
    # A CPU-only VM's boot image (an option without a GPU: no driver to install, no CUDA):
    # the Deep Learning VM "Base CPU" family, which the startup script runs the worker image on
    # with Docker as on the GPU image (https://cloud.google.com/deep-learning-vm/docs/release-notes,
    # March 31 2023: "Base CPU ( common-cpu-debian-11-py310 )").
    vm_cpu_image: str = "projects/deeplearning-platform-release/global/images/family/common-cpu-debian-11-py310"
    vm_service_account: str = "default"
    # The Vertex AI job's identity; "" is Vertex's own default (its service agent).
    vertex_service_account: str = ""
    vm_network: str = "global/networks/default"
    # "" = Compute Engine picks the network's subnet in the zone's region (an auto-mode network);
    # "{region}" in it is the VM zone's region, as a subnet is regional (functions/vm_spec.py).
    vm_subnetwork: str = ""
    vm_name_prefix: str = "av-render-"  # instances are PREFIX<job>-a<attempt>; IAM's render-vms condition matches it
    vm_network_tag: str = "autovideo-render"  # the firewall rule's target tag (infra/iam.yaml vm_network_tag)
    vm_max_run_s: int = 4 * 3600
    use_spot: bool = True
    # Failure policy (docs/architecture.md has the whole table).
    primary_queue_timeout_s: float = 900.0  # hedge a primary queued this long
    primary_overrun_factor: float = 2.0  # hedge a primary running this many times its estimate
    primary_max_attempts: int = 2  # Vertex submissions per job on internal errors
    failover_backoff_s: float = 60.0  # first backoff between launch passes (x1.6 per pass, jittered)
    failover_max_wait_s: float = 1800.0  # total backoff before the job fails
    stockout_ttl_s: float = 900.0  # how long a stockout is remembered across jobs
    quota_ttl_s: float = 3600.0  # how long a quota refusal is remembered
    max_vm_attempts: int = 5  # VMs per job (relaunches included) before it fails
    fallback_reannounce_s: float = 120.0  # re-publish a fallback request that seems lost
    # A claimed step (submitting, launching, publishing the outcome) whose claimant
    # went quiet this long is handed on by the watchdog: longer than a function may
    # run (540 s), so a live claimant never loses its claim.
    claim_timeout_s: float = 600.0
    vm_heartbeat_timeout_s: float = 180.0  # a rendering VM silent this long is hung: deleted, relaunched
    vm_boot_timeout_s: float = 900.0  # a VM with no heartbeat at all this long after launch: the same
    max_dead_letters: int = 3  # dead-lettered messages about one job before it fails...
    dead_letter_patience_s: float = 1800.0  # ...and only once they have kept coming this long (an outage passes)
    insert_retries: int = 3  # inserts retried in one zone on a rate or concurrency limit
    insert_retry_backoff_s: float = 2.0  # first wait before such a retry (doubles each time)
    job_retention_days: float = 90.0  # a finished job's document expires this long after it finished (TTL)

    @property
    def vertex_parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


# Failure-policy settings: the environment variable is the field's name in capitals
# (PRIMARY_QUEUE_TIMEOUT_S, ...); the default is the field's (docs/architecture.md).
_POLICY = {
    "primary_queue_timeout_s": float,
    "primary_overrun_factor": float,
    "primary_max_attempts": int,
    "failover_backoff_s": float,
    "failover_max_wait_s": float,
    "stockout_ttl_s": float,
    "quota_ttl_s": float,
    "max_vm_attempts": int,
    "fallback_reannounce_s": float,
    "claim_timeout_s": float,
    "vm_heartbeat_timeout_s": float,
    "vm_boot_timeout_s": float,
    "max_dead_letters": int,
    "dead_letter_patience_s": float,
    "insert_retries": int,
    "insert_retry_backoff_s": float,
    "job_retention_days": float,
}


# A VM name is PREFIX + job id (at most 40 characters) + "-a" + attempt, and GCE
# allows 63 characters, [a-z] first: so the prefix is at most 63 - 40 - 2 - the
# attempt's digits.
_NAME_PREFIX = re.compile(r"^[a-z][-a-z0-9]*$")
_JOB_ID_MAX = 40  # common.layout.JOB_ID_PATTERN (tests/functions/test_vm_spec.py checks the two agree)


def _vm_name_prefix(max_attempts: int) -> str:
    prefix = _env("VM_NAME_PREFIX", "av-render-")
    room = 63 - _JOB_ID_MAX - len("-a") - len(str(max(max_attempts, 1)))
    if not _NAME_PREFIX.match(prefix) or len(prefix) > room:
        raise ValueError(
            f"VM_NAME_PREFIX: {prefix!r} must start with a-z, hold only a-z, 0-9 and '-', and be at most {room} "
            f"characters (a VM name is the prefix, a job id of up to {_JOB_ID_MAX}, and -a<attempt>: 63 at most)"
        )
    return prefix


def _network_tag() -> str:
    tag = _env("VM_NETWORK_TAG", "autovideo-render")
    if not re.match(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$", tag):
        raise ValueError(f"VM_NETWORK_TAG: {tag!r} must be 1-63 characters of a-z, 0-9 and '-', start with a-z "
                         "and not end with '-' (a Compute Engine network tag)")
    return tag


def load_config() -> Config:
    """Read the environment once (module level in each function instance)."""
    project = _env("GOOGLE_CLOUD_PROJECT", "fast-render-local")
    region = _env("REGION", "us-central1")
    image = _env("WORKER_IMAGE", "us-docker.pkg.dev/%s/render/worker:latest" % project)
    return Config(
        project=project,
        region=region,
        staging_bucket=_env("STAGING_BUCKET", f"{project}-staging"),
        output_bucket=_env("OUTPUT_BUCKET", f"{project}-output"),
        firestore_database=_env("FIRESTORE_DATABASE", "(default)"),
        compute_endpoint=os.environ.get("COMPUTE_API_ENDPOINT") or None,
        vertex_endpoint=os.environ.get("VERTEX_API_ENDPOINT") or None,
        anonymous_credentials=_env("API_CREDENTIALS", "default") == "anonymous",
        vertex_machine_type=_env("VERTEX_MACHINE_TYPE", "n1-standard-8"),
        vertex_accelerator=_env("VERTEX_ACCELERATOR", "NVIDIA_TESLA_T4"),
        vertex_timeout_s=int(_float("VERTEX_TIMEOUT_S", 3600)),
        worker_image=image,
        vertex_worker_command=tuple(_env("VERTEX_WORKER_COMMAND", "python -m render_vm worker").split()),
        # Empty: the startup script pulls WORKER_IMAGE on the Deep Learning VM image
        # (Docker and the NVIDIA container toolkit there; the driver installed at
        # first boot) and runs it with the GPU. Set: that command line runs instead.
        vm_worker_command=_env("VM_WORKER_COMMAND", ""),
        vm_image=_env("VM_IMAGE", "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"),
        vm_cpu_image=_env("VM_CPU_IMAGE", Config.vm_cpu_image),
        vm_service_account=_env("VM_SERVICE_ACCOUNT", "default"),
        vertex_service_account=_env("VERTEX_SERVICE_ACCOUNT", ""),
        vm_network=_env("VM_NETWORK", "global/networks/default"),
        vm_subnetwork=_env("VM_SUBNETWORK", ""),
        vm_name_prefix=_vm_name_prefix(int(_float("MAX_VM_ATTEMPTS", Config.max_vm_attempts))),
        vm_network_tag=_network_tag(),
        vm_max_run_s=int(_float("VM_MAX_RUN_S", 4 * 3600)),
        # Spot VMs cost a third; the selector prices in preemption risk and stops
        # offering Spot to a job after the catalog's max_preemptions.
        use_spot=_env("USE_SPOT", "true").lower() in ("1", "true", "yes"),
        **{name: kind(_float(name.upper(), getattr(Config, name))) for name, kind in _POLICY.items()},
    )
