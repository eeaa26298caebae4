"""A local stand-in for Compute Engine: instances whose startup script really runs.

    python -m infra.local.compute_server --port 8791 --project fast-render-local \\
        [--insert-delay-s 0] [--preempt-grace-s 1]

Each behaviour below models what Compute Engine is documented or publicly seen
to do, never what our product expects; ``docs/standins.md`` lists every
behaviour with its source. Laid out as moto lays out a service: the state in
``compute_models``, the error shapes in ``compute_errors`` (one table, code ->
HTTP status, synchronous or in the operation, message, details, source), fault
injection in ``compute_faults``, the routes and the service logic here.

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

* Insert returns a ``compute#operation``. The same ``requestId`` again returns
  the same operation and never a second instance; an existing name is a
  synchronous HTTP 409 ``alreadyExists``. The operation takes
  ``--insert-delay-s`` (or the ``insert_delay_s`` fault): meanwhile it is
  RUNNING and the instance PROVISIONING (GCE's insert operations take seconds:
  CCExtractor/sample-platform issue 901 shows one of 7 s). With no delay the
  operation is DONE in the reply; the client handles both.
* An insert that will fail in its operation leaves no instance to GET (404,
  googleapis/nodejs-compute issue 377), but its name stays taken until the
  operation ends. Refusals and their shapes: ``compute_errors``.
* A successful insert makes the instance RUNNING (PROVISIONING, STAGING,
  RUNNING in its history) and runs its ``startup-script`` metadata item with
  bash, as a child in its own process group. Its working directory is a fresh
  directory per instance (its "disk"); its environment is this server's plus
  ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` = that instance's own metadata
  server (see ``metadata_server``: one port per instance). Its stdout and
  stderr are the serial console (``getSerialPortOutput``).
* The instance stays RUNNING when its startup script exits: whoever wants it
  gone deletes it (or sets ``scheduling.maxRunDuration``).
* DELETE stops it (SIGTERM to its process group, SIGKILL after a short grace)
  and it disappears from get/list (404 ``notFound``); ``/_admin/instances``
  keeps it. DELETE of a PROVISIONING instance is a synchronous 400
  ``resourceNotReady`` (unknown for instances; GCE answers so for a resource
  still being created, opstrace/opstrace issue 1218: the harsher case).
* ``scheduling.maxRunDuration`` is honoured: after that many seconds the
  instance is stopped, and deleted when ``instanceTerminationAction`` is DELETE
  (otherwise left TERMINATED).
* Preemption (the ``preempt_after_s`` fault, or ``POST
  /_admin/instances/ZONE/NAME/preempt``), Spot or preemptible instances only:
  ``instance/preempted`` turns TRUE, a ``compute.instances.preempted``
  operation is recorded, the processes get SIGTERM, then SIGKILL after
  ``--preempt-grace-s`` (GCE gives a Spot VM 30 s), and the instance is
  TERMINATED, then deleted if its ``instanceTerminationAction`` is DELETE.
* A hung VM (the ``hang_after_s`` fault, or ``POST
  /_admin/instances/ZONE/NAME/hang``): its process group gets SIGSTOP and the
  instance stays RUNNING: GCE reports the VM's state, not the guest's health
  (unknown in detail: the harsher case). Deleting it kills it outright.

Fault injection and inspection, for tests (``/_admin/``; faults in ``compute_faults``):

* ``POST /_admin/faults`` replaces the faults, e.g. ``{"insert_errors":
  [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "zones": ["*"], "times": 2}],
  "insert_delay_s": 5, "hang_after_s": 30, "preempt_after_s": 60}``.
* ``POST /_admin/instances/ZONE/NAME/preempt`` and ``.../hang``: act on one live
  instance now; they answer its admin record.
* ``GET /_admin/faults``; ``POST /_admin/reset`` stops every instance and
  clears faults and history.
* ``GET /_admin/instances``: every instance ever created (not inserts refused
  without one), with labels, metadata keys, machine type, accelerators,
  scheduling, status history, the startup script's exit code, pid, disk and
  serial-log paths, and whether it was deleted, preempted or hung.
* ``GET /_admin/operations``: every operation, including failed inserts.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
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
    _signal_group,  # private, but one way to signal a process group is better than two
    spawn,
)
from infra.local.compute_errors import SYNC, TABLE, ErrorContext, ErrorShape, InsertRefused, operation_error
from infra.local.compute_faults import Faults
from infra.local.compute_models import (
    BASE_URL,
    ZONES,
    Instance,
    accelerator_types,
    accelerators,
    is_spot,
    short_machine_type,
)
from infra.local.metadata_server import InstanceView, MetadataServer

log = get_logger("local-compute")

NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# GCE gives a standard VM 120 s and a Spot VM 30 s between ACPI soft off and hard off
# (Scheduling.skipGuestOsShutdown in the compute v1 reference); locally short graces keep tests fast.
DELETE_GRACE_S = 2.0
PREEMPT_GRACE_S = 1.0
WAIT_OPERATION_S = 120.0  # zoneOperations.wait returns when DONE or after about 2 minutes (its reference)

OperationError = tuple[int, str, JsonDict]


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

    def __init__(
        self, project: str, host: str, insert_delay_s: float = 0.0, preempt_grace_s: float = PREEMPT_GRACE_S,
        root: str | None = None,
    ) -> None:
        self.project = project
        self.host = host
        self.insert_delay_s = insert_delay_s
        self.preempt_grace_s = preempt_grace_s
        if root:
            os.makedirs(root, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="local-gce-", dir=root)
        self.faults = Faults()
        self.live: dict[tuple[str, str], Instance] = {}  # (zone, name) -> instance that GET shows
        self.reserved: dict[tuple[str, str], Instance] = {}  # names held by inserts that will fail
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
        scheduling = spec.get("scheduling") or {}
        if accelerators(spec) and not is_spot(spec) and scheduling.get("onHostMaintenance", "MIGRATE") != "TERMINATE":
            # GCE's default is MIGRATE, which a GPU cannot do; Spot VMs only ever TERMINATE.
            # Sources: the message as quoted on https://cloud.google.com/dataflow/docs/guides/common-errors;
            # "VMs with GPUs ... must be set to stop" on .../compute/docs/instances/setting-vm-host-options;
            # Scheduling.OnHostMaintenance (compute v1): TERMINATE is the only behaviour of preemptible VMs.
            raise ApiError(400, "Instances with guest accelerators do not support live migration.", reason="invalid")
        with self.lock:
            if request_id and request_id in self.request_ids:
                return copy.deepcopy(self.operations[self.request_ids[request_id]])
            if (zone, name) in self.live or (zone, name) in self.reserved:
                message = f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists"
                raise ApiError(409, message, reason="alreadyExists")
            faults = self.faults
            refusal = faults.insert_error(zone, accelerator_types(spec))
            shape = TABLE[refusal[0]] if refusal else None
            ctx = ErrorContext(
                project=project,
                zone=zone,
                name=name,
                machine_type=short_machine_type(spec),
                accelerators=tuple(accelerators(spec)),
                spot=is_spot(spec),
                gpu=refusal[1] if refusal else None,
            )
            if shape is not None and shape.where == SYNC:
                log.info("instance insert refused", instance=name, zone=zone, code=shape.code)
                raise InsertRefused(shape, ctx)
            error = operation_error(shape, ctx) if shape is not None else None
            instance = self._new_instance(project, zone, spec, visible=shape is None or shape.leaves_instance)
            instance.hang_after_s, instance.preempt_after_s = faults.hang_after_s, faults.preempt_after_s
            operation = self._new_operation(zone, "insert", instance)
            if request_id:
                self.request_ids[request_id] = operation["name"]
            log.info(
                "instance insert", instance=name, zone=zone, operation=operation["name"], error=shape and shape.key
            )
        delay_s = self.insert_delay_s if faults.insert_delay_s is None else faults.insert_delay_s
        if delay_s > 0:
            _after(delay_s, self._complete_insert, instance, operation, shape, error)
        else:
            self._complete_insert(instance, operation, shape, error)
        with self.lock:
            return copy.deepcopy(operation)

    def _new_instance(self, project: str, zone: str, spec: JsonDict, visible: bool) -> Instance:
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
        # The name is taken while the insert runs, as on GCE; a doomed insert's instance is never shown.
        (self.live if visible else self.reserved)[(zone, name)] = instance
        return instance

    def _complete_insert(
        self, instance: Instance, operation: JsonDict, shape: ErrorShape | None, error: OperationError | None
    ) -> None:
        with self.lock:
            if instance.deleted:  # reset while the insert was pending
                return
            if shape is not None and error is not None:
                if shape.leaves_instance:  # preempted while being created: left TERMINATED, to be deleted
                    instance.preempted = True
                    instance.set_status("TERMINATED")
                    self.history.append(instance)
                else:
                    self.reserved.pop((instance.zone, instance.name), None)
                self._finish(operation, error)
                return
            instance.set_status("STAGING")
            instance.metadata = MetadataServer(self.host, lambda: self._view(instance))
            instance.set_status("RUNNING")
            self.history.append(instance)
            self._finish(operation)
        self._run_startup_script(instance)
        max_run_s = parse_duration_s(instance.scheduling.get("maxRunDuration"))
        if max_run_s is not None:
            _after(max_run_s, self._terminate, instance, "maxRunDuration")
        if instance.preempt_after_s is not None and is_spot(instance.spec):
            _after(instance.preempt_after_s, self._preempt, instance)
        if instance.hang_after_s is not None:
            _after(instance.hang_after_s, self._hang, instance)

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

    # ----------------------------------------------------------------- stop, delete, preempt, hang

    def _stop(self, instance: Instance, grace_s: float) -> None:
        """Kill the instance's processes and its metadata server; call without the lock.

        A hung (SIGSTOPped) guest runs no shutdown: it is killed at once.
        """
        if instance.proc is not None:
            kill_groups([instance.proc], 0 if instance.hung else grace_s)
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
        """Stop a RUNNING (or, when preempted, STOPPING) instance and apply its ``instanceTerminationAction``."""
        with self.lock:
            if instance.deleted or self.live.get((instance.zone, instance.name)) is not instance:
                return  # deleted, or being deleted
            if reason == "preempted":
                if instance.status != "STOPPING":  # _start_preemption set it
                    return
            elif instance.status != "RUNNING":
                return
            else:
                instance.set_status("STOPPING")
        self._stop(instance, self.preempt_grace_s if reason == "preempted" else DELETE_GRACE_S)
        with self.lock:
            if instance.deleted:  # deleted meanwhile
                return
            instance.set_status("TERMINATED")
            if instance.scheduling.get("instanceTerminationAction") == "DELETE":
                self._remove(instance)
            self.changed.notify_all()
        log.info("instance terminated", instance=instance.name, reason=reason, deleted=instance.deleted)

    def _start_preemption(self, instance: Instance) -> bool:
        """Mark a RUNNING Spot instance preempted and record GCE's operation; False if it cannot be."""
        with self.lock:
            if instance.deleted or instance.status != "RUNNING" or not is_spot(instance.spec):
                return False
            instance.preempted = True
            instance.set_status("STOPPING")
            self._finish(self._new_operation(instance.zone, "compute.instances.preempted", instance))
        log.info("instance preempted", instance=instance.name, zone=instance.zone)
        return True

    def _preempt(self, instance: Instance) -> None:
        if self._start_preemption(instance):
            self._terminate(instance, "preempted")

    def _hang(self, instance: Instance) -> bool:
        """Freeze the guest: SIGSTOP its process group. GCE goes on reporting RUNNING."""
        with self.lock:
            if instance.deleted or instance.status != "RUNNING" or instance.hung:
                return False
            instance.hung = True
            proc = instance.proc
        if proc is not None:
            _signal_group(proc, signal.SIGSTOP)
        log.info("instance hung", instance=instance.name, zone=instance.zone, pid=proc.pid if proc else None)
        return True

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

    def _admin_instance(self, req: Request) -> Instance:
        instance = self.live.get((req.params["zone"], req.params["instance"]))
        if instance is None:
            raise ApiError(404, "no live instance {instance} in {zone}".format(**req.params), reason="notFound")
        return instance

    def admin_preempt(self, req: Request) -> JsonDict:
        """Preempt one instance now, as the ``preempt_after_s`` fault would (Spot and preemptible only)."""
        with self.lock:
            instance = self._admin_instance(req)
            if not is_spot(instance.spec):
                message = f"{instance.name} is not a Spot or preemptible VM: GCE does not preempt it"
                raise ApiError(400, message, reason="invalid")
        if not self._start_preemption(instance):
            raise ApiError(409, f"{instance.name} is {instance.status}, not RUNNING", reason="resourceNotReady")
        threading.Thread(target=self._terminate, args=(instance, "preempted"), daemon=True).start()
        with self.lock:
            return instance.to_admin()

    def admin_hang(self, req: Request) -> JsonDict:
        """Freeze one RUNNING instance now, as the ``hang_after_s`` fault would."""
        with self.lock:
            instance = self._admin_instance(req)
        if not self._hang(instance):
            message = f"{instance.name} is {instance.status}, not RUNNING (or already hung)"
            raise ApiError(409, message, reason="resourceNotReady")
        with self.lock:
            return instance.to_admin()

    def reset(self, req: Request | None = None) -> JsonDict:
        """Stop every instance; forget faults, instances and operations."""
        with self.lock:
            running = [*self.live.values(), *self.reserved.values()]
            self.live.clear()
            self.reserved.clear()
            for instance in running:
                instance.deleted = True
        hung = [inst.proc for inst in running if inst.proc is not None and inst.hung]
        kill_groups(hung, 0)
        kill_groups([inst.proc for inst in running if inst.proc is not None and not inst.hung], DELETE_GRACE_S)
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
        admin_instance = "/_admin/instances/{zone}/{instance}"
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
            route("POST", f"{admin_instance}/preempt", self.admin_preempt),
            route("POST", f"{admin_instance}/hang", self.admin_hang),
            route("GET", "/_admin/operations", self.admin_operations),
        ]


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insert-delay-s",
        type=float,
        default=0.0,
        help="how long an insert operation stays RUNNING (the insert_delay_s fault overrides it)",
    )
    parser.add_argument(
        "--preempt-grace-s",
        type=float,
        default=PREEMPT_GRACE_S,
        help="SIGTERM-to-SIGKILL grace of a preempted instance (GCE: 30 s)",
    )
    parser.add_argument(
        "--root",
        default=None,
        help="where instances' disks and serial logs go (default: a temp dir). Kept after an instance is "
        "deleted, as Google's guest environment sends a startup script's output on to Cloud Logging "
        "(https://cloud.google.com/compute/docs/instances/startup-scripts/linux#viewing-output)",
    )


def main() -> None:
    args = server_args("A local stand-in for Compute Engine.", _flags)
    service = ComputeService(args.project, args.host, args.insert_delay_s, args.preempt_grace_s, root=args.root)
    server = ApiServer((args.host, args.port), service.routes())
    log.info("local compute engine starting", port=args.port, project=args.project, disks=service.root)
    serve(server, service.shutdown)


if __name__ == "__main__":
    main()
