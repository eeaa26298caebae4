"""Google Cloud clients, made once per process and shared (as Cloud Functions advise).

Endpoints come from the config; the official clients are used everywhere, so
the same calls go to Google or to the local cloud. The Compute Engine and
Vertex AI libraries are imported on first use: they cost about a second of
cold start each, and most functions never call them.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore, pubsub_v1, storage

from functions.config import Config, load_config

if TYPE_CHECKING:
    from google.cloud import aiplatform_v1, compute_v1


@functools.lru_cache(maxsize=1)
def config() -> Config:
    return load_config()


def _credentials(cfg: Config) -> AnonymousCredentials | None:
    return AnonymousCredentials() if cfg.anonymous_credentials else None


@functools.lru_cache(maxsize=1)
def storage_client() -> storage.Client:
    return storage.Client(project=config().project)


@functools.lru_cache(maxsize=1)
def firestore_client() -> firestore.Client:
    cfg = config()
    return firestore.Client(project=cfg.project, database=cfg.firestore_database)


@functools.lru_cache(maxsize=1)
def publisher() -> pubsub_v1.PublisherClient:
    # Every publish is waited for (publish() below), so batching only delays it:
    # the default batch waits up to 10 ms for more messages. One message per batch is sent at once.
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))


@functools.lru_cache(maxsize=1)
def instances_client() -> "compute_v1.InstancesClient":
    from google.cloud import compute_v1

    cfg = config()
    options = ClientOptions(api_endpoint=cfg.compute_endpoint) if cfg.compute_endpoint else None
    return compute_v1.InstancesClient(credentials=_credentials(cfg), client_options=options)


@functools.lru_cache(maxsize=1)
def zone_operations_client() -> "compute_v1.ZoneOperationsClient":
    from google.cloud import compute_v1

    cfg = config()
    options = ClientOptions(api_endpoint=cfg.compute_endpoint) if cfg.compute_endpoint else None
    return compute_v1.ZoneOperationsClient(credentials=_credentials(cfg), client_options=options)


@functools.lru_cache(maxsize=1)
def job_client() -> "aiplatform_v1.JobServiceClient":
    from google.cloud import aiplatform_v1

    cfg = config()
    endpoint = cfg.vertex_endpoint or f"{cfg.region}-aiplatform.googleapis.com"
    return aiplatform_v1.JobServiceClient(
        credentials=_credentials(cfg),
        client_options=ClientOptions(api_endpoint=endpoint),
        transport="rest",
    )


def publish(topic_id: str, payload: dict[str, Any], **attributes: str) -> str:
    """Publish one JSON message and wait until Pub/Sub has it (returns its id)."""
    from functions import timing

    topic = publisher().topic_path(config().project, topic_id)
    data = json.dumps(payload, separators=(",", ":")).encode()
    with timing.span("publish"):
        return publisher().publish(topic, data, **attributes).result(timeout=60)
