"""The deployment's smoke test: one tiny job, as the main app submits it, and its outcome.

    python -m infra.smoke --project P [--timeout 900]

Stages a one-scene job (a small PNG, one second, no audio) under
``jobs/<job_id>/`` in the staging bucket, publishes its manifest inline on
``render-jobs`` (docs: the job contract, shared/specs/job-manifest.md), then
waits on the main app's pull subscriptions (``render-completed-main``,
``render-failed-main``) for that job's outcome, and checks that the video it
names is in the output bucket. It prints one line and exits 0 only then:

    smoke: ok: job smoke-20260101-120000-ab12 rendered by vertex in 212 s: gs://P-output/renders/.../video.mp4

Otherwise ``smoke: FAILED: ...`` with the reason (render-failed's, or the
timeout), then the job's own view (``avmonitor show``), and exit 1.

It talks to whatever the environment points at, like the functions: Google
with the caller's credentials (Cloud Build's service account), or the local
cloud when its emulator variables are set (tests/infra/test_smoke.py). Messages
for other jobs are left for their consumer (not acknowledged).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import struct
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime

DEFAULT_TIMEOUT_S = 900.0  # Vertex AI's queue, or a fallback VM's boot and driver install, take minutes


def tiny_png(width: int = 64, height: int = 36) -> bytes:
    """A solid-colour RGB PNG, made here so the smoke test needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((40, 90, 160)) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def smoke_manifest(job_id: str) -> dict:
    """The smallest job worth rendering: one still, one second, the contract's version 1."""
    return {
        "version": 1,
        "job_id": job_id,
        "title": "Fast Render smoke test",
        "output": {"width": 320, "height": 180, "fps": 10},
        "motion": "none",
        "transition": {"type": "cut"},
        "scenes": [{"image": "images/smoke.png", "duration_s": 1.0, "caption": "smoke test"}],
    }


def new_job_id() -> str:
    return f"smoke-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def submit(job_id: str) -> None:
    """The main app's path: stage the assets, then publish the manifest inline on render-jobs."""
    from common import layout
    from functions import clients
    from infra.local.topology import load_topology

    cfg = clients.config()
    bucket = clients.storage_client().bucket(cfg.staging_bucket)
    bucket.blob(layout.asset_object(job_id, "images/smoke.png")).upload_from_string(tiny_png(), content_type="image/png")
    topic = load_topology(cfg.project).function("intake-message").topic  # render-jobs
    publisher = clients.publisher()
    body = json.dumps({"manifest": smoke_manifest(job_id)}).encode()
    publisher.publish(publisher.topic_path(cfg.project, topic), body, job_id=job_id).result(timeout=60)


def wait_for_outcome(job_id: str, timeout_s: float) -> dict | None:
    """The job's render-completed or render-failed body, or None after ``timeout_s``."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    from functions import clients
    from infra.local.topology import load_topology

    project = clients.config().project
    names = [s.name for s in load_topology(project).subscriptions]  # render-completed-main, render-failed-main
    subscriber = pubsub_v1.SubscriberClient()
    paths = [subscriber.subscription_path(project, name) for name in names]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for path in paths:
                try:
                    response = subscriber.pull(request={"subscription": path, "max_messages": 50},
                                               timeout=max(1.0, min(10.0, deadline - time.monotonic())), retry=None)
                except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
                    continue
                ours, others = [], []
                for received in response.received_messages:
                    (ours if _job_of(received.message) == job_id else others).append(received)
                if others:  # another job's outcome: its consumer's, so back at once
                    subscriber.modify_ack_deadline(request={"subscription": path, "ack_ids": [m.ack_id for m in others],
                                                            "ack_deadline_seconds": 0})
                if ours:
                    subscriber.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in ours]})
                    return json.loads(ours[0].message.data)
            time.sleep(0.5)
    finally:
        subscriber.close()
    return None


def _job_of(message) -> str | None:
    if message.attributes.get("job_id"):
        return message.attributes["job_id"]
    try:
        return str(json.loads(message.data)["job_id"])
    except (ValueError, KeyError, TypeError):
        return None


def check_video(outcome: dict) -> str | None:
    """Why the completed job's video is not there as promised, or None when it is."""
    from functions import clients

    video = str(outcome.get("video", ""))
    if not video.startswith("gs://") or "/" not in video[5:]:
        return f"render-completed names no gs:// video: {video!r}"
    bucket, _, name = video[5:].partition("/")
    blob = clients.storage_client().bucket(bucket).get_blob(name)
    if blob is None or not blob.size:
        return f"render-completed names {video}, which is not in the bucket (or is empty)"
    return None


def report(job_id: str) -> None:
    """The job as operators see it (``avmonitor show``), for whoever reads the failed build's log."""
    print(f"smoke: the job's record (avmonitor show {job_id}):", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "operators", "show", job_id], timeout=60, check=False,
                       env={**os.environ, "COLUMNS": "160"})
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"smoke: avmonitor show {job_id} did not answer: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the project the deployment is in")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds to wait for the outcome (default {DEFAULT_TIMEOUT_S:.0f})")
    parser.add_argument("--job-id", help="the job id to use (default smoke-<UTC time>-<random>)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0 seconds")
    os.environ["GOOGLE_CLOUD_PROJECT"] = args.project  # what the product's clients read (functions/config.py)

    job_id = args.job_id or new_job_id()
    started = time.monotonic()
    try:
        submit(job_id)
        print(f"smoke: submitted job {job_id} to render-jobs; waiting up to {args.timeout:.0f} s for its outcome", flush=True)
        outcome = wait_for_outcome(job_id, args.timeout)
    except Exception as err:  # noqa: BLE001 -- one line for the build log, whatever broke
        print(f"smoke: FAILED: job {job_id}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        report(job_id)
        return 1
    elapsed = time.monotonic() - started
    if outcome is None:
        problem = f"no render-completed or render-failed within {args.timeout:.0f} s"
    elif outcome.get("status") == "succeeded":
        problem = check_video(outcome)
        if problem is None:
            print(f"smoke: ok: job {job_id} rendered by {outcome.get('rendered_by', '?')} in {elapsed:.0f} s: {outcome['video']}")
            return 0
    else:
        problem = f"render-failed: {outcome.get('reason', outcome)}"
    print(f"smoke: FAILED: job {job_id} after {elapsed:.0f} s: {problem}", flush=True)
    report(job_id)
    return 1


if __name__ == "__main__":
    sys.exit(main())
