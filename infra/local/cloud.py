"""The local cloud: every service Fast Render uses, on 127.0.0.1, built from infra/topology.yaml.

``LocalCloud.start()`` starts, in parallel where it can:

* the official Pub/Sub emulator (``gcloud beta emulators pubsub start``);
* the official Firestore emulator in native mode (``gcloud emulators firestore
  start``): the product's job state; clients find it through
  ``FIRESTORE_EMULATOR_HOST``, and ``reset_firestore()`` empties it;
* fake-gcs-server, publishing every object event to the internal topic
  ``gcs-notifications``;
* the notification router (``infra.local.notification_router``), which fans
  that stream out per the topology's notification configs and publishes the
  scheduled ticks;
* the local Compute Engine and Vertex AI (``infra.local.compute_server``,
  ``infra.local.vertex_server``);
* one functions-framework process per topology function, each kept running
  by ``infra.local.supervise`` (restarted when it dies, as Cloud Functions
  replaces a crashed instance), fed by a push subscription on its topic, as
  Eventarc does in the cloud;
* one more per HTTP function (``http_functions:``, e.g. ``/status``), under a
  supervisor too, reached with the bearer token made for this start
  (``STATUS_URL``, ``AVMONITOR_TOKEN`` and the read-only ``DASHBOARD_VIEWER_TOKEN``
  in ``env``; see ``infra.local.http_functions``);
* the push relay (``infra.local.push_relay``): every push subscription points
  at it and it forwards to the function; its fault API (duplicates, drops,
  kills mid-delivery) is the only place where delivery misbehaves on purpose.

How each emulator is started, and clients for them, are in ``infra.local.emulators``.

Then it creates the topics, subscriptions and buckets, and writes a state file
(``<state dir>/cloud.json``: pids, ports, the client env) so that another
process (``python -m infra.local down``) can stop it; only its owner may read
it (it holds the token). Each process runs in its own process group with its
output in ``<state dir>/logs/<name>.log`` (``infra.local.processes``).

    with LocalCloud(ports=Ports.free(load_topology(PROJECT))) as cloud:
        cloud.publish("render-jobs", b"{...}", job_id="x")
        cloud.pull("render-completed-main", timeout=30)
        cloud.firestore().collection("jobs").document("x").get()

Settings come from arguments, else from these environment variables, else the
defaults: ``GOOGLE_CLOUD_PROJECT`` (fast-render-local), ``LOCAL_CLOUD_STATE_DIR``
(.local-cloud), ``LOCAL_CLOUD_SOURCE`` (main.py), ``LOCAL_CLOUD_TICK_S`` (the
topology's schedule), and the ports (see ``Ports.from_env``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore, pubsub_v1, storage

from infra.local import http_functions
from infra.local.emulators import (  # noqa: F401 (GCS_EVENTS_TOPIC, fake_gcs_binary: re-exported, they lived here)
    FIRESTORE_READY_LINE,
    GCS_EVENTS_SUBSCRIPTION,
    GCS_EVENTS_TOPIC,
    PUBSUB_READY_LINE,
    close_firestore_client,
    create_pubsub_resources,
    fake_gcs_argv,
    fake_gcs_binary,
    firestore_argv,
    firestore_client,
    pubsub_argv,
    pubsub_clients,
    reset_firestore,
    storage_client,
)
from infra.local.notification_router import READY_LINE as ROUTER_READY_LINE
from infra.local.ports import (  # noqa: F401 (DEFAULT_BASE_PORT, topic_path...: re-exported, they lived here)
    DEFAULT_BASE_PORT,
    Ports,
    function_pid_file,
    function_process,
    topic_path,
)
from infra.local.processes import (  # noqa: F401 (is_running, live_processes, stop_processes: re-exported)
    HOST,
    ProcessRecord,
    is_running,
    live_processes,
    stop_processes,
)
from infra.local.processes import log_tail as _log_tail
from infra.local.processes import port_free as _port_free
from infra.local.processes import port_open as _port_open
from infra.local.processes import proc_stat as _proc_stat
from infra.local.push_relay import RelayClient, relay_routes
from infra.local.supervise import kill_function_process, read_pid
from infra.local.topology import DEFAULT_PATH as DEFAULT_TOPOLOGY
from infra.local.topology import load_topology

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT = "fast-render-local"
DEFAULT_STATE_DIR = REPO_ROOT / ".local-cloud"
STATE_FILE = "cloud.json"

# Caller variables every child needs to run at all; everything else it gets is
# chosen here (see LocalCloud.process_env), so a developer's shell cannot change
# what the functions see by accident.
_SYSTEM_VARS = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "JAVA_HOME", "CLOUDSDK_CONFIG")
PASSTHROUGH_PREFIX = "FAST_RENDER_"


class LocalCloudError(RuntimeError):
    """The local cloud could not start (the message says which process, and where its log is)."""


# --------------------------------------------------------------------------- Pub/Sub messages


@dataclass(frozen=True)
class Message:
    """A pulled Pub/Sub message."""

    data: bytes
    attributes: dict[str, str]
    message_id: str


# --------------------------------------------------------------------------- the cloud


class LocalCloud:
    """Starts and stops the local cloud; also Pub/Sub, Storage and Firestore clients for tests and the demo.

    ``env`` is what a client of the cloud needs (the same variables the
    functions get, and the HTTP functions' URLs and token); ``ports`` says where each service listens; ``processes``
    lists what runs. ``extra_env`` is added to every process's environment, as
    are the caller's ``FAST_RENDER_*`` variables.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        ports: Ports | None = None,
        state_dir: Path | None = None,
        source: Path | None = None,
        topology_path: Path = DEFAULT_TOPOLOGY,
        with_compute_vertex: bool = True,
        tick_every_s: float | None = None,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 60.0,
        push_retries: str | None = None,
    ) -> None:
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT
        self.topology = load_topology(self.project, topology_path)
        self.topology_path = Path(topology_path)
        self.ports = ports or Ports.from_env(self.topology)
        if not self.ports.relay:
            self.ports = replace(self.ports, relay=Ports.free(self.topology).relay)
        self.state_dir = resolve_state_dir(state_dir)
        self.source = Path(source or os.environ.get("LOCAL_CLOUD_SOURCE") or REPO_ROOT / "main.py").resolve()
        self.with_compute_vertex = with_compute_vertex
        tick = tick_every_s if tick_every_s is not None else os.environ.get("LOCAL_CLOUD_TICK_S")
        self.tick_every_s = float(tick) if tick else None
        self.extra_env = dict(extra_env or {})
        self.ready_timeout_s = ready_timeout_s
        # Who retries a failed push: "relay" (the subscription's policy, applied by the push
        # relay) or "emulator" (which loses failed pushes when several fail at once; see push_relay).
        self.push_retries = push_retries or os.environ.get("LOCAL_CLOUD_PUSH_RETRIES") or "relay"
        if self.push_retries not in ("relay", "emulator"):
            raise LocalCloudError(f"push_retries must be 'relay' or 'emulator', not {self.push_retries!r}")
        self.processes: list[ProcessRecord] = []
        self.up_seconds: float | None = None
        self._popens: list[subprocess.Popen[bytes]] = []
        self._clients: tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient] | None = None
        self._firestore: firestore.Client | None = None
        self.http_token = http_functions.new_token()  # a fresh one at each start
        self.viewer_token = http_functions.new_token()  # the dashboard's read-only one, likewise

    # ----------------------------------------------------------- configuration

    @property
    def env(self) -> dict[str, str]:
        """The variables a client of this cloud sets (``python -m infra.local env`` prints them)."""
        env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{self.ports.pubsub}",
            "FIRESTORE_EMULATOR_HOST": f"{HOST}:{self.ports.firestore}",
            "STORAGE_EMULATOR_HOST": f"http://{HOST}:{self.ports.gcs}",
            "API_CREDENTIALS": "anonymous",
            # Where `avmonitor logs` reads the functions' lines (Cloud Logging's, in the cloud).
            "LOCAL_CLOUD_LOG_DIR": str(self.log_dir),
            **{f"{key.upper()}_BUCKET": name for key, name in self.topology.buckets.items()},
            "FIRESTORE_DATABASE": self.topology.firestore.database,
        }
        if self.with_compute_vertex:
            env["COMPUTE_API_ENDPOINT"] = f"http://{HOST}:{self.ports.compute}"
            env["VERTEX_API_ENDPOINT"] = f"http://{HOST}:{self.ports.vertex}"
        env.update(http_functions.client_env(self.topology, self.ports, self.http_token, self.viewer_token))
        return env

    def process_env(self) -> dict[str, str]:
        """Every started process's environment: system basics, ``env``, ``FAST_RENDER_*``, ``extra_env``.

        The venv's bin folder leads PATH (so ``python`` in a worker command is
        this interpreter) and the repo root is on PYTHONPATH (as the source root
        is in Cloud Functions).
        """
        caller = os.environ
        env = {name: caller[name] for name in _SYSTEM_VARS if name in caller}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), caller.get("PATH", os.defpath)])
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PYTHONUNBUFFERED"] = "1"  # logs reach the log files as they happen
        env.update(self.env)
        env.pop(http_functions.CLIENT_TOKEN_VAR, None)  # a client's credential; the HTTP functions get theirs
        env.pop(http_functions.CLIENT_VIEWER_TOKEN_VAR, None)
        env.update({name: value for name, value in caller.items() if name.startswith(PASSTHROUGH_PREFIX)})
        env.update(self.extra_env)
        return env

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    # ----------------------------------------------------------- start and stop

    def start(self) -> LocalCloud:
        """Start everything, create the resources, write the state file; stop all again on failure."""
        began = time.monotonic()
        self._check_can_start()
        self.http_token, self.viewer_token = http_functions.new_token(), http_functions.new_token()
        self._prepare_state_dir()
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        self.up_seconds = round(time.monotonic() - began, 2)
        self._write_state()
        return self

    def stop(self) -> None:
        """Stop every process group this cloud started; safe to call twice."""
        if self._clients:
            for client in self._clients:
                client.transport.close()
            self._clients = None
        if self._firestore:
            close_firestore_client(self._firestore)
            self._firestore = None
        stop_processes(self.processes)
        for popen in self._popens:
            popen.wait(timeout=5)  # reap our children, so no zombie is left behind
        self._popens.clear()
        if self.processes:
            self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _check_can_start(self) -> None:
        if not self.source.is_file():
            raise LocalCloudError(f"functions source {self.source} not found (set --source / LOCAL_CLOUD_SOURCE)")
        previous = read_state(self.state_dir)
        if previous and any(is_running(record) for record in previous["processes"]):
            raise LocalCloudError(f"a local cloud is already running from {self.state_dir}; run `python -m infra.local down`")
        ports = self.ports.named()
        if not self.with_compute_vertex:
            del ports["compute"], ports["vertex"]
        busy = [f"{name}:{port}" for name, port in ports.items() if not _port_free(port)]
        if busy:
            raise LocalCloudError(f"ports in use: {', '.join(busy)} (another local cloud? set LOCAL_CLOUD_BASE_PORT)")

    def _prepare_state_dir(self) -> None:
        """A fresh bucket store and empty logs for each start; the state dir itself is kept."""
        shutil.rmtree(self.state_dir / "gcs", ignore_errors=True)
        for folder in (self.log_dir, self.state_dir / "gcs", self.state_dir / "pubsub"):
            folder.mkdir(parents=True, exist_ok=True)

    def _start_all(self) -> None:
        """Start every process at once; create resources as their services come up."""
        no_prompts = {"CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        pubsub_command = pubsub_argv(HOST, self.ports.pubsub, self.project, self.state_dir / "pubsub")
        pubsub = self._spawn("pubsub", pubsub_command, port=self.ports.pubsub, extra_env=no_prompts)
        # Its data lives in memory and nothing is exported on exit: SIGKILL at once (SIGTERM takes ~2 s).
        firestore_command = firestore_argv(HOST, self.ports.firestore, self.project)
        firestore_emulator = self._spawn(
            "firestore", firestore_command, port=self.ports.firestore, extra_env=no_prompts, graceful=False
        )
        gcs_command = fake_gcs_argv(HOST, self.ports.gcs, self.project, self.state_dir / "gcs", self.topology.notifications)
        gcs = self._spawn("gcs", gcs_command, port=self.ports.gcs)
        router = self._spawn("router", self._router_argv(), port=None)
        rest: list[tuple[ProcessRecord, str | None]] = [(router, ROUTER_READY_LINE)]
        if self.with_compute_vertex:
            # The VMs' serial logs under logs/, where `avmonitor logs` finds them with the functions' lines.
            compute_argv = [*self._server_argv("compute_server", self.ports.compute), "--root", str(self.log_dir / "vms")]
            vertex_argv = [*self._server_argv("vertex_server", self.ports.vertex), "--events-topic", "vertex-events"]
            rest.append((self._spawn("compute", compute_argv, port=self.ports.compute), None))
            rest.append((self._spawn("vertex", vertex_argv, port=self.ports.vertex), None))
        for function in self.topology.functions:
            rest.append((self._spawn_function(function.name, function.target, http=False), None))
        for function in self.topology.http_functions:
            rest.append((self._spawn_function(function.name, function.target, http=True), None))
        rest.append((self._spawn("relay", self._relay_argv(), port=self.ports.relay), None))
        self._write_state()  # already now, so that `down` finds them even if the rest fails

        # Firestore first too: no push (hence no function) runs before the subscriptions exist.
        self._wait_ready([(pubsub, PUBSUB_READY_LINE), (firestore_emulator, FIRESTORE_READY_LINE)])
        create_pubsub_resources(self.topology, *self.pubsub(), self.push_endpoints())
        self._wait_ready([(gcs, None)])
        for bucket in self.topology.buckets.values():
            self.storage().create_bucket(bucket)
        self._wait_ready(rest)

    def _spawn_function(self, name: str, target: str, *, http: bool) -> ProcessRecord:
        """A function's functions-framework process, under its supervisor."""
        port = self.ports.functions[name]
        # gunicorn puts its control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn): one each.
        runtime_dir = self.pid_file(name).parent
        runtime_dir.mkdir(parents=True, exist_ok=True)
        tokens = http_functions.function_env(self.http_token, self.viewer_token) if http else {}
        extra_env = {"XDG_RUNTIME_DIR": str(runtime_dir), **tokens}
        argv = [*self._supervise_argv(name), *http_functions.framework_argv(sys.executable, self.source, target, port, http=http)]
        return self._spawn(function_process(name), argv, port=port, extra_env=extra_env)

    def _router_argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "infra.local.notification_router",
            "--project", self.project,
            "--subscription", GCS_EVENTS_SUBSCRIPTION,
            "--topology", str(self.topology_path),
        ]
        return argv + (["--tick-every", str(self.tick_every_s)] if self.tick_every_s else [])

    def _server_argv(self, module: str, port: int) -> list[str]:
        return [sys.executable, "-m", f"infra.local.{module}", "--port", str(port), "--project", self.project]

    def _supervise_argv(self, function: str) -> list[str]:
        pid_file = self.pid_file(function)
        return [sys.executable, "-m", "infra.local.supervise", "--name", function, "--pid-file", str(pid_file), "--"]

    def _relay_argv(self) -> list[str]:
        urls = {f.name: f"http://{HOST}:{self.ports.functions[f.name]}" for f in self.topology.functions}  # pushed to
        pid_files = {name: str(self.pid_file(name)) for name in urls}
        routes = relay_routes(self.topology, urls, pid_files, retries=self.push_retries == "relay")
        path = self.state_dir / "relay-routes.json"
        path.write_text(json.dumps({"functions": routes}, indent=1) + "\n")
        return [sys.executable, "-m", "infra.local.push_relay", "--port", str(self.ports.relay), "--routes", str(path)]

    def _spawn(
        self, name: str, argv: list[str], *, port: int | None, extra_env: Mapping[str, str] | None = None, graceful: bool = True
    ) -> ProcessRecord:
        """Start ``argv`` in its own session (so its whole group can be stopped), output to its log."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=REPO_ROOT,
                    env={**self.process_env(), **(extra_env or {})},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError as error:
                raise LocalCloudError(f"{argv[0]} not found; run infra/local/setup.sh") from error
        stat = _proc_stat(popen.pid)
        record = ProcessRecord(name, popen.pid, stat[3] if stat else 0, port, str(log_path), tuple(argv), graceful)
        self._popens.append(popen)
        self.processes.append(record)
        return record

    def _wait_ready(self, pending: list[tuple[ProcessRecord, str | None]]) -> None:
        """Wait until each process prints its ready text (or, where that is None, its port accepts)."""
        popens = {popen.pid: popen for popen in self._popens}
        deadline = time.monotonic() + self.ready_timeout_s
        while pending:
            for record, _ in pending:
                if popens[record.pid].poll() is not None:
                    raise LocalCloudError(f"{record.name} exited at start; {record.log}:\n{_log_tail(record.log)}")
            pending = [(record, text) for record, text in pending if not self._is_ready(record, text)]
            if pending and time.monotonic() > deadline:
                names = ", ".join(record.name for record, _ in pending)
                raise LocalCloudError(f"not ready after {self.ready_timeout_s:.0f} s: {names} (logs in {self.log_dir})")
            if pending:
                time.sleep(0.05)

    @staticmethod
    def _is_ready(record: ProcessRecord, ready_text: str | None) -> bool:
        if ready_text is None:
            return record.port is not None and _port_open(record.port)
        return ready_text in Path(record.log).read_text(errors="replace")

    def _write_state(self) -> None:
        state = {
            "project": self.project,
            "state_dir": str(self.state_dir),
            "up_seconds": self.up_seconds,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "ports": asdict(self.ports),
            "env": self.env,
            "processes": [asdict(record) for record in self.processes],
        }
        temporary = self.state_file.with_suffix(".tmp")
        temporary.touch(mode=0o600)  # the owner's only: it holds the HTTP functions' token
        temporary.chmod(0o600)
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(self.state_file)

    # ----------------------------------------------------------- functions and the push relay

    def pid_file(self, function: str) -> Path:
        """Where the function's supervisor keeps the pid of its functions-framework process."""
        return function_pid_file(self.state_dir, function)

    def function_url(self, function: str) -> str:
        """The function's own push URL (what the relay forwards to)."""
        topic = self.topology.function(function).topic
        return f"http://{HOST}:{self.ports.functions[function]}{topic_path(self.project, topic)}"

    def push_endpoints(self) -> dict[str, str]:
        """Function name -> its push subscription's endpoint: the relay, with the function's name first."""
        return {
            f.name: f"http://{HOST}:{self.ports.relay}/{f.name}{topic_path(self.project, f.topic)}"
            for f in self.topology.functions
        }

    @property
    def relay(self) -> RelayClient:
        """The push relay's fault API (``relay.set_faults(duplicate={...})``, ``relay.stats()``...)."""
        return RelayClient(f"http://{HOST}:{self.ports.relay}")

    def function_pid(self, function: str) -> int | None:
        """The pid (and process group) of the function's functions-framework process; None while it restarts."""
        return read_pid(self.pid_file(function))

    def kill_function(self, function: str) -> int | None:
        """SIGKILL the function's process group, as a crash or Cloud Run reclaiming the instance.

        Returns the pid killed (None if none was running). Waits for nothing:
        the supervisor starts it again, and Pub/Sub redelivers what it had not answered.
        """
        return kill_function_process(self.pid_file(function))

    # ----------------------------------------------------------- Pub/Sub helpers

    def pubsub(self) -> tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
        """This cloud's Pub/Sub clients (made once, closed by ``stop``)."""
        if self._clients is None:
            self._clients = pubsub_clients(f"{HOST}:{self.ports.pubsub}")
        return self._clients

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message to ``topic`` (an id from the topology); returns its message id."""
        publisher, _ = self.pubsub()
        return publisher.publish(publisher.topic_path(self.project, topic), data, **attributes).result(timeout=30)

    def pull(self, subscription: str, timeout: float = 10.0, max_messages: int = 10) -> list[Message]:
        """Wait up to ``timeout`` s for messages on a pull subscription; ack and return them ([] if none)."""
        _, subscriber = self.pubsub()
        path = subscriber.subscription_path(self.project, subscription)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                response = subscriber.pull(
                    request={"subscription": path, "max_messages": max_messages}, timeout=max(remaining, 0.1), retry=None
                )
            except exceptions.DeadlineExceeded:
                return []
            if response.received_messages:
                subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])
                return [
                    Message(m.message.data, dict(m.message.attributes), m.message.message_id)
                    for m in response.received_messages
                ]
            if remaining <= 0:
                return []
            time.sleep(0.05)

    def storage(self) -> storage.Client:
        """A Storage client for this cloud's fake-gcs-server."""
        return storage_client(self.env["STORAGE_EMULATOR_HOST"], self.project)

    # ----------------------------------------------------------- Firestore helpers

    def firestore(self) -> firestore.Client:
        """A Firestore client for this cloud's emulator and the topology's database (made once, closed by ``stop``).

        It does not read ``FIRESTORE_EMULATOR_HOST``: a test can hold clients of several clouds.
        """
        if self._firestore is None:
            host, database = self.env["FIRESTORE_EMULATOR_HOST"], self.topology.firestore.database
            self._firestore = firestore_client(host, self.project, database)
        return self._firestore

    def reset_firestore(self) -> None:
        """Delete every document in this cloud's Firestore database (e.g. between tests)."""
        reset_firestore(self.env["FIRESTORE_EMULATOR_HOST"], self.project, self.topology.firestore.database)


# --------------------------------------------------------------------------- the state file


def resolve_state_dir(state_dir: Path | None = None) -> Path:
    """``state_dir``, else ``LOCAL_CLOUD_STATE_DIR``, else .local-cloud at the repo root."""
    return Path(state_dir or os.environ.get("LOCAL_CLOUD_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The state file of the cloud started from ``state_dir``, records typed; None if there is none."""
    path = Path(state_dir) / STATE_FILE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    state["processes"] = [ProcessRecord(**{**record, "argv": tuple(record["argv"])}) for record in state["processes"]]
    return state


def down(state_dir: Path) -> list[str]:
    """Stop the cloud recorded in ``state_dir`` (idempotent); returns the names of what ran."""
    state = read_state(state_dir)
    if state is None:
        return []
    running = [record.name for record in state["processes"] if is_running(record)]
    stop_processes(state["processes"])
    (Path(state_dir) / STATE_FILE).unlink(missing_ok=True)
    return running


def status_lines(state_dir: Path) -> list[str]:
    """One line per process of the recorded cloud: name, pid, port, up/down, log."""
    state = read_state(state_dir)
    if state is None:
        return [f"no local cloud recorded in {state_dir}"]
    lines = [f"project {state['project']}, started {state['started_at']} in {state['up_seconds']} s"]
    for record in state["processes"]:
        running = is_running(record)
        listening = "" if record.port is None else (" listening" if _port_open(record.port) else " not listening")
        port = "-" if record.port is None else str(record.port)
        state = "up" if running else "DOWN"
        lines.append(f"{record.name:24} pid {record.pid:<7} port {port:<6} {state}{listening:14} {record.log}")
    return lines
