"""Intake: a job message or an uploaded ``job.json`` becomes an accepted job.

Two doors, one path. The main app either publishes a message on
``render-jobs`` (the manifest inline, its assets already staged under
``jobs/<job_id>/``, or just ``{"job_id": ...}`` pointing at a staged
``job.json``), or uploads ``jobs/<job_id>/job.json`` last, after its assets.
Either way the manifest is validated by the one contract validator, the assets
it names must be in the staging bucket, and the job is handed to the primary
renderer. An invalid job fails at once with its one-line reason; nothing is
launched for it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from catalog.model import ENV_VIDEO_LENGTH, env_positive_number
from common import layout
from common.logs import get_logger
from common.manifest import Manifest, ManifestError, check_assets_exist, parse_manifest
from common.timeline import scene_durations
from functions import clients, experiments
from functions.jobs import fail_new_job, store
from functions.state import JobState, Status

log = get_logger("intake")


def accept_job_message(data: bytes) -> JobState | None:
    """Handle one ``render-jobs`` message (JSON: ``{"manifest": {...}}`` or ``{"job_id": "..."}``)."""
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        log.error("job message rejected: not JSON", reason=str(err))
        return None
    except RecursionError:
        log.error("job message rejected: JSON nested too deeply to read")
        return None
    if not isinstance(message, dict) or not ({"manifest", "job_id"} & set(message)):
        log.error("job message rejected: needs 'manifest' or 'job_id'", keys=sorted(message) if isinstance(message, dict) else None)
        return None
    unknown = set(message) - {"manifest", "job_id"}
    hinted_id = message.get("job_id")
    if unknown:
        return _reject(hinted_id, ManifestError(sorted(unknown)[0], "unknown field in job message (allowed: manifest, job_id)"))
    if "manifest" in message and not isinstance(message["manifest"], dict):
        kind = type(message["manifest"]).__name__
        return _reject(hinted_id, ManifestError("manifest", f"must be a JSON object (the manifest itself), got {kind}"))
    if "manifest" in message:
        manifest_json = json.dumps(message["manifest"]).encode()
        try:
            manifest = parse_manifest(message["manifest"])
        except ManifestError as err:
            return _reject(hinted_id or message["manifest"].get("job_id"), err)
        if hinted_id is not None and hinted_id != manifest.job_id:
            return _reject(manifest.job_id, ManifestError("job_id", f"message says {hinted_id!r}, manifest says {manifest.job_id!r}"))
        _stage_manifest_copy(manifest.job_id, manifest_json)
        return start_job(manifest, source="message")
    if not layout.is_valid_job_id(hinted_id):
        return _reject(None, ManifestError("job_id", f"not a valid job id: {hinted_id!r}"))
    try:
        raw = _bucket().blob(layout.manifest_object(hinted_id)).download_as_bytes()
    except NotFound:
        return _reject(hinted_id, ManifestError("job.json", f"not found: gs://{_bucket().name}/{layout.manifest_object(hinted_id)}"))
    return accept_manifest_bytes(raw, hinted_id, source="message")


def accept_staged_manifest(object_name: str) -> JobState | None:
    """Handle a staging-bucket finalize event; only ``jobs/<id>/job.json`` starts a job."""
    job_id = layout.job_id_of_manifest_object(object_name)
    if job_id is None:
        return None  # an asset upload: the manifest comes last and starts the job
    try:
        raw = _bucket().blob(object_name).download_as_bytes()
    except NotFound:
        log.warning("job.json vanished before it could be read", job_id=job_id, object=object_name)
        return None
    return accept_manifest_bytes(raw, job_id, source="upload")


def accept_manifest_bytes(raw: bytes, folder_job_id: str, source: str) -> JobState | None:
    try:
        manifest = parse_manifest(raw)
    except ManifestError as err:
        return _reject(folder_job_id, err)
    if manifest.job_id != folder_job_id:
        return _reject(folder_job_id, ManifestError("job_id", f"{manifest.job_id!r} does not match its folder jobs/{folder_job_id}/"))
    return start_job(manifest, source=source)


def start_job(manifest: Manifest, source: str) -> JobState | None:
    """Check the assets, record the job (once), and hand it to the primary renderer."""
    job_id = manifest.job_id
    existing = store().get(job_id)
    if existing is not None and (existing.status is not Status.RECEIVED or existing.source != source):
        # Known already: a duplicate, or the other door's echo of the same job.
        log.info("duplicate job ignored", job_id=job_id, status=existing.status.value, source=source)
        return existing
    try:
        staged = {b.name for b in _bucket().list_blobs(prefix=layout.job_prefix(job_id))}
        check_assets_exist(manifest, lambda rel: layout.asset_object(job_id, rel) in staged)
        length_s = estimate_video_length(manifest)
    except ManifestError as err:
        return _reject(job_id, err)

    arm = experiments.for_new_job(job_id)  # its A/B arm, if any (deterministic: a redelivery gets the same)

    def create(state: JobState | None) -> JobState | None:
        if state is not None:
            return None
        state = JobState(job_id=job_id, status=Status.RECEIVED, source=source, video_length_s=length_s,
                         deadline_s=manifest.deadline_s, experiment=arm)
        state.move_to(Status.RECEIVED, f"accepted from {source}", scenes=len(manifest.scenes), video_length_s=round(length_s, 2),
                      experiment=f"{arm.name}: {arm.arm}" if arm else None)
        return state

    state, created = store().update(job_id, create)
    assert state is not None
    if created or (state.status is Status.RECEIVED and state.source == source):
        # Also on a redelivery that finds RECEIVED: the first try may have
        # crashed before publishing (the primary step is idempotent).
        clients.publish(clients.config().topic_primary, {"job_id": job_id}, job_id=job_id)
        log.info("job accepted" if created else "job re-announced", job_id=job_id, source=source, video_length_s=length_s)
    return state


def estimate_video_length(manifest: Manifest) -> float:
    """The video's length in seconds, by the timeline rules (``VIDEO_LENGTH_S`` overrides it).

    Scenes with narration and no explicit duration need the clip's length,
    read from the staged file; only then is anything downloaded.
    """
    override = env_positive_number(ENV_VIDEO_LENGTH)
    if override is not None:
        return override
    known = manifest.known_length_s()
    if known is not None:
        return known
    return sum(scene_durations(manifest, _narration_lengths(manifest)))


def _narration_lengths(manifest: Manifest) -> dict[str, float]:
    from render_vm.renderer.audio import AudioError, probe_duration  # PyAV: only needed here

    lengths: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, scene in enumerate(manifest.scenes):
            if scene.narration is None or scene.duration_s is not None or scene.narration in lengths:
                continue
            local = Path(tmp) / f"{i}{Path(scene.narration).suffix}"
            _bucket().blob(layout.asset_object(manifest.job_id, scene.narration)).download_to_filename(str(local))
            try:
                lengths[scene.narration] = probe_duration(local)
            except AudioError as err:
                raise ManifestError(f"scenes[{i}].narration", f"cannot read audio: {err}") from None
    return lengths


def _stage_manifest_copy(job_id: str, manifest_json: bytes) -> None:
    """Keep the job a complete folder: write the inline manifest as ``job.json`` (create-only).

    Its finalize event reaches the upload door too, which finds the job
    already known and does nothing.
    """
    try:
        _bucket().blob(layout.manifest_object(job_id)).upload_from_string(
            manifest_json, content_type="application/json", if_generation_match=0
        )
    except PreconditionFailed:
        pass  # already staged (a redelivery, or the app uploaded it too)


def _reject(job_id: Any, err: ManifestError) -> JobState | None:
    """One line naming the field; a job of that id that nobody knows yet is recorded as failed.

    A job that exists already is never touched by a message about it that is
    malformed: it may be healthy and rendering.
    """
    if layout.is_valid_job_id(job_id):
        return fail_new_job(job_id, f"invalid job: {err}", field=err.field)
    log.error("job rejected", reason=f"invalid job: {err}", field=err.field)
    return None


def _bucket():
    return clients.storage_client().bucket(clients.config().staging_bucket)
