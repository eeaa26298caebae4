"""The failover benchmark's side of the local cloud: staging jobs, publishing them, reading the stand-ins."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from PIL import Image

from common import layout
from infra.local.cloud import LocalCloud
from infra.local.testkit import admin

JOB_LABEL = "fast-render-job"  # the label the primary and the launcher put on what they create
EVENTS_SUBSCRIPTION = "bench-vertex-events"
FAILED = "JOB_STATE_FAILED"


def parse_time(text: str) -> float:
    """RFC 3339 (``...Z`` or ``...+00:00``, any fraction) -> epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- staging and publishing


def job_manifest(job_id: str) -> dict[str, Any]:
    """The smallest valid job: one still with an explicit duration, so intake probes no audio."""
    return {
        "version": 1,
        "job_id": job_id,
        "output": {"width": 320, "height": 180, "fps": 30},
        "scenes": [{"image": "images/001.png", "duration_s": 2.0}],
    }


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def stage_assets(cloud: LocalCloud, job_ids: Sequence[str]) -> None:
    """Upload each job's still (the manifest travels inline in the job message)."""
    bucket = cloud.storage().bucket(cloud.topology.buckets["staging"])
    png = tiny_png()

    def upload(job_id: str) -> None:
        bucket.blob(layout.asset_object(job_id, "images/001.png")).upload_from_string(png, content_type="image/png")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, job_ids))


def publish_jobs(cloud: LocalCloud, job_ids: Sequence[str]) -> dict[str, float]:
    """Publish the job messages all at once; returns each one's time just before its publish call."""
    publisher, _ = cloud.pubsub()
    topic = publisher.topic_path(cloud.project, "render-jobs")
    times, futures = {}, []
    for job_id in job_ids:
        data = json.dumps({"manifest": job_manifest(job_id)}).encode()
        times[job_id] = time.time()
        futures.append(publisher.publish(topic, data, job_id=job_id))
    for future in futures:
        future.result(timeout=60)
    return times


# --------------------------------------------------------------------------- waiting


def instances_by_job(compute: str) -> dict[str, list[dict[str, Any]]]:
    """Every instance ever created, grouped by its job label."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for instance in admin(compute, "instances")["instances"]:
        job_id = (instance.get("labels") or {}).get(JOB_LABEL)
        if job_id:
            grouped.setdefault(job_id, []).append(instance)
    return grouped


def wait_until(done: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def wait_for_inserts(compute: str, job_ids: Sequence[str], timeout_s: float, stall_s: float) -> bool:
    """Whether every job has an instance, waiting at most ``timeout_s``, or ``stall_s`` without a new one.

    A job whose failure event was lost gets no VM until the watchdog notices,
    which this benchmark keeps away: waiting longer for it would measure nothing.
    """
    wanted = set(job_ids)
    deadline = time.monotonic() + timeout_s
    seen, progress_at = -1, time.monotonic()
    while True:
        have = len(wanted & instances_by_job(compute).keys())
        if have == len(wanted):
            return True
        now = time.monotonic()
        if have != seen:
            seen, progress_at = have, now
        if now > deadline or now - progress_at > stall_s:
            return False
        time.sleep(0.2)


def wait_for_vm_gone(compute: str, job_id: str, timeout_s: float) -> bool:
    """Whether the job's VMs have all deleted themselves (their startup script ran to the end)."""
    return wait_until(lambda: all(i["deleted"] for i in instances_by_job(compute).get(job_id, [])), timeout_s)


# --------------------------------------------------------------------------- reading the stand-ins


def insert_times(compute: str) -> dict[str, float]:
    """Job id -> ``insertTime`` of the first insert operation for one of its instances."""
    job_of_instance = {i["name"]: job_id for job_id, group in instances_by_job(compute).items() for i in group}
    times: dict[str, float] = {}
    for operation in admin(compute, "operations")["operations"]:
        if operation.get("operationType") != "insert":
            continue
        job_id = job_of_instance.get(operation["targetLink"].rsplit("/", 1)[-1])
        if job_id is not None:
            issued = parse_time(operation["insertTime"])
            times[job_id] = min(issued, times.get(job_id, issued))
    return times


def vertex_failures(vertex: str) -> tuple[dict[str, float], dict[str, str]]:
    """Job id -> time its Vertex job turned FAILED; and custom job name -> job id."""
    failed, job_of_name = {}, {}
    for custom_job in admin(vertex, "custom_jobs")["custom_jobs"]:
        job_id = (custom_job.get("labels") or {}).get(JOB_LABEL)
        if not job_id:
            continue
        job_of_name[custom_job["name"]] = job_id
        for entry in custom_job["state_history"]:
            if entry["state"] == FAILED:
                failed[job_id] = parse_time(entry["time"])
    return failed, job_of_name


def subscribe_to_vertex_events(cloud: LocalCloud) -> str:
    """A pull subscription of our own on vertex-events (the function's push subscription is untouched)."""
    publisher, subscriber = cloud.pubsub()
    path = subscriber.subscription_path(cloud.project, EVENTS_SUBSCRIPTION)
    subscriber.create_subscription(name=path, topic=publisher.topic_path(cloud.project, "vertex-events"))
    return path


def failed_event_times(cloud: LocalCloud, subscription: str, job_of_name: dict[str, str]) -> dict[str, float]:
    """Job id -> the emulator's publish time of its Vertex job's FAILED log entry (drains the subscription)."""
    _, subscriber = cloud.pubsub()
    times: dict[str, float] = {}
    while True:
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 500}, timeout=10, retry=None)
        if not response.received_messages:
            return times
        subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
        for received in response.received_messages:
            payload = json.loads(received.message.data).get("jsonPayload", {})
            job_id = job_of_name.get(payload.get("customJob", ""))
            if job_id and payload.get("state") == FAILED:
                times[job_id] = received.message.publish_time.timestamp()


def read_state(cloud: LocalCloud, job_id: str) -> dict[str, Any]:
    """The job's state document ({} if it has none)."""
    return cloud.firestore().collection("jobs").document(job_id).get().to_dict() or {}


def history_times(state: dict[str, Any]) -> dict[str, float]:
    """Status -> the first time the job's state entered it."""
    times: dict[str, float] = {}
    for entry in state.get("history", []):
        times.setdefault(entry["status"], parse_time(entry["at"]))
    return times


class FirestoreProbe:
    """While it is open, a read and a commit of documents of its own every ``every_s``, timed: what one
    Firestore round trip costs on the emulator at that moment, measured outside the product (its
    calls make two reads and two commits on the way to the insert)."""

    def __init__(self, cloud: LocalCloud, every_s: float = 0.1) -> None:
        self.db, self.every_s = cloud.firestore(), every_s
        self.read_ms: list[float] = []
        self.commit_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FirestoreProbe:
        self.db.collection("bench-probe").document("read").set({"n": 0})
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        read, written = self.db.collection("bench-probe").document("read"), self.db.collection("bench-probe").document("commit")
        n = 0
        while not self._stop.wait(self.every_s):
            began = time.perf_counter()
            read.get()
            self.read_ms.append((time.perf_counter() - began) * 1000)
            began, n = time.perf_counter(), n + 1
            written.set({"n": n})
            self.commit_ms.append((time.perf_counter() - began) * 1000)
