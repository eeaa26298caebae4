"""The local cloud's GCS notification configs and Cloud Scheduler, in one small process.

Notifications: real GCS sends an object event to every notification config
whose bucket, prefix and event type match. fake-gcs-server publishes every
event of every bucket to one internal topic (``gcs-notifications``); this
process pulls that stream and republishes each message, with the same data and
attributes, to every topic of a matching ``notifications:`` entry in
infra/topology.yaml. A message is acknowledged only once all its copies are
published, so a crash redelivers rather than loses it; an event that matches no
config is acknowledged and dropped, as GCS would never have sent it.

Schedules: each ``schedules:`` entry publishes a tick to its topic every
``every_s`` seconds (``--tick-every`` overrides it, for tests), first one
interval after start, like a Cloud Scheduler job.

    PUBSUB_EMULATOR_HOST=127.0.0.1:8780 python -m infra.local.notification_router \
        --project fast-render-local --subscription gcs-notifications-router

Prints ``router ready`` once it is pulling.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.api_core import exceptions
from google.cloud import pubsub_v1

from common.logs import get_logger
from infra.local.topology import DEFAULT_PATH, Notification, Schedule, Topology, load_topology

log = get_logger("notification-router")

READY_LINE = "router ready"


def matching_topics(notifications: tuple[Notification, ...], attributes: dict[str, str]) -> list[str]:
    """The topics a GCS notification message goes to, from its ``bucketId``/``objectId``/``eventType``."""
    bucket = attributes.get("bucketId", "")
    name = attributes.get("objectId", "")
    event_type = attributes.get("eventType", "")
    return [n.topic for n in notifications if n.matches(bucket, name, event_type)]


class Router:
    """Republishes each pulled GCS event to the topics of its matching notification configs."""

    def __init__(self, topology: Topology, publisher: pubsub_v1.PublisherClient) -> None:
        self.topology = topology
        self.publisher = publisher

    def handle(self, message: Any) -> None:
        """The streaming-pull callback: fan out, then ack (nack if a publish failed)."""
        attributes = dict(message.attributes)
        topics = matching_topics(self.topology.notifications, attributes)
        try:
            futures = [
                self.publisher.publish(self.publisher.topic_path(self.topology.project, topic), message.data, **attributes)
                for topic in topics
            ]
            for future in futures:
                future.result(timeout=30)
        except Exception as error:  # noqa: BLE001 -- any failure means "deliver again later"
            log.error("republish failed; will be redelivered", object=attributes.get("objectId"), error=str(error))
            message.nack()
            return
        log.info(
            "gcs event routed",
            bucket=attributes.get("bucketId"),
            object=attributes.get("objectId"),
            event_type=attributes.get("eventType"),
            topics=topics,
        )
        message.ack()


def run_schedule(
    schedule: Schedule, every_s: float, project: str, publisher: pubsub_v1.PublisherClient, stop: threading.Event
) -> None:
    """Publish a tick to the schedule's topic every ``every_s`` seconds until ``stop`` is set."""
    topic_path = publisher.topic_path(project, schedule.topic)
    while not stop.wait(every_s):
        tick = {"schedule": schedule.name, "scheduledTime": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            publisher.publish(topic_path, json.dumps(tick).encode(), schedule=schedule.name).result(timeout=30)
        except Exception as error:  # noqa: BLE001 -- a missed tick is retried at the next interval
            log.error("tick not published", schedule=schedule.name, error=str(error))


def wait_for_subscription(subscriber: pubsub_v1.SubscriberClient, path: str, timeout_s: float) -> None:
    """Block until ``path`` exists: the orchestrator creates it while this process imports."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            subscriber.get_subscription(subscription=path, timeout=5)
            return
        except (exceptions.NotFound, exceptions.ServiceUnavailable, exceptions.DeadlineExceeded):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fan GCS events out per infra/topology.yaml; publish scheduled ticks.")
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True, help="pull subscription on fake-gcs-server's topic")
    parser.add_argument("--topology", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--tick-every", type=float, default=None, help="seconds between ticks of every schedule")
    args = parser.parse_args()

    topology = load_topology(args.project, args.topology)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(args.project, args.subscription)
    wait_for_subscription(subscriber, path, timeout_s=60)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    for schedule in topology.schedules:
        every_s = args.tick_every or schedule.every_s
        threading.Thread(target=run_schedule, args=(schedule, every_s, args.project, publisher, stop), daemon=True).start()
    streaming = subscriber.subscribe(path, callback=Router(topology, publisher).handle)
    log.info("routing", subscription=path, notifications=len(topology.notifications), schedules=len(topology.schedules))
    print(READY_LINE, flush=True)
    # The main thread only waits, so a signal is handled at once (not inside the client's locks).
    while not stop.wait(0.2):
        if streaming.done():
            streaming.result()  # the stream died: raise its error, and exit non-zero
    streaming.cancel()
    streaming.result(timeout=10)


if __name__ == "__main__":
    main()
