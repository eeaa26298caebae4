"""The render worker: fetch a job from the staging bucket, render it, deliver the video.

The same worker runs on the fallback VM (started by ``startup.sh``, which
reads its settings from the instance metadata) and as the Vertex AI
container's command (settings as flags). It knows nothing of job state: it
reports progress through its heartbeat ``jobs/<job_id>/progress/<renderer>.json``
(``vertex``, or the VM's instance name), rewritten every few seconds even
while a long step runs, so that a silent VM is known to be hung; and it
delivers ``renders/<job_id>/video.mp4``, carrying its report in the object's
metadata (``fast-render-report``), then ``render.json``. The video's arrival
completes the job; the report rides on it, so completion never reads a
``render.json`` that is not written yet.

Delivery is create-only (``if_generation_match=0``): when the primary and a
hedged VM both finish, the first video wins and the second renderer just stops.
The loser hears 412 (precondition failed), or, since the render account may only
create objects in the output bucket (roles/storage.objectCreator), possibly 403:
overwriting needs storage.objects.delete, and which of the two Cloud Storage
answers first is not documented. A 403 is a lost race only when the object is
there (the account may read it: objectViewer); otherwise it is a real refusal.
Finished segments are kept under ``jobs/<job_id>/segments/`` as they finish,
so a worker restarted after a preemption renders only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from google.api_core.exceptions import Forbidden, PreconditionFailed
from google.cloud import storage

from common import layout
from common.heartbeat import RendererHeartbeat
from common.logs import get_logger
from common.manifest import ManifestError

log = get_logger("worker")

METADATA_PREFIX = "fast-render-"
HEARTBEAT_EVERY_S = 2.0  # progress is written at most this often
KEEPALIVE_EVERY_S = 5.0  # and at least this often, whatever the worker is doing (VM_HEARTBEAT_TIMEOUT_S is far above)


@dataclass(frozen=True)
class WorkerSpec:
    job_id: str
    staging_bucket: str
    output_bucket: str
    rendered_by: str  # "vm" or "vertex"
    instance: str | None = None
    gpu: str | None = None
    price_per_hour: float | None = None


def instance_metadata() -> dict[str, str]:
    """This VM's metadata attributes, from the metadata server (empty off a VM)."""
    host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    url = f"http://{host}/computeMetadata/v1/instance/attributes/?recursive=true"
    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return {}


def _spec(argv: list[str]) -> WorkerSpec:
    parser = argparse.ArgumentParser(prog="python -m render_vm worker", description=__doc__.splitlines()[0])
    parser.add_argument("--job-id")
    parser.add_argument("--staging-bucket")
    parser.add_argument("--output-bucket")
    parser.add_argument("--rendered-by", choices=("vm", "vertex"))
    args = parser.parse_args(argv)
    flags = {"job-id": args.job_id, "staging-bucket": args.staging_bucket, "output-bucket": args.output_bucket}
    metadata = {} if all(flags.values()) else instance_metadata()

    def setting(key: str) -> str:
        value = flags.get(key) or metadata.get(METADATA_PREFIX + key)
        if not value:
            parser.error(f"--{key} is required (or instance metadata {METADATA_PREFIX}{key})")
        return value

    price = metadata.get(METADATA_PREFIX + "price-per-hour")
    return WorkerSpec(
        job_id=setting("job-id"),
        staging_bucket=setting("staging-bucket"),
        output_bucket=setting("output-bucket"),
        rendered_by=args.rendered_by or ("vm" if metadata else "vertex"),
        instance=metadata.get(METADATA_PREFIX + "instance") or socket.gethostname(),
        gpu=metadata.get(METADATA_PREFIX + "gpu"),
        price_per_hour=float(price) if price else None,
    )


def renderer_name(spec: WorkerSpec) -> str:
    """Whose heartbeat this is: ``vertex`` for the primary, else the VM's instance name."""
    return "vertex" if spec.rendered_by == "vertex" else (spec.instance or socket.gethostname())


class Heartbeat:
    """Writes this renderer's heartbeat: progress at most every few seconds, a keep-alive at least every few.

    The keep-alive runs in its own thread, so a long download or upload still
    shows a live worker; a frozen VM stops it with everything else.
    """

    def __init__(self, bucket: storage.Bucket, spec: WorkerSpec) -> None:
        self._blob = bucket.blob(layout.progress_object(spec.job_id, renderer_name(spec)))
        self._beat = RendererHeartbeat(job_id=spec.job_id, rendered_by=spec.rendered_by, instance=spec.instance)
        self._last = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def update(self, progress: dict, *, force: bool = False) -> None:
        with self._lock:
            self._beat = self._beat.with_progress(progress)
            if not force and time.monotonic() - self._last < HEARTBEAT_EVERY_S:
                return
            self._write()

    def _keep_alive(self) -> None:
        while not self._stopped.wait(KEEPALIVE_EVERY_S):
            with self._lock:
                if time.monotonic() - self._last >= KEEPALIVE_EVERY_S:
                    self._write()

    def _write(self) -> None:
        self._last = time.monotonic()
        beat = self._beat.stamped()
        try:
            self._blob.upload_from_string(beat.to_json(), content_type="application/json")
        except Exception as err:  # noqa: BLE001 -- progress is best effort; the render goes on
            log.warning("heartbeat not written", job_id=beat.job_id, error=str(err))


def run(spec: WorkerSpec, client: storage.Client | None = None) -> int:
    """Render one job; the exit code follows the renderer's contract (2: invalid job)."""
    client = client or storage.Client()
    staging, output = client.bucket(spec.staging_bucket), client.bucket(spec.output_bucket)
    heartbeat = Heartbeat(staging, spec).start()
    try:
        return _run(spec, staging, output, heartbeat)
    finally:
        heartbeat.stop()


def _run(spec: WorkerSpec, staging: storage.Bucket, output: storage.Bucket, heartbeat: Heartbeat) -> int:
    from render_vm.renderer import render_job  # heavy imports only when rendering

    started = time.monotonic()
    log.info("worker started", job_id=spec.job_id, rendered_by=spec.rendered_by, instance=spec.instance)
    with tempfile.TemporaryDirectory(prefix=f"render-{spec.job_id}-") as tmp:
        job_dir, segments_dir, video = Path(tmp, "job"), Path(tmp, "segments"), Path(tmp, "video.mp4")
        heartbeat.update({"stage": "downloading"}, force=True)
        reused = _download_job(staging, spec.job_id, job_dir, segments_dir)
        segments_prefix = layout.segments_prefix(spec.job_id)

        def keep_segment(path: Path) -> None:
            staging.blob(segments_prefix + path.name).upload_from_filename(str(path))

        try:
            report = render_job(
                job_dir, video, segments_dir=segments_dir, on_segment_done=keep_segment, on_progress=heartbeat.update
            )
        except ManifestError as err:
            heartbeat.update({"stage": "failed", "invalid": True, "error": str(err)}, force=True)
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:
            heartbeat.update({"stage": "failed", "error": f"{type(err).__name__}: {err}"}, force=True)
            raise
        heartbeat.update({"stage": "uploading", "frames_done": report.frames, "frames_total": report.frames}, force=True)
        wall_s = time.monotonic() - started
        render_report = {
            **asdict(report),  # the renderer's figures: video_s, frames, wall_s (rendering alone), encoder...
            "job_id": spec.job_id,
            "rendered_by": spec.rendered_by,
            "instance": spec.instance,
            "gpu": spec.gpu,
            "worker_wall_s": round(wall_s, 2),  # download + render + upload
            "cost_usd": round(wall_s / 3600 * spec.price_per_hour, 4) if spec.price_per_hour else None,
            "segments_downloaded": reused,
        }
        if not _deliver(output, spec.job_id, video, render_report):
            heartbeat.update({"stage": "lost-race"}, force=True)
            return 0
    heartbeat.update({"stage": "done", "frames_done": report.frames, "frames_total": report.frames}, force=True)
    log.info("video delivered", job_id=spec.job_id, wall_s=round(wall_s, 2), video_s=report.video_s)
    return 0


def _download_job(bucket: storage.Bucket, job_id: str, job_dir: Path, segments_dir: Path) -> int:
    """The job folder to ``job_dir``, its kept segments to ``segments_dir``; returns the segment count.

    Object names are untrusted paths: GCS allows ``jobs/x//tmp/f`` and
    ``jobs/x/images/../../f``. A name that would land outside its folder is
    skipped (the manifest's own paths are checked by the contract validator).
    """
    prefix, segments = layout.job_prefix(job_id), layout.segments_prefix(job_id)
    segments_dir.mkdir(parents=True, exist_ok=True)
    reused = 0
    for blob in bucket.list_blobs(prefix=prefix):
        if blob.name.startswith(layout.progress_prefix(job_id)) or blob.name.endswith("/"):
            continue
        in_segments = blob.name.startswith(segments)
        folder, relative = (segments_dir, blob.name[len(segments):]) if in_segments else (job_dir, blob.name[len(prefix):])
        target = safe_path(folder, relative)
        if target is None:
            log.warning("object skipped: its name leaves the job folder", job_id=job_id, object=blob.name)
            continue
        reused += in_segments
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    return reused


def safe_path(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` if that stays inside ``folder`` (no empty, ``.`` or ``..`` parts); else None."""
    parts = relative.split("/")
    if not relative or any(part in ("", ".", "..") for part in parts) or "\\" in relative or "\x00" in relative:
        return None
    target = folder.joinpath(*parts)
    return target if target.resolve().is_relative_to(folder.resolve()) else None


def _deliver(bucket: storage.Bucket, job_id: str, video: Path, report: dict) -> bool:
    """Upload the video, then its report, create-only; False when another renderer won."""
    blob = bucket.blob(layout.video_object(job_id))
    blob.metadata = {layout.VIDEO_REPORT_METADATA: json.dumps(report, separators=(",", ":"))}
    if not _create(blob, lambda: blob.upload_from_filename(str(video), content_type="video/mp4", if_generation_match=0)):
        log.info("another renderer delivered first; this video is discarded", job_id=job_id)
        return False
    report_blob = bucket.blob(layout.render_report_object(job_id))
    _create(report_blob, lambda: report_blob.upload_from_string(
        json.dumps(report, indent=1), content_type="application/json", if_generation_match=0
    ))
    return True


def _create(blob: storage.Blob, upload: Callable[[], object]) -> bool:
    """Run a create-only upload; False when the object already exists (412, or 403 over an existing object)."""
    try:
        upload()
    except PreconditionFailed:
        return False
    except Forbidden:
        try:
            exists = blob.exists()
        except Exception:  # noqa: BLE001 -- cannot tell: the refusal stands, as it was
            exists = False
        if not exists:
            raise  # a real refusal (no create permission, a retention policy...): the job must hear of it
        return False
    return True


def main(argv: list[str]) -> int:
    return run(_spec(argv))
