"""Where the functions run, for ``avmonitor health``: how it finds and probes them.

Locally (``_LocalCloud``), from the local cloud's state file
(``$LOCAL_CLOUD_STATE_DIR``, else ``.local-cloud``, ``cloud.json``): the
processes it records, whether they run and answer on their ports, and their
environment read from ``/proc``. In the cloud (``_CloudFunctions``), through the
Cloud Functions v2 API (package ``google-cloud-functions``): deployed, ACTIVE
(an event function is pushed to by its own subscription, which the Pub/Sub
checks find; it has no event trigger), and the deployed environment. ``_runtime``
picks the one this environment's Pub/Sub endpoint belongs to.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from google.api_core import exceptions
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import pubsub_v1

from functions import clients
from functions.config import Config
from infra.local.topology import Notification, Topology, load_topology
from operators.health_model import _UNREACHABLE, RESTART, Check, _Bad, _exists, _probe, _reason


class _LocalCloud:
    """The local cloud recorded in a state file (``infra/local/cloud.py``): its processes and their environment."""

    def __init__(self, state: dict[str, Any], state_dir: Path) -> None:
        self.state_dir = state_dir
        self.records = {record.name: record for record in state["processes"]}

    def _process(self, component: str, name: str, process: str, role: str) -> Check:
        from infra.local.cloud import is_running

        record = self.records.get(process)
        if record is None or not is_running(record):
            pid = f" (pid {record.pid})" if record else ""
            return Check(component, name, False, f"stopped: the local cloud's {process} process{pid} is not running ({role})", RESTART)
        if record.port is not None and not _port_answers(record.port):
            return Check(component, name, False, f"{process} (pid {record.pid}) does not answer on port {record.port}; "
                         f"log {record.log}", f"look at {record.log}; if it stays so, {RESTART}")
        return Check(component, name, True, f"running (pid {record.pid}{f', port {record.port}' if record.port else ''}): {role}")

    def functions(self, topology: Topology, timeout_s: float) -> Iterator[Check]:
        from infra.local.cloud import function_pid_file, function_process
        from infra.local.supervise import read_pid

        topics = {f.name: f.topic for f in topology.functions}
        for function in topology.function_names:
            role = f"pushed from {topics[function]}" if function in topics else "called over HTTP"
            check = self._process("functions", f"function {function}", function_process(function), role)
            child, record = read_pid(function_pid_file(self.state_dir, function)), self.records.get(function_process(function))
            if check.ok and (child is None or not _alive(child)):  # the supervisor runs, its child does not (yet)
                check = Check("functions", check.name, False, f"no functions-framework process (restarting?); log {record.log}",
                              f"look at {record.log}; if it stays down, {RESTART}")
            elif check.ok:
                check = Check("functions", check.name, True, f"running (pid {child}, port {record.port}): {role}")
            yield check
        yield self._process("functions", "push relay", "relay", "every push subscription delivers through it")

    def notification(self, name: str, note: Notification, topology: Topology, timeout_s: float) -> Check:
        """The router's emulation of a notification config (fake-gcs-server serves no notificationConfigs)."""
        from infra.local.emulators import GCS_EVENTS_SUBSCRIPTION, GCS_EVENTS_TOPIC

        routed = self._process("storage", name, "router", "it emulates the notification configs")
        if not routed.ok:
            return routed
        router, gcs = self.records["router"], self.records.get("gcs")
        argv = list(router.argv)
        path = Path(argv[argv.index("--topology") + 1]) if "--topology" in argv else None
        if path is not None and note not in load_topology(topology.project, path).notifications:
            return Check("storage", name, False, f"the router routes by {path}, which does not declare it", RESTART)
        if gcs is None or GCS_EVENTS_TOPIC not in gcs.argv:
            return Check("storage", name, False, f"fake-gcs-server does not publish its events to {GCS_EVENTS_TOPIC}", RESTART)
        publisher, subscriber = clients.publisher(), pubsub_v1.SubscriberClient()
        try:
            _exists(publisher.get_topic, {"topic": publisher.topic_path(topology.project, GCS_EVENTS_TOPIC)}, timeout_s)
            _exists(subscriber.get_subscription,
                    {"subscription": subscriber.subscription_path(topology.project, GCS_EVENTS_SUBSCRIPTION)}, timeout_s)
        except exceptions.NotFound:
            return Check("storage", name, False, f"{GCS_EVENTS_TOPIC} or its subscription {GCS_EVENTS_SUBSCRIPTION} is missing", RESTART)
        except _UNREACHABLE as error:  # Pub/Sub's trouble, not Storage's: Pub/Sub's own line says more
            return Check("storage", name, False, f"cannot check: Pub/Sub unreachable ({_reason(error)})", "see Pub/Sub")
        finally:
            subscriber.close()
        return Check("storage", name, True, f"emulated (this Storage endpoint serves no notificationConfigs): fake-gcs-server "
                     f"publishes object events to {GCS_EVENTS_TOPIC}, the router (pid {router.pid}) sends "
                     f"{'/'.join(note.events)} under {note.prefix or '/'} to {note.topic}")

    def function_env(self, function: str) -> tuple[Mapping[str, str] | None, str]:
        from infra.local.cloud import function_process, is_running

        record = self.records.get(function_process(function))
        try:
            raw = Path(f"/proc/{record.pid}/environ").read_bytes() if record and is_running(record) else b""
        except OSError:
            raw = b""
        if not raw:
            return None, f"the local {function} is not running"
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}, f"{function}'s environment"


class _CloudFunctions:
    """Cloud Functions (gen2), through its API: deployed and ACTIVE (and any event trigger on the declared topic)."""

    def __init__(self, cfg: Config, timeout_s: float, local_state_dir: Path) -> None:
        self.cfg, self.timeout_s, self.local_state_dir = cfg, timeout_s, local_state_dir
        self._lock = threading.Lock()  # the functions and worker checks share the client and the answers
        self._client: Any = None
        self._functions: dict[str, Any] = {}

    def _connect(self) -> Any:
        """The client, made once; ``_Bad`` when the package or the credentials are missing."""
        emulated = os.environ.get("PUBSUB_EMULATOR_HOST")
        unknown = "cannot tell whether the functions run: " + (
            f"no local cloud state in {self.local_state_dir} records PUBSUB_EMULATOR_HOST={emulated}, and " if emulated else "")
        hint = "; for a local cloud, set LOCAL_CLOUD_STATE_DIR to its state dir" if emulated else ""
        if self._client is None:
            try:
                from google.cloud import functions_v2
            except ImportError:
                raise _Bad(unknown + "the google-cloud-functions package is not installed",
                           "`pip install google-cloud-functions`" + hint) from None
            try:
                self._client = functions_v2.FunctionServiceClient()
            except DefaultCredentialsError as error:
                raise _Bad(unknown + f"no credentials for the Cloud Functions API ({_reason(error)})",
                           "`gcloud auth application-default login`" + hint) from None
        return self._client

    def _get(self, name: str) -> Any:
        with self._lock:
            if name not in self._functions:
                path = f"projects/{self.cfg.project}/locations/{self.cfg.region}/functions/{name}"
                self._functions[name] = self._connect().get_function(request={"name": path}, timeout=self.timeout_s, retry=None)
            return self._functions[name]

    def functions(self, topology: Topology, timeout_s: float) -> Iterator[Check]:
        try:
            with self._lock:
                self._connect()
        except _Bad as bad:  # none can be checked: one line for all
            yield Check("functions", "Cloud Functions API", False, bad.detail, bad.fix)
            return
        deploy = (f"`terraform -chdir=infra/terraform apply -var project={self.cfg.project} -var region={self.cfg.region}`")
        topics = {f.name: f.topic for f in topology.functions}

        def describe(name: str) -> str:
            deployed = self._get(name)
            if deployed.state.name != "ACTIVE":
                messages = "; ".join(m.message for m in deployed.state_messages) or "no message"
                raise _Bad(f"state {deployed.state.name}: {messages}", f"redeploy: {deploy}")
            # Deployed with an HTTP trigger, a function is pushed to by its own subscription (the
            # Pub/Sub checks): no event trigger. One that has an event trigger must have the declared topic.
            topic = deployed.event_trigger.pubsub_topic
            if name in topics and topic and not topic.endswith(f"/topics/{topics[name]}"):
                raise _Bad(f"triggered by {topic}, the topology says {topics[name]}", f"redeploy: {deploy}")
            return f"ACTIVE, {'pushed from ' + topics[name] if name in topics else 'called over HTTP'}"

        for name in topology.function_names:
            yield _probe("functions", f"function {name}", lambda n=name: describe(n), f"not deployed in {self.cfg.region}",
                         f"run {deploy}")

    def notification(self, name: str, note: Notification, topology: Topology, timeout_s: float) -> Check:
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
        return Check("storage", name, False, f"{endpoint} serves no notification configs (404), and no local cloud state "
                     f"in {self.local_state_dir} says who emulates them", "check STORAGE_EMULATOR_HOST and LOCAL_CLOUD_STATE_DIR")

    def function_env(self, function: str) -> tuple[Mapping[str, str] | None, str]:
        try:
            return dict(self._get(function).service_config.environment_variables), f"the deployed {function}'s environment"
        except (_Bad, exceptions.GoogleAPICallError, *_UNREACHABLE) as error:
            return None, f"the deployed {function} could not be read: {getattr(error, 'detail', None) or _reason(error)}"


def _runtime(cfg: Config, timeout_s: float) -> _LocalCloud | _CloudFunctions:
    """A local cloud's state file when it records this environment's Pub/Sub endpoint; else the Cloud Functions API."""
    from infra.local.cloud import read_state, resolve_state_dir

    state_dir = resolve_state_dir()
    try:
        state = read_state(state_dir)
    except (OSError, ValueError, KeyError, TypeError):
        state = None  # unreadable is as good as absent; the Functions line says where it looked
    if state and state.get("env", {}).get("PUBSUB_EMULATOR_HOST") == os.environ.get("PUBSUB_EMULATOR_HOST"):
        return _LocalCloud(state, state_dir)
    return _CloudFunctions(cfg, timeout_s, state_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False
