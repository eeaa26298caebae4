"""The local Compute Engine's state: zones, what an instance spec asks for, one instance.

The service logic (routes, operations, process supervision) is in
``compute_server``; error shapes in ``compute_errors``; faults in
``compute_faults``. Sources for behaviour: ``docs/standins.md``.
"""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass, field
from typing import Any

from infra.local._http import JsonDict, project_number, rfc3339
from infra.local.metadata_server import InstanceView, MetadataServer

BASE_URL = "https://www.googleapis.com/compute/v1"
ZONES = (
    "us-central1-a",
    "us-central1-b",
    "us-central1-c",
    "us-central1-f",
    "us-east1-b",
    "us-east1-c",
    "us-east1-d",
    "us-east4-a",
    "us-east4-b",
    "us-east4-c",
    "us-east5-a",
    "us-west1-a",
    "us-west1-b",
    "us-west4-a",
    "us-west4-b",
    "europe-west1-b",
    "europe-west1-c",
    "europe-west1-d",
    "europe-west4-a",
    "europe-west4-b",
    "europe-west4-c",
    "asia-east1-a",
    "asia-east1-b",
    "asia-east1-c",
    "asia-northeast1-a",
    "asia-southeast1-b",
    "asia-southeast1-c",
)
# Machine families whose GPUs come with the machine type (no guestAccelerators).
MACHINE_FAMILY_GPUS = (
    ("g2-", "nvidia-l4"),
    ("a2-ultragpu", "nvidia-a100-80gb"),
    ("a2-", "nvidia-tesla-a100"),
    ("a3-", "nvidia-h100-80gb"),
)
# GCE's quota metric per accelerator type (the "NVIDIA_T4_GPUS" in its messages).
QUOTA_METRICS = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
}


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def short_machine_type(spec: JsonDict) -> str:
    return str(spec.get("machineType", "")).rsplit("/", 1)[-1]


def accelerators(spec: JsonDict) -> list[tuple[str, int]]:
    """(GPU type, count) an instance spec asks for, explicit or by machine family (count unknown: 1)."""
    found = [
        (str(acc.get("acceleratorType", "")).rsplit("/", 1)[-1], int(acc.get("acceleratorCount", 1) or 1))
        for acc in spec.get("guestAccelerators") or []
    ]
    machine = short_machine_type(spec)
    built_in = next((gpu for prefix, gpu in MACHINE_FAMILY_GPUS if machine.startswith(prefix)), "")
    if built_in:
        found.append((built_in, 1))
    return [(gpu, count) for gpu, count in found if gpu]


def accelerator_types(spec: JsonDict) -> list[str]:
    """GPU types an instance spec asks for (``nvidia-tesla-t4``...)."""
    return [gpu for gpu, _ in accelerators(spec)]


def is_spot(spec: JsonDict) -> bool:
    scheduling = spec.get("scheduling") or {}
    return scheduling.get("provisioningModel") == "SPOT" or bool(scheduling.get("preemptible"))


def quota_metric(gpu: str, spot: bool) -> str:
    metric = QUOTA_METRICS.get(gpu) or gpu.upper().replace("-", "_").replace("NVIDIA_TESLA_", "NVIDIA_") + "_GPUS"
    return f"PREEMPTIBLE_{metric}" if spot else metric


@dataclass
class Instance:
    """One instance, live or deleted, and what runs on it."""

    project: str
    zone: str
    name: str
    instance_id: str
    spec: JsonDict
    disk_dir: str
    serial_log: str
    created: str = field(default_factory=rfc3339)
    status: str = "PROVISIONING"
    history: list[JsonDict] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    metadata: MetadataServer | None = None
    deleted: bool = False
    preempted: bool = False
    hung: bool = False  # its processes were SIGSTOPped: a frozen guest that GCE still reports RUNNING
    hang_after_s: float | None = None  # the fault as it was when the instance was inserted
    preempt_after_s: float | None = None

    def __post_init__(self) -> None:
        self.history.append({"status": self.status, "time": self.created})

    def set_status(self, status: str) -> None:
        self.status = status
        self.history.append({"status": status, "time": rfc3339()})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec.get("labels") or {})

    @property
    def attributes(self) -> dict[str, str]:
        items = (self.spec.get("metadata") or {}).get("items") or []
        return {item["key"]: item.get("value", "") for item in items if "key" in item}

    @property
    def scheduling(self) -> JsonDict:
        return dict(self.spec.get("scheduling") or {})

    @property
    def self_link(self) -> str:
        return f"{BASE_URL}/projects/{self.project}/zones/{self.zone}/instances/{self.name}"

    def view(self) -> InstanceView:
        """What its metadata server shows (read on every metadata request)."""
        return InstanceView(
            name=self.name,
            instance_id=self.instance_id,
            zone=self.zone,
            project_id=self.project,
            project_number=project_number(self.project),
            machine_type=short_machine_type(self.spec),
            attributes=self.attributes,
            preemptible=is_spot(self.spec),
            preempted=self.preempted,
            **_service_account(self.spec),
        )

    def to_api(self) -> JsonDict:
        """The ``compute#instance`` resource: the request echoed, plus GCE's output fields."""
        body = copy.deepcopy(self.spec)
        machine = str(body.get("machineType", ""))
        if not machine.startswith("http"):
            machine = f"{BASE_URL}/projects/{self.project}/" + (
                machine if machine.startswith("zones/") else f"zones/{self.zone}/machineTypes/{machine}"
            )
        scheduling = {"provisioningModel": "SPOT" if is_spot(self.spec) else "STANDARD", **self.scheduling}
        metadata = {"kind": "compute#metadata", "fingerprint": "bG9jYWw=", **(body.get("metadata") or {})}
        body.update(
            kind="compute#instance",
            id=self.instance_id,
            name=self.name,
            zone=f"{BASE_URL}/projects/{self.project}/zones/{self.zone}",
            machineType=machine,
            status=self.status,
            selfLink=self.self_link,
            creationTimestamp=self.created,
            scheduling=scheduling,
            metadata=metadata,
        )
        return body

    def to_admin(self) -> JsonDict:
        return {
            "name": self.name,
            "zone": self.zone,
            "project": self.project,
            "id": self.instance_id,
            "labels": self.labels,
            "metadata_keys": sorted(self.attributes),
            "machineType": short_machine_type(self.spec),
            "guestAccelerators": self.spec.get("guestAccelerators") or [],
            "scheduling": self.scheduling,
            "status": self.status,
            "status_history": list(self.history),
            "startup_script_exit_code": self.exit_code,
            "pid": self.proc.pid if self.proc else None,
            "deleted": self.deleted,
            "preempted": self.preempted,
            "hung": self.hung,
            "disk_dir": self.disk_dir,
            "serial_log": self.serial_log,
        }


def _service_account(spec: JsonDict) -> dict[str, Any]:
    """The instance's identity and scopes as its insert gave them (an instance without one: the defaults)."""
    accounts = spec.get("serviceAccounts") or []
    if not accounts:
        return {}
    first = accounts[0]
    return {"service_account": str(first.get("email") or "default"), "scopes": tuple(first.get("scopes") or ())}
