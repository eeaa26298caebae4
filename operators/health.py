"""``avmonitor health``: every dependency, one line each, and what to do about a broken one.

Built from ``infra/topology.yaml`` and the environment's config, through the
official clients the functions use (``functions.clients``), so it checks what
the product would meet: Pub/Sub topics and subscriptions, the buckets and their
notification configs, Firestore, the Compute Engine and Vertex AI APIs, the
functions, the GPU catalog and what the renderers run.

Every call has a short deadline and no retries (``--timeout-s``): the clients
otherwise retry an unreachable service for minutes, and a health check that
hangs tells nothing. Components are probed side by side; one that cannot be
reached at all is one line, not one per resource.

Where the functions run is told by the environment: a local cloud's state file
(``$LOCAL_CLOUD_STATE_DIR``, else ``.local-cloud``, ``cloud.json``) recording
this environment's Pub/Sub endpoint lists their processes; otherwise the Cloud
Functions v2 API is asked (package ``google-cloud-functions``). The same source
gives the functions' own environment (``WORKER_IMAGE``...), which is what counts.

    avmonitor health            # exit 0 only when every line is green
    avmonitor health --json     # [{"component", "name", "ok", "detail", "fix"}, ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from google.api_core import exceptions
from google.auth.exceptions import DefaultCredentialsError, TransportError
from google.cloud import pubsub_v1
from rich.markup import escape

from functions import clients
from functions.config import Config
from infra.local.topology import Notification, Topology, TopologyError, load_topology
from operators import output

# Cold emulators answer their first call in 2-3 s on a busy machine; a dead one refuses at once.
DEFAULT_TIMEOUT_S = 10.0
RESTART = "restart the local cloud (`python -m infra.local down && python -m infra.local up`)"
APPLY = f"run `python -m infra.deploy apply` (cloud) or {RESTART}"
# component -> heading, the variable that points it elsewhere than Google, Google's endpoint.
COMPONENTS = {
    "pubsub": ("Pub/Sub", "PUBSUB_EMULATOR_HOST", "pubsub.googleapis.com"),
    "storage": ("Cloud Storage", "STORAGE_EMULATOR_HOST", "storage.googleapis.com"),
    "firestore": ("Firestore", "FIRESTORE_EMULATOR_HOST", "firestore.googleapis.com"),
    "compute": ("Compute Engine API", "COMPUTE_API_ENDPOINT", "compute.googleapis.com"),
    "vertex": ("Vertex AI API", "VERTEX_API_ENDPOINT", "aiplatform.googleapis.com"),
    "functions": ("Functions", "", "cloudfunctions.googleapis.com"),
    "catalog": ("GPU catalog", "", ""),
    "worker": ("Worker", "", ""),
}
_UNREACHABLE = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError, requests.ConnectionError,
                requests.Timeout, TransportError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Check:
    """One line of the report: ``fix`` says what to do when ``ok`` is False."""

    component: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


class _Bad(Exception):
    """This resource is unhealthy: ``detail`` is what is wrong, ``fix`` what to do."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _reason(error: BaseException) -> str:
    """An error's gist in one short line (the clients' messages run to paragraphs)."""
    text = " ".join(str(error).split())
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(error, (exceptions.DeadlineExceeded, requests.Timeout, TimeoutError)) or "timed out" in text:
        return "no answer before the deadline"
    return text[:200] or type(error).__name__


def _probe(component: str, name: str, fetch: Callable[[], str], missing: str, fix: str) -> Check:
    """``fetch`` returns the healthy line's detail or raises; the Check for either.

    An unreachable service is not caught here: it ends the whole component (``_component``).
    """
    api = COMPONENTS[component][2]
    try:
        return Check(component, name, True, fetch())
    except _UNREACHABLE:
        raise
    except _Bad as bad:
        return Check(component, name, False, bad.detail, bad.fix)
    except exceptions.NotFound:
        return Check(component, name, False, missing, fix)
    except (exceptions.PermissionDenied, exceptions.Unauthenticated, exceptions.Forbidden) as error:
        text = str(error)
        if "SERVICE_DISABLED" in text or "has not been used" in text or "is disabled" in text:
            access = f"enable it: `gcloud services enable {api}`"
        elif isinstance(error, exceptions.Unauthenticated):
            access = "the credentials were refused: `gcloud auth application-default login`"
        else:
            access = f"grant this account read access to {api} (a viewer role), or use other credentials"
        return Check(component, name, False, f"refused: {_reason(error)}", access)
    except exceptions.GoogleAPICallError as error:
        return Check(component, name, False, _reason(error), "see the error; run again in a minute if it is transient")


# ---------------------------------------------------------------- where the functions run


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
    """Cloud Functions (gen2), through its API: deployed, ACTIVE, triggered by the declared topic."""

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
        deploy = f"`python -m infra.deploy apply --project {self.cfg.project} --region {self.cfg.region} --image IMAGE`"
        topics = {f.name: f.topic for f in topology.functions}

        def describe(name: str) -> str:
            deployed = self._get(name)
            if deployed.state.name != "ACTIVE":
                messages = "; ".join(m.message for m in deployed.state_messages) or "no message"
                raise _Bad(f"state {deployed.state.name}: {messages}", f"redeploy: {deploy}")
            topic = deployed.event_trigger.pubsub_topic
            if name in topics and not topic.endswith(f"/topics/{topics[name]}"):
                raise _Bad(f"triggered by {topic or 'nothing'}, the topology says {topics[name]}", f"redeploy: {deploy}")
            return f"ACTIVE, {'triggered by ' + topics[name] if name in topics else 'called over HTTP'}"

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


def _exists(get: Callable[..., Any], request: dict[str, str], t: float) -> str:
    get(request=request, timeout=t, retry=None)
    return "exists"


# ---------------------------------------------------------------- the components


def _pubsub(cfg: Config, topology: Topology, t: float, runtime: Any) -> Iterator[Check]:
    publisher, subscriber = clients.publisher(), pubsub_v1.SubscriberClient()
    topic_path = lambda topic: publisher.topic_path(cfg.project, topic)

    def subscription(name: str, topic: str) -> str:
        found = subscriber.get_subscription(request={"subscription": subscriber.subscription_path(cfg.project, name)},
                                            timeout=t, retry=None)
        if found.topic != topic_path(topic):
            raise _Bad(f"on {found.topic or 'no topic'}, not {topic} (was its topic deleted?)", APPLY)
        return f"on {topic}"

    def trigger(function: Any) -> str:
        try:  # the local cloud's push subscription
            return f"{function.push_subscription} {subscription(function.push_subscription, function.topic)}"
        except exceptions.NotFound:  # Eventarc names its own `eventarc-<region>-<name>-...`
            listed = publisher.list_topic_subscriptions(request={"topic": topic_path(function.topic)}, timeout=t, retry=None)
        ids = [path.rsplit("/", 1)[-1] for path in listed]
        eventarc = [i for i in ids if i.startswith("eventarc-") and f"-{function.name}-" in i]
        if eventarc:
            return f"{eventarc[0]} on {function.topic}"
        raise _Bad(f"no subscription on {function.topic} delivers to it", APPLY)

    try:
        for topic in topology.all_topics:
            request = {"topic": topic_path(topic)}
            yield _probe("pubsub", f"topic {topic}", lambda r=request: _exists(publisher.get_topic, r, t), "missing", APPLY)
        for sub in topology.pull_subscriptions:
            yield _probe("pubsub", f"subscription {sub.name}", lambda s=sub: subscription(s.name, s.topic), "missing", APPLY)
        for function in topology.functions:
            yield _probe("pubsub", f"trigger of {function.name}", lambda f=function: trigger(f),
                         f"its topic {function.topic} is missing", APPLY)
    finally:
        subscriber.close()


def _storage(cfg: Config, topology: Topology, t: float, runtime: Any) -> Iterator[Check]:
    client = clients.storage_client()
    buckets: dict[str, Any] = {}

    def get(name: str) -> str:
        buckets[name] = client.get_bucket(name, timeout=t, retry=None)
        return f"{name} exists"

    for key, name in topology.buckets.items():
        yield _probe("storage", f"bucket {key}", lambda n=name: get(n), f"{name} missing", APPLY)
    configs: dict[str, list[Any] | None] = {}
    for note in topology.notifications:
        key = next(k for k, v in topology.buckets.items() if v == note.bucket)
        name, what = f"notification {key} -> {note.topic}", f"{'/'.join(note.events)} under {note.prefix or '/'} to {note.topic}"
        if note.bucket not in buckets:
            yield Check("storage", name, False, f"its bucket {note.bucket} could not be read (see the bucket's line)", APPLY)
            continue
        if note.bucket not in configs:
            try:
                configs[note.bucket] = list(buckets[note.bucket].list_notifications(timeout=t, retry=None))
            except exceptions.NotFound:  # the bucket is there: this endpoint has no notificationConfigs API
                configs[note.bucket] = None
        if configs[note.bucket] is None:
            yield runtime.notification(name, note, topology, t)
            continue
        match = [c.notification_id for c in configs[note.bucket] or []
                 if c.topic_name == note.topic and c.topic_project == cfg.project and (c.blob_name_prefix or "") == note.prefix
                 and (c.event_types is None or set(note.events) <= set(c.event_types))]
        yield (Check("storage", name, True, f"config {match[0]}: {what}") if match else
               Check("storage", name, False, f"no config on {note.bucket} sends {what}",
                     "run `python -m infra.deploy apply` (it creates the notification configs)"))


def _firestore(cfg: Config, topology: Topology, t: float, runtime: Any) -> Iterator[Check]:
    declared = topology.firestore.database
    if cfg.firestore_database != declared:
        yield Check("firestore", f"database {cfg.firestore_database}", False,
                    f"FIRESTORE_DATABASE={cfg.firestore_database}, but the topology declares {declared}", f"set FIRESTORE_DATABASE={declared}")
        return
    db = clients.firestore_client()
    collections = list(topology.firestore.collections) or ["jobs"]

    def read() -> str:
        for collection in collections:
            db.collection(collection).limit(1).get(timeout=t, retry=None)
        return f"readable ({', '.join(collections)})"

    yield _probe("firestore", f"database {declared}", read, f"database {declared} does not exist in {cfg.project}", APPLY)


def _apis(cfg: Config, topology: Topology, t: float, runtime: Any, component: str) -> Iterator[Check]:
    """Compute Engine or Vertex AI: one cheap list call, as the product's clients make it."""
    if component == "compute":
        client, where = clients.instances_client(), cfg.compute_endpoint or "compute.googleapis.com"
        call = lambda: client.aggregated_list(request={"project": cfg.project, "max_results": 1}, timeout=t, retry=None)
        name, missing, fix = "instances", f"project {cfg.project} not found", "check GOOGLE_CLOUD_PROJECT"
    else:
        client, where = clients.job_client(), cfg.vertex_endpoint or f"{cfg.region}-aiplatform.googleapis.com"
        call = lambda: client.list_custom_jobs(request={"parent": cfg.vertex_parent, "page_size": 1}, timeout=t, retry=None)
        name, missing, fix = "custom jobs", f"{cfg.vertex_parent} not found", "check GOOGLE_CLOUD_PROJECT and REGION"

    def listed() -> str:
        call()
        return f"answers at {where} ({name} listed)"

    yield _probe(component, name, listed, missing, fix)


def _catalog(cfg: Config, topology: Topology, t: float, runtime: Any) -> Iterator[Check]:
    from catalog.model import CatalogError, load_catalog

    env, _ = runtime.function_env("fallback-launcher")  # its GPU_CATALOG, if it has one
    try:
        catalog = load_catalog(environ=env if env is not None else os.environ)
    except CatalogError as error:
        yield Check("catalog", "gpu catalog", False, str(error), "fix the file (`python -m catalog estimate --length 180` checks it)")
        return
    yield Check("catalog", "gpu catalog", True, f"{len(catalog.gpus)} GPUs from {catalog.source}")


def _worker(cfg: Config, topology: Topology, t: float, runtime: Any) -> Iterator[Check]:
    """What the renderers run, from the environment of the functions that start them (primary, fallback-launcher)."""
    placeholder = f"us-docker.pkg.dev/{cfg.project}/render/worker:latest"  # load_config's default
    set_image = "set WORKER_IMAGE to the pushed render image (`python -m infra.deploy apply --image IMAGE`)"
    for function, name in (("primary", "Vertex AI container"), ("fallback-launcher", "VM worker")):
        env, source = runtime.function_env(function)
        if env is None:
            env, source = os.environ, "this shell's environment: the functions' own could not be read"
        image, command = env.get("WORKER_IMAGE", "").strip(), env.get("VM_WORKER_COMMAND", "").strip()
        if function == "fallback-launcher" and command:
            yield Check("worker", name, True, f"VM_WORKER_COMMAND=`{command}` ({source})")
        elif image:
            how = "the default VM_WORKER_COMMAND docker-runs it" if function == "fallback-launcher" else "the custom job's container"
            yield Check("worker", name, True, f"WORKER_IMAGE={image}: {how} ({source})")
        elif function == "primary" and env.get("VERTEX_API_ENDPOINT"):  # not Google's: the local one runs a command
            run = env.get("VERTEX_WORKER_COMMAND") or "python -m render_vm worker"
            yield Check("worker", name, True, f"WORKER_IMAGE unset (placeholder {placeholder}); the Vertex AI at "
                        f"{env['VERTEX_API_ENDPOINT']} runs `{run}` ({source})")
        else:
            also = ", or VM_WORKER_COMMAND" if function == "fallback-launcher" else ""
            yield Check("worker", name, False, f"WORKER_IMAGE unset: it would pull the placeholder {placeholder} ({source})",
                        set_image + also)


_CHECKS: dict[str, Callable[..., Iterator[Check]]] = {
    "pubsub": _pubsub, "storage": _storage, "firestore": _firestore,
    "compute": lambda *a: _apis(*a, component="compute"), "vertex": lambda *a: _apis(*a, component="vertex"),
    "functions": lambda cfg, topology, t, runtime: runtime.functions(topology, t), "catalog": _catalog, "worker": _worker,
}


def _component(component: str, produce: Callable[[], Iterator[Check]], cfg: Config) -> list[Check]:
    """A component's checks; one red line for it when its service cannot be reached at all.

    ``DefaultCredentialsError`` passes through: without credentials nothing can be checked (``run`` says so).
    """
    heading, variable, google = COMPONENTS[component]
    checks: list[Check] = []
    try:
        for check in produce():  # one by one: what was checked before the service went away is kept
            checks.append(check)
    except _UNREACHABLE as error:
        configured = os.environ.get(variable) if variable else None
        fix = (f"is {variable}={configured} a running local cloud (`python -m infra.local status`)? if not, {RESTART}"
               if configured else "check the network, and that this API is reachable from here")
        checks.append(Check(component, heading, False, f"unreachable at {configured or google}: {_reason(error)}", fix))
    except DefaultCredentialsError:
        raise
    except Exception as error:  # noqa: BLE001 -- a probe that broke is a red line, not a crash of the whole report
        checks.append(Check(component, heading, False, f"could not be checked: {type(error).__name__}: {_reason(error)}",
                            "see the error"))
    return checks


def check_all(timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    """Every check, in ``COMPONENTS`` order, the components probed concurrently.

    Raises ``DefaultCredentialsError`` when a client finds no credentials, and
    ``TopologyError`` / ``ValueError`` for a broken topology or configuration.
    """
    cfg = clients.config()
    topology = load_topology(cfg.project)
    runtime = _runtime(cfg, timeout_s)
    with ThreadPoolExecutor(max_workers=len(COMPONENTS)) as pool:
        futures = {name: pool.submit(_component, name, lambda c=check: c(cfg, topology, timeout_s, runtime), cfg)
                   for name, check in _CHECKS.items()}
        return [check for name in COMPONENTS for check in futures[name].result()]


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Check every dependency: one line each, what is wrong and how to fix it; exit 0 only when all are healthy."
    parser.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"deadline of each call, in seconds (default {DEFAULT_TIMEOUT_S:g})")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = clients.config()
        checks = check_all(timeout_s=getattr(args, "timeout_s", DEFAULT_TIMEOUT_S))
    except DefaultCredentialsError as error:
        return output.fail(f"health: no Google credentials ({_reason(error)}): run `gcloud auth application-default login` "
                           "or set GOOGLE_APPLICATION_CREDENTIALS; for the local cloud, `eval \"$(python -m infra.local env)\"`")
    except (TopologyError, ValueError) as error:
        return output.fail(f"health: configuration: {_reason(error)}")
    output.emit(getattr(args, "json", False), [asdict(check) for check in checks], lambda _: _render(cfg, checks))
    return 0 if all(check.ok for check in checks) else 1


def _render(cfg: Config, checks: list[Check]) -> None:
    say = lambda text: output.console.print(text, soft_wrap=True)  # soft_wrap: one line per check, whatever the width
    default = "" if os.environ.get("GOOGLE_CLOUD_PROJECT") else " (GOOGLE_CLOUD_PROJECT unset: the default)"
    say(f"health of project {escape(cfg.project)}{default}, region {escape(cfg.region)}")
    for component, (heading, _, _) in COMPONENTS.items():
        lines = [check for check in checks if check.component == component]
        if lines:
            say(f"[bold]{heading}[/bold]")
        for check in lines:
            if check.ok:
                say(f"  [green]✓[/green] {escape(check.name)}: {escape(check.detail)}")
            else:
                say(f"  [red]✗ {escape(check.name)}: {escape(check.detail)}[/red] -> fix: {escape(check.fix)}")
    failing = sum(not check.ok for check in checks)
    say(f"[red]✗ {failing} of {len(checks)} checks failing[/red]" if failing else f"[green]✓ all {len(checks)} checks healthy[/green]")
