"""Driving the local cloud from outside, as the main app and an operator would.

The demo and the end-to-end tests share these: stage a job folder in the
staging bucket, call the Compute Engine and Vertex AI stand-ins' admin API
(faults, history), and print a job's timeline. The chaos campaign adds: collect
what the main app hears (``Outcomes``), set the push relay's faults for a while
(``relay_faults``) and deliver a push body straight to a function, several
copies at once (``deliver_push``), as Pub/Sub in the cloud may.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import os
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.cloud import storage

from common import layout
from functions.state import JobState

if TYPE_CHECKING:
    from infra.local.cloud import LocalCloud

# The test clouds' settings: seconds, not the cloud's minutes, so that hedging, failover backoff,
# relaunches and a crashed claimant's hand-over happen within a test's patience.
FAST_SETTINGS = {
    "VM_WORKER_COMMAND": "python -m render_vm worker",
    "PRIMARY_QUEUE_TIMEOUT_S": "6",
    "FAILOVER_BACKOFF_S": "0.5",
    "FAILOVER_MAX_WAIT_S": "4",
    "CLAIM_TIMEOUT_S": "30",
    "VM_HEARTBEAT_TIMEOUT_S": "15",  # 3 x the worker's keep-alive (render_vm/worker.py)
    "VM_BOOT_TIMEOUT_S": "40",
    "INSERT_RETRY_BACKOFF_S": "0.2",
}


def stage_job(bucket: storage.Bucket, job_dir: Path, job_id: str, *, with_manifest: bool = True) -> None:
    """Upload a job folder's assets, and its ``job.json`` last (its upload starts the render)."""
    files = sorted(p for p in job_dir.rglob("*") if p.is_file() and p.name != "job.json")
    for path in files:
        bucket.blob(layout.asset_object(job_id, path.relative_to(job_dir).as_posix())).upload_from_filename(str(path))
    if with_manifest:
        bucket.blob(layout.manifest_object(job_id)).upload_from_filename(str(job_dir / "job.json"), content_type="application/json")


def submit_job(cloud: LocalCloud, bucket: storage.Bucket, job_dir: Path) -> str:
    """The main app's path: stage the assets, then publish the manifest inline on ``render-jobs``."""
    manifest = json.loads((job_dir / "job.json").read_text())
    stage_job(bucket, job_dir, manifest["job_id"], with_manifest=False)
    cloud.publish("render-jobs", json.dumps({"manifest": manifest}).encode(), job_id=manifest["job_id"])
    return manifest["job_id"]


def admin(endpoint: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call a stand-in's ``/_admin/`` API (GET, or POST with a JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{endpoint}/_admin/{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def format_timeline(state: JobState) -> str:
    """The job's history as operators read it: offset from the start, status, note."""
    if not state.history:
        return "(no history)"
    start = datetime.fromisoformat(state.history[0]["at"])
    lines = []
    for entry in state.history:
        offset = (datetime.fromisoformat(entry["at"]) - start).total_seconds()
        lines.append(f"  +{offset:7.2f}s  {entry['status']:<19} {entry.get('note', '')}")
    return "\n".join(lines)


class Outcomes:
    """Every render-completed / render-failed message the main app would receive, by job id.

    Messages whose body is not a JSON object with a ``job_id`` are kept in ``unreadable``.
    """

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self.completed: dict[str, list[dict]] = defaultdict(list)
        self.failed: dict[str, list[dict]] = defaultdict(list)
        self.unreadable: list[bytes] = []

    def drain(self, timeout_s: float = 0.5) -> None:
        for subscription, sink in (("render-completed-main", self.completed), ("render-failed-main", self.failed)):
            for message in self._cloud.pull(subscription, timeout=timeout_s, max_messages=100):
                try:
                    body = json.loads(message.data)
                    sink[str(body["job_id"])].append(body)
                except (ValueError, KeyError, TypeError):
                    self.unreadable.append(message.data)

    def outcome(self, job_id: str) -> dict | None:
        """The first outcome heard for the job, or None."""
        return (self.completed.get(job_id) or self.failed.get(job_id) or [None])[0]

    def wait(self, job_id: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            if self.outcome(job_id):
                return self.outcome(job_id)
        raise TimeoutError(f"no render-completed or render-failed for {job_id} in {timeout_s:.0f} s")

    def settle(self, seconds: float = 3.0) -> None:
        """Keep collecting for a while, so that late duplicates are seen."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.drain()


@contextlib.contextmanager
def relay_faults(cloud: LocalCloud, **faults: Any) -> Iterator[dict[str, Any]]:
    """Set the push relay's faults (``duplicate=``, ``drop_once=``, ``kill=``, ``seed=``) for a ``with`` block."""
    cloud.relay.set_faults(**faults)
    try:
        yield cloud.relay.faults()
    finally:
        cloud.relay.clear()


def push_body(data: bytes, attributes: dict[str, str] | None = None, *, message_id: str | None = None,
              subscription: str = "projects/chaos/subscriptions/direct") -> bytes:
    """A Pub/Sub push request body, as the emulator (and Pub/Sub) sends it."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message_id = message_id or str(time.time_ns())
    message = {"data": base64.b64encode(data).decode(), "attributes": attributes or {},
               "messageId": message_id, "message_id": message_id, "publishTime": now, "publish_time": now}
    return json.dumps({"message": message, "subscription": subscription}).encode()


def deliver_push(cloud: LocalCloud, function: str, data: bytes, attributes: dict[str, str] | None = None, *,
                 copies: int = 1, message_id: str | None = None, timeout_s: float = 120) -> list[int]:
    """POST one push body to a function's own URL, ``copies`` times at once; returns each HTTP status.

    The emulator has one push outstanding per subscription; Pub/Sub in the
    cloud has many, so two deliveries of one message can run at the same
    time. This is that, on demand (0 for a delivery that got no answer).
    """
    body = push_body(data, attributes, message_id=message_id)
    url = cloud.function_url(function)

    def post(_: int) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except (urllib.error.URLError, OSError):
            return 0

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(post, range(copies)))


def wait_until(condition: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that (AssertionError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout_s} s")
        time.sleep(interval_s)
    return value


def forget_clients() -> None:
    """Clear the product's per-process caches (clients, config, state store): they hold one cloud's endpoints."""
    for module_name in ("functions.clients", "functions.jobs", "functions.fallback", "functions.memory"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@contextlib.contextmanager
def client_of(cloud: LocalCloud, extra_env: dict[str, str] | None = None) -> Iterator[LocalCloud]:
    """This process as a client of ``cloud``, as the main app is: its environment set (plus ``extra_env``)
    and the product's cached clients dropped; both given back afterwards."""
    saved = dict(os.environ)
    os.environ.update({**cloud.env, **(extra_env or {})})
    forget_clients()
    try:
        yield cloud
    finally:
        os.environ.clear()
        os.environ.update(saved)
        forget_clients()
