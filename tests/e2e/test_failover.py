"""The fallback brain on the local cloud: every failure mode ends in a video or a clear failure.

Each test injects one fault into the Compute Engine or Vertex AI stand-in and
watches what a user would notice: where the VM ran, how many VMs were made,
the job's outcome and its reason.
"""

from __future__ import annotations

import os

import time


from catalog.model import load_catalog, region_of
from catalog.select import select
from functions import clients, memory
from functions.jobs import store
from infra.local.testkit import submit_job


def submit(cloud, job_dir) -> str:
    return submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)


def first_choice(job_dir):
    """The option the launcher will pick for this job when nothing is blocked."""
    length = sum(3 * [1.0])  # make_sample_job(scenes=3, seconds_per_scene=1.0)
    # As the functions see it: these clouds keep the fallback on GPUs (conftest.py, FALLBACK_GPU_ONLY).
    catalog = load_catalog(environ={**os.environ, "FALLBACK_GPU_ONLY": "true"})
    return select(catalog, length, spot=True).selected


def another_job(job_dir, suffix: str):
    from render_vm.sample_job import make_sample_job

    job_id = f"{job_dir.name[:30]}-{suffix}"
    folder = job_dir.parent / job_id
    make_sample_job(folder, scenes=3, width=320, height=180, seconds_per_scene=1.0, job_id=job_id)
    return folder


def test_a_stockout_moves_to_the_next_zone_and_the_next_job_skips_it(cloud, outcomes, faults, job_dir) -> None:
    option = first_choice(job_dir)
    empty = option.zones[0]
    faults.vertex(mode="quota")
    faults.compute(stockout_zones=[empty])
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    state = store().get(job_id)
    assert state.fallback.zone == option.zones[1]
    assert [(t["zone"], t["kind"]) for t in state.fallback.tried] == [(empty, "stockout")]

    second = submit(cloud, another_job(job_dir, "b"))
    assert outcomes.wait(second)["status"] == "succeeded"
    state = store().get(second)
    assert state.fallback.zone == option.zones[1]
    assert state.fallback.tried == []  # remembered: no insert wasted on the empty zone


def test_a_regional_quota_moves_to_another_region(cloud, outcomes, faults, job_dir) -> None:
    option = first_choice(job_dir)
    region = region_of(option.zones[0])
    faults.vertex(mode="quota")
    faults.compute(quota_exceeded=[{"region": region, "gpu": option.accelerator}])
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    state = store().get(job_id)
    assert region_of(state.fallback.zone) != region
    assert {t["kind"] for t in state.fallback.tried} == {"region-quota"}


def test_gpus_all_regions_moves_to_another_gpu_type(cloud, outcomes, faults, job_dir) -> None:
    option = first_choice(job_dir)
    faults.vertex(mode="quota")
    faults.compute(gpus_all_regions=[option.accelerator])
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    state = store().get(job_id)
    assert state.fallback.gpu != option.gpu
    assert [t["kind"] for t in state.fallback.tried] == ["all-regions-quota"]
    assert len(faults.instances(job_id)) == 1


def test_a_permission_error_fails_at_once_with_the_reason(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(permission_denied=True)
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith("VM launch failed: ") and "compute.instances.create" in outcome["reason"]
    assert len(store().get(job_id).fallback.tried) <= 1
    assert faults.instances(job_id) == []


def wait_until(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.1)


def all_zones() -> list[str]:
    return sorted({zone for gpu in load_catalog().gpus.values() for zone in gpu.zones})


def test_no_capacity_anywhere_backs_off_then_fails_with_the_whole_history(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(stockout_zones=all_zones())
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id, timeout_s=60)
    assert outcome["status"] == "failed" and outcome["reason"].startswith("no GPU VM could be launched in ")
    state = store().get(job_id)
    passes = {t["pass"] for t in state.history[-1].get("attempts", [])}
    assert len(passes) >= 2  # it backed off and tried again before giving up
    assert any("retrying in" in h["note"] for h in state.history)
    assert faults.instances(job_id) == []


def test_capacity_that_comes_back_during_the_backoff_is_used(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(stockout_zones=all_zones())
    job_id = submit(cloud, job_dir)
    wait_until(lambda: any("retrying in" in h["note"] for h in getattr(store().get(job_id), "history", [])))
    faults.compute()  # capacity is back
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    assert len(faults.instances(job_id)) == 1


def test_a_preempted_spot_vm_is_relaunched_and_goes_on_demand_after_two_preemptions(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    faults.compute(preempt_after_s=0.5)  # every Spot VM is preempted before it can finish
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id, timeout_s=120)
    assert outcome["status"] == "succeeded"
    vms = faults.instances(job_id)
    kinds = [vm["scheduling"].get("provisioningModel") for vm in vms]
    assert kinds == ["SPOT", "SPOT", "STANDARD"]
    assert [vm["preempted"] for vm in vms] == [True, True, False]
    state = store().get(job_id)
    assert state.fallback.preemptions == 2
    assert [p["end"] for p in state.fallback.previous] == ["preempted", "preempted"]


def test_the_daily_budget_stops_a_launch_and_says_why(cloud, outcomes, faults, job_dir) -> None:
    from functions import budget

    budget.record_spend("earlier-jobs", load_catalog().budget.daily_usd)  # the day's budget is spent
    faults.vertex(mode="quota")
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "failed" and outcome["reason"].startswith("daily budget: ")
    assert faults.instances(job_id) == []


def test_a_primary_stuck_in_the_queue_is_hedged_and_the_first_video_wins(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="queued", queue_s=None)  # queued until cancelled
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id, timeout_s=90)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm"
    state = store().get(job_id)
    assert "hedging" in state.primary.error
    time.sleep(1)
    [vertex_job] = faults.custom_jobs(job_id)
    assert vertex_job["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")  # the loser is stopped
    outcomes.settle(2)
    assert len(outcomes.completed[job_id]) == 1 and len(faults.instances(job_id)) == 1


def test_the_reaper_deletes_a_vm_whose_job_is_unknown(cloud, faults) -> None:
    from google.cloud import compute_v1

    cfg = clients.config()
    zone = "us-central1-a"
    name = f"{cfg.vm_name_prefix}orphan-{time.time_ns() % 10**6:06d}"
    instance = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/n1-standard-4",
        labels={"fast-render-job": "no-such-job"},
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key="startup-script", value="sleep 600")]),
    )
    clients.instances_client().insert(project=cfg.project, zone=zone, instance_resource=instance)
    wait_until(lambda: [i for i in faults.instances("no-such-job") if i["name"] == name][0]["deleted"])


def test_finished_renders_teach_the_selector_their_speed(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota")
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded", outcome
    gpu = store().get(job_id).fallback.gpu
    assert memory.learned_speeds().count(gpu) == 1


def test_a_lost_vertex_event_is_caught_by_the_watchdog(cloud, outcomes, faults, job_dir) -> None:
    faults.vertex(mode="quota", drop_events=True)  # Vertex fails the job, but nobody hears about it
    job_id = submit(cloud, job_dir)
    outcome = outcomes.wait(job_id)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    assert store().get(job_id).primary.failure == "quota"
