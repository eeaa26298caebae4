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

Where the functions run is told by the environment (``operators.health_runtime``):
a local cloud's state file (``$LOCAL_CLOUD_STATE_DIR``, else ``.local-cloud``,
``cloud.json``) recording this environment's Pub/Sub endpoint lists their
processes; otherwise the Cloud Functions v2 API is asked (package
``google-cloud-functions``). The same source gives the functions' own
environment (``WORKER_IMAGE``...), which is what counts.

    avmonitor health            # exit 0 only when every line is green
    avmonitor health --json     # [{"component", "name", "ok", "detail", "fix"}, ...]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from google.api_core import exceptions
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import pubsub_v1
from rich.markup import escape

from functions import clients
from functions.config import Config
from infra.local.topology import Topology, TopologyError, load_topology
from operators import output
from operators.health_model import _UNREACHABLE, APPLY, COMPONENTS, RESTART, Check, _Bad, _exists, _probe, _reason
from operators.health_runtime import _runtime

__all__ = ["COMPONENTS", "DEFAULT_TIMEOUT_S", "Check", "add_arguments", "check_all", "run"]

# Cold emulators answer their first call in 2-3 s on a busy machine; a dead one refuses at once.
DEFAULT_TIMEOUT_S = 10.0


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
                     "run `terraform -chdir=infra/terraform apply` (it creates the notification configs)"))


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
    set_image = "set WORKER_IMAGE to the pushed render image (`terraform -chdir=infra/terraform apply -var worker_image=IMAGE`)"
    for function, name in (("primary", "Vertex AI container"), ("fallback-launcher", "VM worker")):
        env, source = runtime.function_env(function)
        if env is None:
            env, source = os.environ, "this shell's environment: the functions' own could not be read"
        image, command = env.get("WORKER_IMAGE", "").strip(), env.get("VM_WORKER_COMMAND", "").strip()
        if function == "fallback-launcher" and command:
            yield Check("worker", name, True, f"VM_WORKER_COMMAND=`{command}` ({source})")
        elif image:
            how = "the VM's startup script pulls and runs it" if function == "fallback-launcher" else "the custom job's container"
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
