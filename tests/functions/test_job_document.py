"""A job's Firestore document: what is stored, what is derived for queries, what the deployment indexes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from common.heartbeat import RendererHeartbeat
from functions.state import Claim, FallbackRun, JobState, RenderResult, Status, claim_is_live
from functions.store import QUERIES, index_config

REPO = Path(__file__).resolve().parents[2]


def _job(status: Status = Status.RECEIVED) -> JobState:
    state = JobState(job_id="story-1", status=Status.RECEIVED, video_length_s=18.0)
    if status is not Status.RECEIVED:
        state.move_to(status, "test")
    return state


def test_a_document_reads_back_as_the_same_typed_state() -> None:
    state = _job(Status.VM_RUNNING)
    state.primary.failure, state.primary.custom_job = "quota", "projects/p/locations/l/customJobs/1"
    state.fallback = FallbackRun(attempt=2, claim=Claim.new("t", 10.0), gpu="t4", zone="us-central1-a",
                                 tried=[{"zone": "us-east1-c", "kind": "stockout"}], preemptions=1)
    state.result = RenderResult.from_report("gs://o/renders/story-1/video.mp4", "7", {"rendered_by": "vm", "wall_s": 3.5, "s_per_s": 0.2})
    doc = state.to_document(retention_days=90)
    assert JobState.from_document(doc) == state
    assert doc["fallback"]["claim"] == {"token": "t", "claimed_at": 10.0, "status": None}
    assert state.result.wall_s == 3.5 and state.result.report["s_per_s"] == 0.2


def test_the_query_fields_say_whether_the_watchdog_must_look_and_when_the_document_expires() -> None:
    running = _job(Status.VM_RUNNING).to_document(retention_days=90)
    assert running["active"] is True and running["expire_at"] is None and running["day"] == running["created_at"][:10]
    finished = _job(Status.SUCCEEDED)
    assert finished.to_document(90)["active"] is True  # not yet cleaned up and announced: still the watchdog's
    finished.cleaned_up = finished.outcome_published = True
    doc = finished.to_document(retention_days=90)
    assert doc["active"] is False
    assert doc["expire_at"] == datetime.fromisoformat(finished.updated_at) + timedelta(days=90)


@pytest.mark.parametrize(("failure", "launched", "hedge_failed", "method"), [
    (None, False, None, "vertex"),
    ("quota", True, None, "vm"),
    ("queued", True, None, "hedge"),
    ("overrun", False, "no capacity", "vertex"),  # the hedge never launched: Vertex AI rendered it alone
])
def test_the_method_names_how_the_job_was_rendered(failure, launched, hedge_failed, method) -> None:
    state = _job(Status.SUCCEEDED)
    state.primary.failure, state.fallback.hedge_failed = failure, hedge_failed
    state.fallback.instance = "fast-render-x-a1" if launched else None
    assert state.to_document(90)["method"] == method


def test_a_document_that_is_not_a_job_state_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="job broken: not a job state document"):
        JobState.from_document({"job_id": "broken", "status": "no-such-status"})


def test_fields_a_newer_version_added_are_ignored_by_an_older_reader() -> None:
    doc = _job().to_document(90)
    doc["fallback"]["added_later"] = 1
    doc["added_later"] = 2
    assert JobState.from_document(doc).fallback.attempt == 1


def test_a_claim_is_live_until_its_timeout() -> None:
    claim = Claim.new("t", now=100.0)
    assert claim_is_live(claim, 30, now=129.0) and not claim_is_live(claim, 30, now=131.0)
    assert not claim_is_live(None, 30)


def test_every_query_needing_a_composite_index_is_declared_for_the_deployment() -> None:
    declared = json.loads((REPO / "infra/firestore/indexes.json").read_text())
    assert declared == index_config(), (
        "infra/firestore/indexes.json is out of date; write it again with: python -c "
        "\"import json; from functions.store import index_config; print(json.dumps(index_config(), indent=2))\"")
    fields = [tuple((f["fieldPath"], f["order"]) for f in index["fields"]) for index in declared["indexes"]]
    assert fields == [q.index for q in QUERIES if q.index]
    assert {"collectionGroup": "jobs", "fieldPath": "expire_at", "ttl": True, "indexes": []} in declared["fieldOverrides"]


def test_a_heartbeat_keeps_the_names_both_sides_use() -> None:
    beat = RendererHeartbeat(job_id="story-1", rendered_by="vm", instance="vm-1").with_progress(
        {"stage": "rendering", "frames_done": 30, "frames_total": 120, "unknown": 1}).stamped(now=50.0)
    read = RendererHeartbeat.from_json(beat.to_json())
    assert read == beat and read.progress == 0.25 and read.age_s(now=60.0) == 10.0
    assert RendererHeartbeat.from_json(b"{not json") is None and RendererHeartbeat.from_json(b"[]") is None
    assert RendererHeartbeat.from_json(json.dumps({"job_id": "x", "stage": "failed", "invalid": True})).found_invalid
