"""Nothing healthy dies: the loop survives duplicates, crashes, stale events and Vertex AI's real error codes.

Each test is one situation the real cloud produces, on the local cloud: what
the main app hears (render-completed / render-failed), how many VMs were made,
and the job's state.
"""

from __future__ import annotations

import os

import json
import threading
import time

from google.cloud import aiplatform_v1

from common import layout
from common.heartbeat import RendererHeartbeat
from functions import clients
from functions.jobs import store
from functions.state import Claim, FallbackRun, JobState, PrimaryRun, RenderResult, Status
from functions.vm_spec import instance_name
from infra.local.testkit import submit_job


def submit(cloud, job_dir) -> str:
    return submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)


def wait_until(condition, timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {timeout_s:.0f} s")
        time.sleep(0.2)


def status_of(job_id: str) -> Status | None:
    state = store().get(job_id)
    return state.status if state else None


def first_choice():
    """The option the launcher picks for the test's 3-second job when nothing is blocked."""
    from catalog.model import load_catalog
    from catalog.select import select

    # As the functions see it: these clouds keep the fallback on GPUs (conftest.py, FALLBACK_GPU_ONLY).
    return select(load_catalog(environ={**os.environ, "FALLBACK_GPU_ONLY": "true"}), 3.0, spot=True).selected


def fake_job(prefix: str, status: Status, **fields) -> str:
    """A job state written directly, for tests of one step (no render behind it)."""
    job_id = f"{prefix}-{time.time_ns() % 10**7:07d}"
    state = JobState(job_id=job_id, status=status, **fields)
    state.move_to(status, "set up by the test")
    store().update(job_id, lambda _: state)
    return job_id


# ------------------------------------------------------------ 1: a crashed primary container


def test_a_crash_of_the_primary_container_falls_back_instead_of_failing(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="crash", exit_code=137, crash_after_s=0.5)  # an out-of-memory kill: Vertex says code 3
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    state = store().get(job_id)
    assert state.primary.failure == "crash" and "status of 137" in state.primary.error


def test_a_container_that_cannot_start_falls_back(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="start_error")
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    assert "StartError" in store().get(job_id).primary.error


# ------------------------------------------------------------ 2: duplicates during a slow launch


def test_duplicate_fallback_requests_during_a_slow_launch_make_one_vm_and_fail_nothing(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(insert_delay_s=12)  # GPU inserts take tens of seconds in the cloud
    job_id = submit(cloud, job_dir)
    wait_until(lambda: status_of(job_id) is Status.VM_LAUNCHING, what="launching")
    for _ in range(4):  # at-least-once delivery: the same request again while the first is inserting
        cloud.publish("render-fallback", json.dumps({"job_id": job_id}).encode(), job_id=job_id)
    outcome = outcomes.wait(job_id, timeout_s=120)
    assert outcome["status"] == "succeeded", outcome
    outcomes.settle(2)
    assert outcomes.failed[job_id] == [] and len(outcomes.completed[job_id]) == 1
    assert len(faults.instances(job_id)) == 1
    assert store().get(job_id).dead_letters == 0


def test_a_launcher_that_died_mid_launch_is_succeeded_by_one_that_adopts_its_vm(cloud, outcomes, faults, job_dir) -> None:
    """The claim of a crashed launcher expires; the watchdog hands the launch on; no second VM."""
    from functions import fallback

    faults.compute(insert_delay_s=3)
    job_id = fake_job("adopt", Status.FALLBACK_REQUESTED, video_length_s=3.0)
    # What a launcher that crashed after its insert leaves: a VM, and a stale claim.
    name = fallback.instance_name(job_id, 1)
    option = fallback.select(fallback.catalog(), 3.0, spot=True).selected
    zone = option.zones[-1]  # not the zone a fresh selection would try first
    assert fallback._insert(clients.config(), job_id, 1, name, option, zone, "req-1") is None

    def crashed(s):
        s.fallback.claim = Claim(token="dead", claimed_at=time.time() - 3600)
        s.move_to(Status.VM_LAUNCHING, "choosing a GPU")
        return s

    store().update(job_id, crashed)
    fallback.launch_fallback(job_id)
    state = store().get(job_id)
    assert state.status is Status.VM_RUNNING and state.fallback.instance == name and state.fallback.zone == zone
    assert len([i for i in faults.instances(job_id) if not i["deleted"]]) == 1


# ------------------------------------------------------------ 3: stale and hedged primaries


def _failed_vertex_job(name: str, job_id: str, exit_status: int) -> aiplatform_v1.CustomJob:
    message = f"The replica workerpool0-0 exited with a non-zero status of {exit_status}. Termination reason: Error."
    return aiplatform_v1.CustomJob(name=name, state=aiplatform_v1.JobState.JOB_STATE_FAILED,
                                   labels={layout.JOB_LABEL: job_id}, error={"code": 3, "message": message})


def _renderer_says_invalid(job_id: str, renderer: str) -> None:
    beat = RendererHeartbeat(job_id=job_id, stage="failed", invalid=True, error="scenes[0].image: file not found")
    clients.storage_client().bucket(clients.config().staging_bucket).blob(
        layout.progress_object(job_id, renderer)).upload_from_string(beat.stamped().to_json())


def test_a_late_failure_of_an_earlier_primary_attempt_does_not_fail_the_job(cloud) -> None:
    from functions.vertex_events import apply_primary_state

    job_id = fake_job("stale", Status.PRIMARY_RUNNING, primary=PrimaryRun(attempt=2, custom_job="projects/1/locations/l/customJobs/2"))
    _renderer_says_invalid(job_id, "vertex")
    apply_primary_state(job_id, _failed_vertex_job("projects/1/locations/l/customJobs/1", job_id, 2))
    assert status_of(job_id) is Status.PRIMARY_RUNNING


def test_an_invalid_verdict_from_the_current_primary_fails_the_job_with_the_renderers_line(cloud, outcomes) -> None:
    from functions.vertex_events import apply_primary_state

    current = "projects/1/locations/l/customJobs/7"
    job_id = fake_job("invalid", Status.PRIMARY_RUNNING, primary=PrimaryRun(custom_job=current))
    _renderer_says_invalid(job_id, "vertex")
    apply_primary_state(job_id, _failed_vertex_job(current, job_id, 2))
    outcome = outcomes.wait(job_id, timeout_s=20)
    assert outcome == {"job_id": job_id, "status": "failed", "reason": "invalid job: scenes[0].image: file not found"}


def test_exit_2_without_the_renderers_verdict_falls_back(cloud) -> None:
    """A wrong command line exits 2 as well: only the renderer saying "invalid" fails the job."""
    from functions.vertex_events import apply_primary_state

    current = "projects/1/locations/l/customJobs/8"
    job_id = fake_job("exit2", Status.PRIMARY_RUNNING, primary=PrimaryRun(custom_job=current))
    apply_primary_state(job_id, _failed_vertex_job(current, job_id, 2))
    assert status_of(job_id) is Status.FALLBACK_REQUESTED


def test_a_primary_that_fails_while_its_hedge_renders_leaves_the_hedge_alone(cloud) -> None:
    from functions.vertex_events import apply_primary_state

    current = "projects/1/locations/l/customJobs/9"
    job_id = fake_job("hedged", Status.VM_RUNNING, primary=PrimaryRun(custom_job=current),
                      fallback=FallbackRun(attempt=1, instance=instance_name("x", 1), zone="us-central1-a"))
    _renderer_says_invalid(job_id, "vertex")
    apply_primary_state(job_id, _failed_vertex_job(current, job_id, 2))
    assert status_of(job_id) is Status.VM_RUNNING


# ------------------------------------------------------------ 4: the reaper


def _labelled_vm(faults, job_id: str, attempt: int) -> str:
    from google.cloud import compute_v1

    name = instance_name(job_id, attempt)
    instance = compute_v1.Instance(
        name=name, machine_type="zones/us-central1-a/machineTypes/n1-standard-4",
        labels={layout.JOB_LABEL: job_id, layout.ATTEMPT_LABEL: str(attempt)},
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key="startup-script", value="sleep 600")]),
    )
    clients.instances_client().insert(project=clients.config().project, zone="us-central1-a", instance_resource=instance)
    return name


def test_the_reaper_keeps_the_vm_being_launched_and_deletes_an_old_attempts(cloud, faults) -> None:
    from functions.watchdog import reap_orphans

    job_id = fake_job("reap", Status.VM_LAUNCHING, fallback=FallbackRun(attempt=2, claim=Claim.new("live")))
    old, current = _labelled_vm(faults, job_id, 1), _labelled_vm(faults, job_id, 2)
    reap_orphans()
    deleted = {i["name"]: i["deleted"] for i in faults.instances(job_id)}
    assert deleted == {old: True, current: False}


# ------------------------------------------------------------ 5: a failed hedge


def test_a_hedge_that_cannot_launch_leaves_the_primary_running_and_the_job_still_renders(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="queued", queue_s=None)  # stuck in the queue until cancelled: the watchdog hedges
    faults.compute(permission_denied=True)  # and the hedge cannot launch
    job_id = submit(cloud, job_dir)
    wait_until(lambda: any("hedge not launched" in h["note"] for h in getattr(store().get(job_id), "history", [])), timeout_s=60,
               what="hedge given up")
    assert status_of(job_id) in (Status.PRIMARY_SUBMITTED, Status.PRIMARY_RUNNING)
    assert outcomes.failed[job_id] == []
    [vertex_job] = faults.custom_jobs(job_id)
    assert vertex_job["state"] not in ("JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING")
    faults.compute()  # capacity for the next hedge
    outcome = outcomes.wait(job_id, timeout_s=90)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    assert outcomes.failed[job_id] == []


# ------------------------------------------------------------ 6: the daily budget


def test_concurrent_launches_at_the_edge_of_the_budget_never_overspend(cloud, faults) -> None:
    from functions import budget

    budget.record_spend("earlier", 49.80)
    results: list[bool] = []

    def launch(i: int) -> None:
        results.append(budget.reserve_spend(f"job-{i}/a1", 0.10, 50.0)[0])

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True, True]
    assert budget.spent_today_usd() <= 50.0 + 1e-9


def test_a_reservation_whose_insert_failed_is_given_back(cloud, outcomes, faults, job_dir) -> None:
    from functions import budget

    faults.vertex(mode="quota")
    faults.compute(permission_denied=True)
    job_id = submit(cloud, job_dir)
    assert outcomes.wait(job_id)["status"] == "failed"
    assert budget.spent_today_usd() == 0


# ------------------------------------------------------------ 7: the outcome message


def test_a_finished_job_whose_outcome_was_never_sent_is_announced_by_the_watchdog(cloud, outcomes) -> None:
    from functions.watchdog import check_job

    job_id = fake_job("unsent", Status.SUCCEEDED, result=RenderResult(video="gs://x/renders/y/video.mp4", rendered_by="vm"))
    check_job(store().get(job_id))  # (the local cloud's own watchdog may get there first: the same code)
    outcomes.settle(3)
    assert [m["status"] for m in outcomes.completed[job_id]] == ["succeeded"]
    state = store().get(job_id)
    assert state.outcome_published and state.cleaned_up
    assert check_job(state) is None  # nothing left to do


def test_concurrent_finalize_deliveries_complete_once_and_announce_once(cloud, outcomes) -> None:
    from functions.completion import complete_from_output

    job_id = fake_job("twice", Status.VM_RUNNING, fallback=FallbackRun(attempt=1))
    # The upload's own finalize event, and four more deliveries of it at once.
    bucket = clients.storage_client().bucket(clients.config().output_bucket)
    blob = bucket.blob(layout.video_object(job_id))
    blob.metadata = {layout.VIDEO_REPORT_METADATA: json.dumps({"rendered_by": "vm"})}
    blob.upload_from_string(b"video")
    threads = [threading.Thread(target=complete_from_output, args=(layout.video_object(job_id),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes.settle(3)
    assert len(outcomes.completed[job_id]) == 1


# ------------------------------------------------------------ 8: a malformed message naming a job


def test_a_malformed_message_naming_a_healthy_job_leaves_it_alone(cloud, outcomes) -> None:
    job_id = fake_job("healthy", Status.VM_RUNNING, fallback=FallbackRun(attempt=1))
    for body in ({"job_id": job_id, "bogus": 1}, {"job_id": job_id, "manifest": {"job_id": job_id}},
                 {"job_id": job_id, "manifest": "not an object"}):
        cloud.publish("render-jobs", json.dumps(body).encode(), job_id=job_id)
    outcomes.settle(4)
    assert status_of(job_id) is Status.VM_RUNNING and outcomes.failed[job_id] == []


def test_a_manifest_given_as_text_is_rejected_at_once_naming_the_field(cloud, outcomes, job_dir) -> None:
    manifest = (job_dir / "job.json").read_text()
    job_id = json.loads(manifest)["job_id"]
    cloud.publish("render-jobs", json.dumps({"job_id": job_id, "manifest": manifest}).encode())
    outcome = outcomes.wait(job_id, timeout_s=30)
    assert outcome["status"] == "failed" and outcome["reason"].startswith("invalid job: manifest: must be a JSON object")


# ------------------------------------------------------------ 10: watchdog gaps


def test_one_job_the_watchdog_cannot_read_does_not_stop_its_pass(cloud, faults) -> None:
    from functions.watchdog import run_watchdog

    broken = f"broken-{time.time_ns() % 10**6:06d}"
    # A document the product did not write (or an older version did): not a job state.
    broken_doc = clients.firestore_client().collection("jobs").document(broken)
    broken_doc.set({"job_id": broken, "status": "no-such-status", "active": True, "updated_at": "2000-01-01T00:00:00+00:00"})
    gone = f"gone-{time.time_ns() % 10**6:06d}"  # a job nobody knows: its VM is an orphan
    _labelled_vm(faults, gone, 1)
    try:
        acted = run_watchdog()
        assert acted.get("errors", 0) >= 1
        wait_until(lambda: faults.instances(gone)[0]["deleted"], timeout_s=15, what="orphan reaped")
    finally:
        broken_doc.delete()


def test_a_launch_whose_claimant_died_is_announced_again(cloud) -> None:
    from functions.watchdog import check_job

    job_id = fake_job("claim", Status.VM_LAUNCHING, fallback=FallbackRun(claim=Claim("dead", time.time() - 3600)))
    assert check_job(store().get(job_id)) == "reannounced"
    job_id = fake_job("claimp", Status.PRIMARY_SUBMITTING, primary=PrimaryRun(claim=Claim("dead", time.time() - 3600)))
    assert check_job(store().get(job_id)) == "reannounced"


def test_a_hung_vm_is_noticed_by_its_silent_heartbeat_and_replaced(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(hang_after_s=0.5)  # the first VM freezes; GCE still says RUNNING
    job_id = submit(cloud, job_dir)
    wait_until(lambda: len(faults.instances(job_id)) >= 1, what="first VM")
    faults.compute()  # the next VM is healthy
    outcome = outcomes.wait(job_id, timeout_s=120)
    assert outcome["status"] == "succeeded", outcome
    state = store().get(job_id)
    assert [p["end"] for p in state.fallback.previous] == ["hung"]
    first, second = faults.instances(job_id)
    assert first["deleted"] and first["name"] != second["name"]


def test_a_video_whose_finalize_event_was_lost_still_completes_the_job(cloud, outcomes) -> None:
    from functions.watchdog import check_job

    job_id = f"lostevent-{time.time_ns() % 10**6:06d}"
    blob = clients.storage_client().bucket(clients.config().output_bucket).blob(layout.video_object(job_id))
    blob.metadata = {layout.VIDEO_REPORT_METADATA: json.dumps({"rendered_by": "vm"})}
    blob.upload_from_string(b"video")  # its event finds no job: as good as lost
    time.sleep(2)
    state = JobState(job_id=job_id, status=Status.VM_RUNNING, fallback=FallbackRun(attempt=1))
    store().update(job_id, lambda _: state)
    check_job(store().get(job_id))  # (or the local cloud's own watchdog, a moment later)
    assert outcomes.wait(job_id, timeout_s=20)["status"] == "succeeded"


# ------------------------------------------------------------ 11: bad input, one line each


def test_deeply_nested_messages_are_rejected_without_retries(cloud) -> None:
    from functions.intake import accept_job_message
    from functions.jobs import give_up_on_message

    deep = b"[" * 100_000 + b"]" * 100_000
    assert accept_job_message(deep) is None
    assert give_up_on_message(deep, {}) is None
    assert accept_job_message(b'{"job_id": ' + deep + b"}") is None


def test_dead_letters_count_against_a_job_and_fail_it_only_past_the_limit(cloud, outcomes) -> None:
    job_id = fake_job("dlq", Status.FALLBACK_REQUESTED, fallback=FallbackRun(retry_at=time.time() + 3600))
    attributes = {"job_id": job_id, "CloudPubSubDeadLetterSourceSubscription": "fallback-launcher-trigger",
                  "CloudPubSubDeadLetterSourceDeliveryCount": "5"}
    cloud.publish("dead-letters", json.dumps({"job_id": job_id}).encode(), **attributes)
    wait_until(lambda: store().get(job_id).dead_letters == 1, timeout_s=20, what="dead letter counted")
    assert status_of(job_id) is Status.FALLBACK_REQUESTED  # one dead letter is no verdict
    for _ in range(2):
        cloud.publish("dead-letters", json.dumps({"job_id": job_id}).encode(), **attributes)
    outcome = outcomes.wait(job_id, timeout_s=30)
    assert outcome["status"] == "failed" and outcome["reason"].startswith("gave up after 3 dead-lettered messages over ")


# ------------------------------------------------------------ 12: the report rides on the video


def test_completion_knows_who_rendered_without_render_json_and_spares_the_vertex_job_that_delivered(cloud, faults) -> None:
    cfg = clients.config()
    container = aiplatform_v1.ContainerSpec(image_uri="local/worker", command=["sleep", "60"])
    pool = aiplatform_v1.WorkerPoolSpec(machine_spec=aiplatform_v1.MachineSpec(machine_type="n1-standard-4"),
                                        replica_count=1, container_spec=container)
    vertex_job = clients.job_client().create_custom_job(parent=cfg.vertex_parent, custom_job=aiplatform_v1.CustomJob(
        display_name="delivering", job_spec=aiplatform_v1.CustomJobSpec(worker_pool_specs=[pool])))
    job_id = fake_job("report", Status.PRIMARY_RUNNING, primary=PrimaryRun(custom_job=vertex_job.name))
    blob = clients.storage_client().bucket(cfg.output_bucket).blob(layout.video_object(job_id))
    blob.metadata = {layout.VIDEO_REPORT_METADATA: json.dumps({"rendered_by": "vertex", "frames": 90})}
    blob.upload_from_string(b"video")  # the finalize event completes the job; render.json is not there yet
    wait_until(lambda: status_of(job_id) is Status.SUCCEEDED, timeout_s=20, what="succeeded")
    assert store().get(job_id).result.rendered_by == "vertex"
    time.sleep(1)
    assert clients.job_client().get_custom_job(name=vertex_job.name).state.name != "JOB_STATE_CANCELLED"
    report = json.loads(clients.storage_client().bucket(cfg.output_bucket).blob(layout.render_report_object(job_id)).download_as_bytes())
    assert report["rendered_by"] == "vertex" and report["frames"] == 90
    clients.job_client().cancel_custom_job(name=vertex_job.name)


# ------------------------------------------------------------ 13: insert errors


def test_a_rate_limited_insert_is_retried_in_the_same_zone(cloud, outcomes, faults, job_dir) -> None:
    zone = first_choice().zones[0]
    faults.vertex(mode="quota")
    faults.compute(insert_errors=[{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "zones": [zone], "times": 2}])
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    assert store().get(job_id).fallback.zone == zone


def test_errors_another_zone_can_fix_move_the_launch_on(cloud, outcomes, faults, job_dir) -> None:
    zones = first_choice().zones
    faults.vertex(mode="quota")
    faults.compute(insert_errors=[{"code": "UNSUPPORTED_OPERATION", "zones": [zones[0]], "times": None},
                                  {"code": "RESOURCE_NOT_READY", "zones": [zones[1]], "times": None}])
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    state = store().get(job_id)
    assert state.fallback.zone not in zones[:2]
    assert [t["kind"] for t in state.fallback.tried][:2] == ["zone", "zone"]


# ------------------------------------------------------------ 9: object names are untrusted paths


def test_the_worker_never_writes_outside_its_job_folder(cloud, tmp_path) -> None:
    from render_vm.worker import _download_job

    job_id = f"paths-{time.time_ns() % 10**6:06d}"
    bucket = clients.storage_client().bucket(clients.config().staging_bucket)
    outside = tmp_path / "outside.txt"
    job_dir, segments_dir = tmp_path / "a" / "b" / "job", tmp_path / "a" / "b" / "segments"
    names = {
        f"jobs/{job_id}/images/001.png": b"fine",
        f"jobs/{job_id}/segments/s1.mp4": b"fine",
        f"jobs/{job_id}/images/../../../../outside.txt": b"escaped",
        f"jobs/{job_id}/segments/../../../outside.txt": b"escaped",
        f"jobs/{job_id}/{tmp_path}/outside.txt".replace("//", "/").replace(f"{job_id}/", f"{job_id}//"): b"escaped",
    }
    for name, data in names.items():
        bucket.blob(name).upload_from_string(data)
    assert _download_job(bucket, job_id, job_dir, segments_dir) == 1
    assert not outside.exists()
    assert (job_dir / "images" / "001.png").read_bytes() == b"fine" and (segments_dir / "s1.mp4").exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(job_dir) or p.is_relative_to(segments_dir) for p in written), written


def test_a_lost_vms_reservation_shrinks_to_what_it_ran_before_the_relaunch(cloud, faults) -> None:
    from functions import budget
    from functions.watchdog import check_job

    job_id = fake_job("settle", Status.VM_RUNNING, fallback=FallbackRun(
        attempt=1, instance=instance_name("gone", 1), zone="us-central1-a", provisioning="on-demand",
        price_per_hour=1.0, estimated_cost_usd=0.5, launched_at=time.time() - 36))
    budget.reserve_spend(f"{job_id}/a1", 0.5, 50.0)
    check_job(store().get(job_id))  # the VM is gone without a video: relaunch (or the cloud's own watchdog did)
    wait_until(lambda: store().get(job_id).fallback.attempt == 2, timeout_s=10, what="relaunched")
    assert budget.spent_today_usd() < 0.05  # about 36 s at $1/h, not the $0.50 estimate
    from functions.jobs import fail_job

    fail_job(job_id, "test over")  # no real job behind it: stop the relaunch


def test_a_job_message_that_died_before_intake_recorded_it_is_accepted_from_the_dead_letters(cloud, outcomes, faults, job_dir) -> None:
    from infra.local.testkit import stage_job

    manifest = json.loads((job_dir / "job.json").read_text())
    job_id = manifest["job_id"]
    stage_job(clients.storage_client().bucket(clients.config().staging_bucket), job_dir, job_id, with_manifest=False)
    attributes = {"CloudPubSubDeadLetterSourceSubscription": "intake-message-trigger",
                  "CloudPubSubDeadLetterSourceDeliveryCount": "5"}
    cloud.publish("dead-letters", json.dumps({"manifest": manifest}).encode(), **attributes)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
