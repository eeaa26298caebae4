"""The fallback VM as Compute Engine sees it: its name, its request id, its instance resource.

Names and request ids are deterministic, so that a duplicate or a
crashed-and-retried delivery re-issues the very same insert: the same name in
the same zone is refused as ``alreadyExists``, and the same ``requestId`` is
answered with the same operation.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from google.cloud import compute_v1

from catalog.model import region_of
from catalog.select import Option
from common import layout
from functions.config import Config

STARTUP_SCRIPT = (Path(__file__).resolve().parent.parent / "render_vm" / "startup.sh").read_text()
_REQUEST_ID_NAMESPACE = uuid.UUID("5f4b3a52-6e0c-4d7f-9a43-7a1f0c2b9e11")

# The VM's OAuth scopes: what the render account's roles (infra/iam.yaml, render) need, no more.
# A scope only narrows what the account's IAM roles allow; cloud-platform would leave them alone.
SCOPES = (
    # Staging (read the job, write segments and the heartbeat) and output (create the video):
    # Cloud Storage's read-write scope. It also covers the worker image's pull: Artifact
    # Registry asks for the storage read-only scope to pull and read-write to push, per
    # https://cloud.google.com/artifact-registry/docs/integrate-compute ("Required permissions");
    # that read-write serves a pull too is inferred from that page, not seen on a VM.
    "https://www.googleapis.com/auth/devstorage.read_write",
    # The worker's lines through Docker's gcplogs driver (roles/logging.logWriter).
    "https://www.googleapis.com/auth/logging.write",
    # The self-delete (custom fastRenderVmSelfDelete role): compute.readonly cannot delete.
    "https://www.googleapis.com/auth/compute",
)


def instance_name(job_id: str, attempt: int, prefix: str | None = None) -> str:
    """Deterministic per job and attempt: ``VM_NAME_PREFIX<job>-a<attempt>`` (a-z0-9-, at most 63 characters).

    The prefix defaults to this process's config; load_config checks that the
    longest job id still fits.
    """
    if prefix is None:
        from functions import clients  # the process's cached config; here, as clients loads every client library

        prefix = clients.config().vm_name_prefix
    return f"{prefix}{job_id}-a{attempt}"


def request_id(name: str, zone: str, option: Option, pass_no: int, retry: int = 0) -> str:
    """The same insert (a redelivery) gets the same id, so Compute Engine returns the same operation.

    Another GPU or provisioning in the same zone, a later pass after a backoff,
    or a retry after a rate limit is a different request and must not be
    answered from the old one (GCE would return the same failed operation).
    """
    key = f"{zone}/{name}/{option.gpu}/{option.provisioning}/pass-{pass_no}" + (f"/retry-{retry}" if retry else "")
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, key))


def has_gpu(option: Option) -> bool:
    """Whether the option's VM has a GPU: a CPU-only option (catalog ``cpus:``) has no accelerator and count 0."""
    return bool(option.accelerator) and option.accelerator_count > 0


def on_host_maintenance(option: Option) -> str:
    """What GCE does to the VM when its host needs maintenance.

    A VM with GPUs cannot live-migrate, and for a Spot (preemptible) VM
    TERMINATE is "the default and only possible behavior" (compute v1
    ``Scheduling.onHostMaintenance``); "Set the host maintenance policy"
    (https://cloud.google.com/compute/docs/instances/setting-vm-host-options)
    lists "VMs that have GPUs attached" and "Spot VMs or preemptible VMs" among
    the instances that can only stop. A CPU-only on-demand VM may MIGRATE,
    GCE's default for a standard VM: a host's maintenance then does not cost
    the render (maxRunDuration and the DELETE action still apply: "Limit VM
    runtime" lists no restriction on the maintenance policy).
    """
    return "TERMINATE" if has_gpu(option) or option.provisioning == "spot" else "MIGRATE"


def build_instance(cfg: Config, job_id: str, attempt: int, name: str, option: Option, zone: str) -> compute_v1.Instance:
    spot, gpu = option.provisioning == "spot", has_gpu(option)
    metadata = {
        "startup-script": STARTUP_SCRIPT,
        "fast-render-job-id": job_id,
        "fast-render-attempt": str(attempt),
        "fast-render-staging-bucket": cfg.staging_bucket,
        "fast-render-output-bucket": cfg.output_bucket,
        "fast-render-instance": name,
        "fast-render-gpu": option.gpu,  # the option's name: a GPU's catalog key, or a CPU-only machine's
        # How many GPUs the VM has: "0" tells the startup script to wait for no driver and ask Docker for none.
        "fast-render-gpu-count": str(option.accelerator_count if gpu else 0),
        "fast-render-price-per-hour": str(option.price_per_hour),
        "fast-render-compute-api": cfg.compute_endpoint or "https://compute.googleapis.com",
        **worker_metadata(cfg, gpu=gpu),
    }
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{option.machine_type}",
        labels={layout.JOB_LABEL: job_id, layout.ATTEMPT_LABEL: str(attempt), layout.GPU_LABEL: option.gpu},
        tags=compute_v1.Tags(items=[cfg.vm_network_tag]),  # the deny-ingress firewall's target
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{option.accelerator}",
                accelerator_count=option.accelerator_count,
            )
        ] if gpu else [],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                # A CPU-only VM boots the CPU image: no CUDA, no driver install at first boot.
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=cfg.vm_image if gpu else cfg.vm_cpu_image, disk_size_gb=100),
            )
        ],
        # No access config: no external IP. The VM reaches Google APIs through
        # Private Google Access on its subnet (infra/terraform).
        network_interfaces=[network_interface(cfg, zone)],
        service_accounts=[compute_v1.ServiceAccount(email=cfg.vm_service_account, scopes=list(SCOPES))],
        scheduling=compute_v1.Scheduling(
            on_host_maintenance=on_host_maintenance(option),
            automatic_restart=False,
            provisioning_model="SPOT" if spot else "STANDARD",
            instance_termination_action="DELETE",
            # A hard ceiling besides the worker's self-delete: a stuck VM cannot bill forever.
            max_run_duration=compute_v1.Duration(seconds=cfg.vm_max_run_s),
        ),
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key=k, value=v) for k, v in metadata.items()]),
    )


def worker_metadata(cfg: Config, *, gpu: bool = True) -> dict[str, str]:
    """What the startup script runs: a command line (VM_WORKER_COMMAND) or, by default, the worker's image.

    The image runs on a Deep Learning VM image, whose ``install-nvidia-driver``
    metadata installs the NVIDIA driver at first boot (the script waits for it);
    a CPU-only VM has no GPU to drive, so it does not ask for the driver.
    """
    if cfg.vm_worker_command:
        return {"fast-render-worker-command": cfg.vm_worker_command}
    image = {"fast-render-worker-image": cfg.worker_image}
    return {**image, "install-nvidia-driver": "True"} if gpu else image


def network_interface(cfg: Config, zone: str) -> compute_v1.NetworkInterface:
    """The VM's only interface: no access config (no external IP), on VM_SUBNETWORK when set.

    A subnet is regional and the catalog's zones may span regions, so
    ``{region}`` in VM_SUBNETWORK is the zone's region
    (``regions/{region}/subnetworks/fast-render-vms``); a fixed subnet fits only
    the zones of its own region (Compute Engine refuses the others as invalid).
    """
    interface = compute_v1.NetworkInterface(network=cfg.vm_network)
    if cfg.vm_subnetwork:
        interface.subnetwork = cfg.vm_subnetwork.replace("{region}", region_of(zone))
    return interface
