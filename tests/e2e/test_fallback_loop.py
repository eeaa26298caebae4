"""The whole loop on the local cloud: a job goes in, a video comes out, whatever the primary does.

Each test is what the main app (or an operator) sees: the resume signal on
render-completed, the video in the output bucket, the job's state, and how
many VMs and Vertex jobs were made for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from common import layout
from functions import clients
from functions.jobs import store
from functions.state import Status
from infra.local.testkit import stage_job, submit_job


def submit_message(cloud, job_dir: Path) -> str:
    """The main app's path: assets staged, the manifest inline in a job message."""
    return submit_job(cloud, staging(), job_dir)


def staging():
    return clients.storage_client().bucket(clients.config().staging_bucket)


def output():
    return clients.storage_client().bucket(clients.config().output_bucket)


def assert_video_delivered(job_id: str, tmp_path: Path) -> None:
    """The output is a real H.264 + AAC MP4 exactly as long as the timeline."""
    local = tmp_path / "video.mp4"
    output().blob(layout.video_object(job_id)).download_to_filename(str(local))
    state = store().get(job_id)
    with av.open(str(local)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        duration = container.duration / 1_000_000
    assert kinds == {"video": "h264", "audio": "aac"}
    assert duration == pytest.approx(state.video_length_s, abs=1 / 30 + 0.1)


def test_primary_succeeds_without_any_vm(cloud, outcomes, faults, job_dir, tmp_path) -> None:
    job_id = submit_message(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vertex", outcome
    assert_video_delivered(job_id, tmp_path)
    assert faults.instances(job_id) == []
    assert len(faults.custom_jobs(job_id)) == 1


@pytest.mark.parametrize("fault", [{"mode": "quota"}, {"mode": "timeout", "timeout_after_s": 1}, {"mode": "quota_on_create"}])
def test_primary_failure_falls_back_to_one_vm_that_deletes_itself(cloud, outcomes, faults, job_dir, tmp_path, fault) -> None:
    faults.vertex(**fault)
    job_id = submit_message(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    assert_video_delivered(job_id, tmp_path)
    state = store().get(job_id)
    statuses = [h["status"] for h in state.history]
    assert statuses.index("fallback_requested") < statuses.index("vm_running") < statuses.index("succeeded")
    assert state.primary.failure == ("quota" if "quota" in fault["mode"] else "timeout")
    assert state.fallback.gpu and state.fallback.estimated_cost_usd > 0
    [vm] = faults.instances(job_id)
    assert vm["deleted"]
    # State is in Firestore, the fleet's memory too: the staging bucket holds only the job's files.
    kept = {blob.name for blob in staging().list_blobs()}
    assert not [name for name in kept if not name.startswith("jobs/")], kept
    assert store().get(job_id).to_document(90)["expire_at"] is not None


def test_a_job_json_dropped_in_the_bucket_starts_a_render(cloud, outcomes, faults, job_dir, tmp_path) -> None:
    job_id = job_dir.name
    stage_job(staging(), job_dir, job_id, with_manifest=True)
    assert outcomes.wait(job_id)["status"] == "succeeded"
    assert store().get(job_id).source == "upload"
    assert_video_delivered(job_id, tmp_path)


def test_every_event_delivered_twice_gives_one_vm_and_one_completion(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    job_id = submit_message(cloud, job_dir)
    manifest = json.loads((job_dir / "job.json").read_text())
    cloud.publish("render-jobs", json.dumps({"manifest": manifest}).encode(), job_id=job_id)  # the job message, again
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded"

    # Now every other event of the job, once more: the primary request, the Vertex
    # failure, the fallback request and the video's finalize notification.
    [vertex_job] = faults.custom_jobs(job_id)
    state = store().get(job_id)
    cloud.publish("render-primary", json.dumps({"job_id": job_id}).encode(), job_id=job_id)
    cloud.publish("vertex-events", json.dumps({"jsonPayload": {"customJob": state.primary.custom_job}}).encode())
    cloud.publish("render-fallback", json.dumps({"job_id": job_id}).encode(), job_id=job_id)
    video = output().get_blob(layout.video_object(job_id))
    cloud.publish("output-events", json.dumps({"name": video.name, "bucket": video.bucket.name}).encode(),
                  bucketId=video.bucket.name, objectId=video.name, objectGeneration=str(video.generation),
                  eventType="OBJECT_FINALIZE", payloadFormat="JSON_API_V1")
    outcomes.settle(6)

    assert len(outcomes.completed[job_id]) == 1
    assert len(faults.instances(job_id)) == 1
    assert vertex_job and len(faults.custom_jobs(job_id)) == 1
    final = store().get(job_id)
    assert final.status is Status.SUCCEEDED
    assert [h["status"] for h in final.history].count("succeeded") == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"output": {"width": 1281}}, "invalid job: output.width: must be even"),
        ({"scenes": [{"image": "images/missing.png", "duration_s": 1}]}, "invalid job: scenes[0].image: file not found: images/missing.png"),
        ({"motoin": "kenburns"}, "invalid job: motoin: unknown field"),
    ],
)
def test_an_invalid_manifest_fails_the_job_with_its_reason_and_launches_nothing(cloud, outcomes, faults, job_dir, change, reason) -> None:
    job_id = job_dir.name
    manifest = json.loads((job_dir / "job.json").read_text())
    manifest.update(change)
    (job_dir / "job.json").write_text(json.dumps(manifest))
    stage_job(staging(), job_dir, job_id, with_manifest=True)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "failed" and outcome["reason"].startswith(reason)
    assert "\n" not in outcome["reason"]
    state = store().get(job_id)
    assert state.status is Status.FAILED and state.error == outcome["reason"]
    outcomes.settle(2)
    assert faults.custom_jobs(job_id) == [] and faults.instances(job_id) == []
    assert len(outcomes.failed[job_id]) == 1
