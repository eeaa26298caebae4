"""Driving the local cloud from outside, as the main app and an operator would.

The demo and the end-to-end tests share these: stage a job folder in the
staging bucket, call the Compute Engine and Vertex AI stand-ins' admin API
(faults, history), and print a job's timeline.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.cloud import storage

from common import layout
from functions.state import JobState

if TYPE_CHECKING:
    from infra.local.cloud import LocalCloud


def stage_job(bucket: storage.Bucket, job_dir: Path, job_id: str, *, with_manifest: bool = True) -> None:
    """Upload a job folder's assets, and its ``job.json`` last (its upload starts the render)."""
    files = sorted(p for p in job_dir.rglob("*") if p.is_file() and p.name != "job.json")
    for path in files:
        bucket.blob(layout.asset_object(job_id, path.relative_to(job_dir).as_posix())).upload_from_filename(str(path))
    if with_manifest:
        bucket.blob(layout.manifest_object(job_id)).upload_from_filename(str(job_dir / "job.json"), content_type="application/json")


def submit_job(cloud: "LocalCloud", bucket: storage.Bucket, job_dir: Path) -> str:
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
