"""A local stand-in for Compute Engine: instances whose startup script really runs.

    python -m infra.local.compute_server --port 8791 --project fast-render-local

It serves the subset of the compute v1 REST API that
``google.cloud.compute_v1`` (``InstancesClient``, ``ZoneOperationsClient``,
``ZonesClient``) uses, so the official client works against it with
``client_options={"api_endpoint": "http://127.0.0.1:8791"}`` and
``AnonymousCredentials()``:

* ``POST   /compute/v1/projects/P/zones/Z/instances[?requestId=R]`` -> operation
* ``GET    /compute/v1/projects/P/zones/Z/instances[?filter=...]``, ``.../instances/NAME``,
  ``.../instances/NAME/serialPort``, ``DELETE .../instances/NAME`` -> operation
* ``GET    /compute/v1/projects/P/aggregated/instances``
* ``GET    /compute/v1/projects/P/zones/Z/operations[/OP]``, ``POST .../operations/OP/wait``
* ``GET    /compute/v1/projects/P/zones[/Z]``

How an instance behaves:

* Insert returns a ``compute#operation``. Like GCE, the same ``requestId`` again
  returns the same operation and never a second instance; an existing name is
  a synchronous HTTP 409 ``alreadyExists``. Without ``insert_delay_s`` the
  operation is already DONE in the reply (GCE's is RUNNING at first; the
  client's ``.result()`` handles both).
* A successful insert makes the instance RUNNING (PROVISIONING, STAGING,
  RUNNING in its history) and runs its ``startup-script`` metadata item with
  bash, as a child in its own process group. Its working directory is a fresh
  directory per instance (its "disk"); its environment is this server's plus
  ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` = that instance's own metadata
  server (see ``metadata_server``: one port per instance). Its stdout and
  stderr are the serial console (``getSerialPortOutput``).
* As on GCE, the instance stays RUNNING when its startup script exits: whoever
  wants it gone deletes it (or sets ``scheduling.maxRunDuration``).
* DELETE stops it (SIGTERM to its process group, SIGKILL after a short grace)
  and it disappears from get/list (404 ``notFound``); ``/_admin/instances``
  keeps it.
* ``scheduling.maxRunDuration`` is honoured: after that many seconds the
  instance is stopped, and deleted when ``instanceTerminationAction`` is DELETE
  (otherwise left TERMINATED).
* ``scheduling.provisioningModel: SPOT`` (or ``preemptible``) instances are
  preempted when the ``preempt_after_s`` fault is set: ``instance/preempted``
  turns TRUE, a ``compute.instances.preempted`` operation is recorded, the
  processes get SIGTERM then SIGKILL, and the instance is TERMINATED, then
  deleted if its ``instanceTerminationAction`` is DELETE.

Errors in an insert operation mirror what GCE puts there (``error.errors[]``
with ``code``/``message``/``errorDetails``, plus ``httpErrorStatusCode`` and
``httpErrorMessage``), so ``insert(...).result()`` raises the client's real
exception (``ServiceUnavailable`` for a stockout, ``Forbidden`` for quota)
whose ``.errors[0].code`` is GCE's code:

* ``ZONE_RESOURCE_POOL_EXHAUSTED`` (503): "The zone 'projects/P/zones/Z' does
  not have enough resources available to fulfill the request.  Try a different
  zone, or try again later." ``ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS`` (the
  variant GCE returns more often nowadays) ends in "'(resource type:compute)'."
  and carries an ``errorInfo`` detail.
* ``QUOTA_EXCEEDED`` (403): "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in
  region us-central1." with a ``quotaInfo`` detail (``PREEMPTIBLE_...`` for
  Spot), or "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally."

Fault injection and inspection, for tests (``/_admin/``):

* ``POST /_admin/faults`` replaces the faults with a JSON object (unknown keys
  are a 400)::

      {"stockout_zones": ["us-central1-a"], "stockout_with_details": false,
       "quota_exceeded": [{"region": "us-central1", "gpu": "nvidia-l4"}],  # gpu "*" = any GPU
       "gpus_all_regions": ["nvidia-tesla-t4"],                             # "*" = any GPU
       "preempt_after_s": 5, "insert_delay_s": 0, "permission_denied": false}

  A GPU is read from ``guestAccelerators`` and from the machine family that
  carries one (g2 = L4, a2 = A100, a3 = H100). ``preempt_after_s`` and the
  other faults apply to inserts made after they are set.
* ``GET /_admin/faults``; ``POST /_admin/reset`` stops every instance and
  clears faults and history.
* ``GET /_admin/instances``: every instance ever created (not failed inserts),
  with labels, metadata keys, machine type, accelerators, scheduling, status
  history with timestamps, the startup script's exit code, pid, disk and
  serial-log paths, and whether it was deleted or preempted.
* ``GET /_admin/operations``: every operation, including failed inserts.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.logs import get_logger
from infra.local._http import (
    ApiError,
    ApiServer,
    JsonDict,
    Request,
    Route,
    exit_status,
    kill_groups,
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
from infra.local.metadata_server import InstanceView, MetadataServer

log = get_logger("local-compute")

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
NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
DELETE_GRACE_S = 2.0  # GCE gives a shutdown script ~90 s; locally a short grace keeps tests fast
PREEMPT_GRACE_S = 1.0  # GCE gives a preempted VM 30 s
WAIT_OPERATION_S = 120.0  # GCE's operations.wait returns after at most 2 minutes


# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Injected failures; see the module docstring for their meaning."""

    stockout_zones: list[str] = field(default_factory=list)
    stockout_with_details: bool = False
    quota_exceeded: list[dict[str, str]] = field(default_factory=list)
    gpus_all_regions: list[str] = field(default_factory=list)
    preempt_after_s: float | None = None
    insert_delay_s: float = 0.0
    permission_denied: bool = False  # every insert gets GCE's synchronous 403 "forbidden"

    @classmethod
    def from_json(cls, body: JsonDict) -> Faults:
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApiError(400, f"unknown fault keys: {sorted(unknown)}", reason="invalid")
        faults = cls(**body)
        for rule in faults.quota_exceeded:
            if set(rule) != {"region", "gpu"}:
                raise ApiError(400, f"quota_exceeded rules need exactly region and gpu: {rule}", reason="invalid")
        return faults

    def to_json(self) -> JsonDict:
        return dict(self.__dict__)


def accelerator_types(spec: JsonDict) -> list[str]:
    """GPU types an instance spec asks for (``nvidia-tesla-t4``...), explicit or by machine family."""
    gpus = [acc.get("acceleratorType", "").rsplit("/", 1)[-1] for acc in spec.get("guestAccelerators") or []]
    machine = short_machine_type(spec)
    built_in = next((gpu for prefix, gpu in MACHINE_FAMILY_GPUS if machine.startswith(prefix)), "")
    return [gpu for gpu in [*gpus, built_in] if gpu]


def short_machine_type(spec: JsonDict) -> str:
    return str(spec.get("machineType", "")).rsplit("/", 1)[-1]


def is_spot(spec: JsonDict) -> bool:
    scheduling = spec.get("scheduling") or {}
    return scheduling.get("provisioningModel") == "SPOT" or bool(scheduling.get("preemptible"))


def _quota_metric(gpu: str, spot: bool) -> str:
    metric = QUOTA_METRICS.get(gpu) or gpu.upper().replace("-", "_").replace("NVIDIA_TESLA_", "NVIDIA_") + "_GPUS"
    return f"PREEMPTIBLE_{metric}" if spot else metric


def quota_error(metric: str, region: str | None) -> tuple[int, str, JsonDict]:
    """GCE's QUOTA_EXCEEDED operation error; ``region`` None is a global quota."""
    where = f"in region {region}" if region else "globally"
    scope = "per-project-region" if region else "per-project"
    detail = {
        "quotaInfo": {
            "metricName": f"compute.googleapis.com/{metric.lower()}",
            "limitName": f"{metric.replace('_', '-')}-{scope}",
            "dimensions": {"region": region} if region else {},
            "limit": 0,
        }
    }
    message = f"Quota '{metric}' exceeded.  Limit: 0.0 {where}."
    return 403, "FORBIDDEN", {"code": "QUOTA_EXCEEDED", "message": message, "errorDetails": [detail]}


def stockout_error(project: str, zone: str, spec: JsonDict, with_details: bool) -> tuple[int, str, JsonDict]:
    """GCE's stockout operation error, in its plain or ``_WITH_DETAILS`` form."""
    where = (
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill the request."
    )
    if not with_details:
        message = f"{where}  Try a different zone, or try again later."
        return 503, "SERVICE UNAVAILABLE", {"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": message}
    info = {
        "reason": "resource_availability",
        "domain": "compute.googleapis.com",
        "metadatas": {"zone": zone, "vmType": short_machine_type(spec)},
    }
    error = {
        "code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "message": f"{where}  '(resource type:compute)'.",
        "errorDetails": [{"errorInfo": info}],
    }
    return 503, "SERVICE UNAVAILABLE", error


# --------------------------------------------------------------------------- instances


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
            "disk_dir": self.disk_dir,
            "serial_log": self.serial_log,
        }


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as log_file:
        log_file.write(text)


def _after(delay_s: float, func: Callable[..., None], *args: Any) -> None:
    timer = threading.Timer(delay_s, func, args)
    timer.daemon = True
    timer.start()


# --------------------------------------------------------------------------- the service


class ComputeService:
    """The state of the local Compute Engine and the logic behind each route."""

    def __init__(self, project: str, host: str) -> None:
        self.project = project
        self.host = host
        self.root = tempfile.mkdtemp(prefix="local-gce-")
        self.faults = Faults()
        self.live: dict[tuple[str, str], Instance] = {}  # (zone, name) -> instance
        self.history: list[Instance] = []
        self.operations: dict[str, JsonDict] = {}
        self.request_ids: dict[str, str] = {}  # requestId -> operation name
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)

    # ----------------------------------------------------------------- checks

    def _check_scope(self, project: str, zone: str | None = None) -> None:
        if project not in (self.project, project_number(self.project)):
            raise ApiError(404, f"The resource 'projects/{project}' was not found", reason="notFound")
        if zone is not None and zone not in ZONES:
            raise ApiError(400, f"Invalid value for field 'zone': '{zone}'. Unknown zone.", reason="invalid")

    def _live(self, project: str, zone: str, name: str) -> Instance:
        self._check_scope(project, zone)
        instance = self.live.get((zone, name))
        if instance is None:
            message = f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found"
            raise ApiError(404, message, reason="notFound")
        return instance

    # ----------------------------------------------------------------- operations

    def _new_operation(self, zone: str, op_type: str, instance: Instance) -> JsonDict:
        now = rfc3339()
        name = (
            f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}"
        )
        operation = {
            "kind": "compute#operation",
            "id": str(uuid.uuid4().int % 10**19),
            "name": name,
            "zone": f"{BASE_URL}/projects/{self.project}/zones/{zone}",
            "operationType": op_type,
            "targetLink": instance.self_link,
            "targetId": instance.instance_id,
            "status": "RUNNING",
            "user": "local@fast-render",
            "progress": 0,
            "insertTime": now,
            "startTime": now,
            "selfLink": f"{BASE_URL}/projects/{self.project}/zones/{zone}/operations/{name}",
        }
        self.operations[name] = operation
        return operation

    def _finish(self, operation: JsonDict, error: tuple[int, str, JsonDict] | None = None) -> None:
        operation.update(status="DONE", progress=100, endTime=rfc3339())
        if error:
            http_code, http_message, detail = error
            operation.update(error={"errors": [detail]}, httpErrorStatusCode=http_code, httpErrorMessage=http_message)
        self.changed.notify_all()

    def get_operation(self, req: Request) -> JsonDict:
        self._check_scope(req.params["project"], req.params["zone"])
        with self.lock:
            operation = self.operations.get(req.params["operation"])
            if operation is None or not operation["zone"].endswith(f"/zones/{req.params['zone']}"):
                path = "projects/{project}/zones/{zone}/operations/{operation}".format(**req.params)
                message = f"The resource '{path}' was not found"
                raise ApiError(404, message, reason="notFound")
            return copy.deepcopy(operation)

    def wait_operation(self, req: Request) -> JsonDict:
        """``operations.wait``: returns when DONE, or after at most 2 minutes, like GCE."""
        deadline = time.monotonic() + WAIT_OPERATION_S
        with self.lock:
            while self.get_operation(req)["status"] != "DONE" and time.monotonic() < deadline:
                self.changed.wait(timeout=max(0.0, deadline - time.monotonic()))
            return self.get_operation(req)

    def list_operations(self, req: Request) -> JsonDict:
        self._check_scope(req.params["project"], req.params["zone"])
        suffix = f"/zones/{req.params['zone']}"
        with self.lock:
            items = [copy.deepcopy(op) for op in self.operations.values() if op["zone"].endswith(suffix)]
        return {"kind": "compute#operationList", "items": items}

    # ----------------------------------------------------------------- insert

    def insert(self, req: Request) -> JsonDict:
        project, zone = req.params["project"], req.params["zone"]
        self._check_scope(project, zone)
        spec, request_id = req.body, req.query.get("requestId")
        name = str(spec.get("name", ""))
        if not NAME_RE.match(name):
            pattern = "(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)"
            message = f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex '{pattern}'"
            raise ApiError(400, message, reason="invalid")
        if not spec.get("machineType"):
            raise ApiError(
                400, "Invalid value for field 'resource.machineType': ''. Machine type is required.", reason="invalid"
            )
        if self.faults.permission_denied:
            message = f"Required 'compute.instances.create' permission for 'projects/{project}/zones/{zone}/instances/{name}'"
            raise ApiError(403, message, reason="forbidden")
        with self.lock:
            if request_id and request_id in self.request_ids:
                return copy.deepcopy(self.operations[self.request_ids[request_id]])
            if (zone, name) in self.live:
                message = f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists"
                raise ApiError(409, message, reason="alreadyExists")
            instance = self._new_instance(project, zone, spec)
            operation = self._new_operation(zone, "insert", instance)
            if request_id:
                self.request_ids[request_id] = operation["name"]
            faults = self.faults
            error = self._insert_error(project, zone, spec, faults)
            log.info(
                "instance insert",
                instance=name,
                zone=zone,
                operation=operation["name"],
                error=error[2]["code"] if error else None,
            )
        if faults.insert_delay_s > 0:
            _after(faults.insert_delay_s, self._complete_insert, instance, operation, error)
        else:
            self._complete_insert(instance, operation, error)
        with self.lock:
            return copy.deepcopy(operation)

    def _new_instance(self, project: str, zone: str, spec: JsonDict) -> Instance:
        name = spec["name"]
        instance_id = str(uuid.uuid4().int % 10**19)
        home = os.path.join(self.root, f"{name}-{instance_id}")
        os.makedirs(os.path.join(home, "disk"))
        open(os.path.join(home, "serial-port-1.log"), "w").close()
        instance = Instance(
            project,
            zone,
            name,
            instance_id,
            copy.deepcopy(spec),
            disk_dir=os.path.join(home, "disk"),
            serial_log=os.path.join(home, "serial-port-1.log"),
        )
        self.live[(zone, name)] = instance  # the name is taken while the insert runs, as on GCE
        return instance

    def _insert_error(
        self, project: str, zone: str, spec: JsonDict, faults: Faults
    ) -> tuple[int, str, JsonDict] | None:
        """The injected failure this insert meets, if any: global quota, regional quota, stockout."""
        region = zone.rsplit("-", 1)[0]
        gpus, spot = accelerator_types(spec), is_spot(spec)
        for gpu in gpus:
            if gpu in faults.gpus_all_regions or "*" in faults.gpus_all_regions:
                return quota_error("GPUS_ALL_REGIONS", None)
        for rule in faults.quota_exceeded:
            for gpu in gpus:
                if rule["region"] in (region, "*") and rule["gpu"] in (gpu, "*"):
                    return quota_error(_quota_metric(gpu, spot), region)
        if zone in faults.stockout_zones:
            return stockout_error(project, zone, spec, faults.stockout_with_details)
        return None

    def _complete_insert(
        self, instance: Instance, operation: JsonDict, error: tuple[int, str, JsonDict] | None
    ) -> None:
        with self.lock:
            if instance.deleted:  # reset while the insert was pending
                return
            if error:
                self.live.pop((instance.zone, instance.name), None)
                self._finish(operation, error)
                return
            instance.set_status("STAGING")
            instance.metadata = MetadataServer(self.host, lambda: self._view(instance))
            instance.set_status("RUNNING")
            self.history.append(instance)
            self._finish(operation)
            preempt_after_s = self.faults.preempt_after_s
        self._run_startup_script(instance)
        max_run_s = parse_duration_s(instance.scheduling.get("maxRunDuration"))
        if max_run_s is not None:
            _after(max_run_s, self._terminate, instance, "maxRunDuration")
        if preempt_after_s is not None and is_spot(instance.spec):
            _after(preempt_after_s, self._preempt, instance)

    def _view(self, instance: Instance) -> InstanceView:
        with self.lock:
            return instance.view()

    def _run_startup_script(self, instance: Instance) -> None:
        script = instance.attributes.get("startup-script")
        _append(instance.serial_log, f"local-gce: instance {instance.name} is RUNNING\n")
        if script is None:
            return
        path = os.path.join(os.path.dirname(instance.disk_dir), "startup-script")
        with open(path, "w", encoding="utf-8") as script_file:
            script_file.write(script)
        assert instance.metadata is not None
        env = {
            **os.environ,
            "GCE_METADATA_HOST": instance.metadata.address,
            "GCE_METADATA_IP": instance.metadata.address,
        }
        with self.lock:
            instance.proc = spawn(["bash", path], cwd=instance.disk_dir, env=env, log_path=instance.serial_log)
        log.info("startup script started", instance=instance.name, pid=instance.proc.pid)
        threading.Thread(target=self._await_script, args=(instance, instance.proc), daemon=True).start()

    def _await_script(self, instance: Instance, proc: subprocess.Popen) -> None:
        code = exit_status(proc.wait())
        with self.lock:
            instance.exit_code = code
        _append(instance.serial_log, f"local-gce: startup-script exit status {code}\n")
        log.info("startup script exited", instance=instance.name, exit_code=code)

    # ----------------------------------------------------------------- stop, delete, preempt

    def _stop(self, instance: Instance, grace_s: float) -> None:
        """Kill the instance's processes and its metadata server; call without the lock."""
        if instance.proc is not None:
            kill_groups([instance.proc], grace_s)
        if instance.metadata is not None:
            instance.metadata.stop()

    def _remove(self, instance: Instance) -> None:
        if instance.status != "TERMINATED":
            instance.set_status("TERMINATED")
        instance.deleted = True
        if self.live.get((instance.zone, instance.name)) is instance:
            del self.live[(instance.zone, instance.name)]

    def delete(self, req: Request) -> JsonDict:
        with self.lock:
            instance = self._live(req.params["project"], req.params["zone"], req.params["instance"])
            if instance.status == "PROVISIONING":
                raise ApiError(400, f"The resource '{instance.self_link}' is not ready", reason="resourceNotReady")
            del self.live[(instance.zone, instance.name)]
            operation = self._new_operation(instance.zone, "delete", instance)
            if instance.status != "TERMINATED":
                instance.set_status("STOPPING")
        self._stop(instance, DELETE_GRACE_S)
        with self.lock:
            self._remove(instance)
            self._finish(operation)
            log.info("instance deleted", instance=instance.name, zone=instance.zone)
            return copy.deepcopy(operation)

    def _terminate(self, instance: Instance, reason: str) -> None:
        """Stop a RUNNING instance and apply its ``instanceTerminationAction``."""
        with self.lock:
            if instance.deleted or instance.status != "RUNNING":
                return
            instance.set_status("STOPPING")
        self._stop(instance, PREEMPT_GRACE_S if reason == "preempted" else DELETE_GRACE_S)
        with self.lock:
            instance.set_status("TERMINATED")
            if instance.scheduling.get("instanceTerminationAction") == "DELETE":
                self._remove(instance)
            self.changed.notify_all()
        log.info("instance terminated", instance=instance.name, reason=reason, deleted=instance.deleted)

    def _preempt(self, instance: Instance) -> None:
        with self.lock:
            if instance.deleted or instance.status != "RUNNING":
                return
            instance.preempted = True
            self._finish(self._new_operation(instance.zone, "compute.instances.preempted", instance))
        self._terminate(instance, "preempted")

    # ----------------------------------------------------------------- reads

    def get(self, req: Request) -> JsonDict:
        with self.lock:
            return self._live(req.params["project"], req.params["zone"], req.params["instance"]).to_api()

    def _filtered(self, instances: list[Instance], expression: str) -> list[JsonDict]:
        clauses = parse_filter(expression)

        def fields(instance: Instance) -> Callable[[str], str | None]:
            def read(name: str) -> str | None:
                if name.startswith("labels."):
                    return instance.labels.get(name[len("labels.") :])
                value = instance.to_api().get(name)
                return None if value is None else str(value)

            return read

        return [inst.to_api() for inst in instances if matches_filter(clauses, fields(inst))]

    def list_instances(self, req: Request) -> JsonDict:
        project, zone = req.params["project"], req.params["zone"]
        self._check_scope(project, zone)
        with self.lock:
            in_zone = [inst for (z, _), inst in self.live.items() if z == zone]
            items = self._filtered(in_zone, req.query.get("filter", ""))
        return {"kind": "compute#instanceList", "id": f"projects/{project}/zones/{zone}/instances", "items": items}

    def aggregated_list(self, req: Request) -> JsonDict:
        self._check_scope(req.params["project"])
        scopes: dict[str, JsonDict] = {}
        with self.lock:
            for instance in self._filtered(list(self.live.values()), req.query.get("filter", "")):
                zone = instance["zone"].rsplit("/", 1)[-1]
                scopes.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(instance)
        return {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{self.project}/aggregated/instances",
            "items": scopes,
        }

    def serial_port(self, req: Request) -> JsonDict:
        with self.lock:
            instance = self._live(req.params["project"], req.params["zone"], req.params["instance"])
        start = int(req.query.get("start") or 0)
        with open(instance.serial_log, "rb") as serial:
            serial.seek(start)
            contents = serial.read()
        return {
            "kind": "compute#serialPortOutput",
            "contents": contents.decode("utf-8", "replace"),
            "start": str(start),
            "next": str(start + len(contents)),
            "selfLink": f"{instance.self_link}/serialPort",
        }

    def _zone(self, project: str, zone: str) -> JsonDict:
        region = zone.rsplit("-", 1)[0]
        return {
            "kind": "compute#zone",
            "id": str(2000 + ZONES.index(zone)),
            "name": zone,
            "description": zone,
            "status": "UP",
            "region": f"{BASE_URL}/projects/{project}/regions/{region}",
            "selfLink": f"{BASE_URL}/projects/{project}/zones/{zone}",
            "availableCpuPlatforms": ["Intel Cascade Lake"],
        }

    def list_zones(self, req: Request) -> JsonDict:
        self._check_scope(req.params["project"])
        return {"kind": "compute#zoneList", "items": [self._zone(req.params["project"], zone) for zone in ZONES]}

    def get_zone(self, req: Request) -> JsonDict:
        self._check_scope(req.params["project"], req.params["zone"])
        return self._zone(req.params["project"], req.params["zone"])

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

    def admin_instances(self, req: Request) -> JsonDict:
        with self.lock:
            return {"instances": [instance.to_admin() for instance in self.history]}

    def admin_operations(self, req: Request) -> JsonDict:
        with self.lock:
            return {"operations": copy.deepcopy(list(self.operations.values()))}

    def reset(self, req: Request | None = None) -> JsonDict:
        """Stop every instance; forget faults, instances and operations."""
        with self.lock:
            running = list(self.live.values())
            self.live.clear()
            for instance in running:
                instance.deleted = True
        kill_groups([inst.proc for inst in running if inst.proc is not None], DELETE_GRACE_S)
        for instance in running:
            if instance.metadata is not None:
                instance.metadata.stop()
        with self.lock:
            self.faults = Faults()
            self.history.clear()
            self.operations.clear()
            self.request_ids.clear()
        return {}

    def shutdown(self) -> None:
        self.reset()
        shutil.rmtree(self.root, ignore_errors=True)

    def routes(self) -> list[Route]:
        zone = "/compute/v1/projects/{project}/zones/{zone}"
        return [
            route("POST", f"{zone}/instances", self.insert),
            route("GET", f"{zone}/instances", self.list_instances),
            route("GET", f"{zone}/instances/{{instance}}", self.get),
            route("DELETE", f"{zone}/instances/{{instance}}", self.delete),
            route("GET", f"{zone}/instances/{{instance}}/serialPort", self.serial_port),
            route("GET", f"{zone}/operations", self.list_operations),
            route("GET", f"{zone}/operations/{{operation}}", self.get_operation),
            route("POST", f"{zone}/operations/{{operation}}/wait", self.wait_operation),
            route("GET", zone, self.get_zone),
            route("GET", "/compute/v1/projects/{project}/zones", self.list_zones),
            route("GET", "/compute/v1/projects/{project}/aggregated/instances", self.aggregated_list),
            route("GET", "/_admin/faults", self.get_faults),
            route("POST", "/_admin/faults", self.set_faults),
            route("POST", "/_admin/reset", self.reset),
            route("GET", "/_admin/instances", self.admin_instances),
            route("GET", "/_admin/operations", self.admin_operations),
        ]


def main() -> None:
    args = server_args("A local stand-in for Compute Engine.")
    service = ComputeService(args.project, args.host)
    server = ApiServer((args.host, args.port), service.routes())
    log.info("local compute engine starting", port=args.port, project=args.project, disks=service.root)
    serve(server, service.shutdown)


if __name__ == "__main__":
    main()
