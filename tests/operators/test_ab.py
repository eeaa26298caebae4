"""``avmonitor ab``: each experiment arm's time to video, cost per minute of video and failures, with 95% intervals.

The statistics are tested on job states built here (no cloud needed). Then, on
a local cloud of this module's own (its functions need ``EXPERIMENTS_FILE``
in their environment, and the session's cloud's is fixed), an active
experiment splits real jobs between Vertex-first and VM-first, and a VM-first
job the VMs cannot take at first, or at all, still ends with a video.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog.model import load_catalog
from catalog.select import select
from functions.experiments import Arm, Experiment
from functions.state import (
    ExperimentArm,
    FallbackRun,
    JobState,
    PrimaryRun,
    RenderResult,
    Status,
)
from infra.local.testkit import FAST_SETTINGS, client_of
from operators import ab
from operators.cost import VertexRun

CATALOG = load_catalog(environ={})
SHAPE = ("n1-standard-8", "NVIDIA_TESLA_T4")
VERTEX_PRICE = CATALOG.vertex.price_per_hour(*SHAPE)
NOW = 1_800_000_000.0
ROUTE = Experiment(name="route", description="VM first against Vertex AI first", share=0.5, active=True,
                   arms=(Arm("vertex-first"), Arm("vm-first", route="vm-first")))
REPORT_KEYS = {"name", "description", "active", "share", "arms", "verdict"}
ARM_KEYS = {"name", "jobs", "succeeded", "failed", "time_to_video_s", "cost_per_video_minute_usd", "failure_rate"}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def a_job(arm: str, i: int, *, seconds: float, status: Status = Status.SUCCEEDED, on_vm: bool = True,
          length_s: float = 120.0) -> tuple[JobState, dict[str, VertexRun]]:
    """A finished job of ``arm`` that took ``seconds`` from arrival to video, on a VM (rendering all that time at
    $0.50/h) or on Vertex AI (the same time, at its price)."""
    start = NOW - 86400 + i * 60
    job_id, custom_job = f"{arm}-{i:03d}", f"projects/p/locations/us-central1/customJobs/{arm}-{i}"
    state = JobState(job_id=job_id, status=status, created_at=iso(start), updated_at=iso(start + seconds),
                     video_length_s=length_s, cleaned_up=True,
                     experiment=ExperimentArm(name="route", arm=arm, route="vm-first" if on_vm else "vertex-first"))
    runs = {}
    if on_vm:
        state.primary = PrimaryRun(failure="experiment")
        state.fallback = FallbackRun(instance=f"{job_id}-a1", gpu="l4", provisioning="on-demand", price_per_hour=0.50,
                                     launched_at=start, deleted_at=start + seconds)
        state.result = RenderResult(rendered_by="vm", gpu="l4")
    else:
        state.primary = PrimaryRun(custom_job=custom_job, machine_type=SHAPE[0], accelerator=SHAPE[1])
        runs[custom_job] = VertexRun(custom_job, "JOB_STATE_SUCCEEDED", start, start + seconds)
        state.result = RenderResult(rendered_by="vertex")
    return state, runs


def jobs(arm: str, n: int, *, mean_s: float, spread_s: float, failed: int = 0, on_vm: bool = True,
         seed: int = 1) -> tuple[list[JobState], dict[str, VertexRun]]:
    rng, states, runs = random.Random(seed), [], {}
    for i in range(n):
        status = Status.FAILED if i < failed else Status.SUCCEEDED
        state, run = a_job(arm, i, seconds=max(5.0, rng.gauss(mean_s, spread_s)), status=status, on_vm=on_vm)
        states.append(state)
        runs.update(run)
    return states, runs


def report(*groups: tuple[list[JobState], dict[str, VertexRun]], experiment: Experiment = ROUTE) -> dict:
    states = [s for group, _ in groups for s in group]
    runs = {k: v for _, group in groups for k, v in group.items()}
    return ab.build_report([experiment], states, CATALOG, runs, SHAPE, NOW)


def arms_of(data: dict) -> dict[str, dict]:
    [experiment] = data["experiments"]
    return {arm["name"]: arm for arm in experiment["arms"]}


# ---------------------------------------------------------------- the statistics


def test_with_enough_jobs_the_verdict_names_the_faster_and_the_cheaper_arm() -> None:
    data = report(jobs("vm-first", 30, mean_s=300, spread_s=30, seed=1),
                  jobs("vertex-first", 30, mean_s=600, spread_s=60, on_vm=False, seed=2))
    [experiment] = data["experiments"]
    assert set(experiment) == REPORT_KEYS and (experiment["name"], experiment["active"], experiment["share"]) == ("route", True, 0.5)
    arms = arms_of(data)
    assert all(set(arm) == ARM_KEYS for arm in arms.values())
    vm, vertex = arms["vm-first"], arms["vertex-first"]
    assert (vm["jobs"], vm["succeeded"], vm["failed"]) == (30, 30, 0)
    assert 270 < vm["time_to_video_s"]["median"] < 330 and 540 < vertex["time_to_video_s"]["median"] < 660
    assert vm["time_to_video_s"]["p90"] > vm["time_to_video_s"]["median"]
    # 300 s at $0.50/h for 2 minutes of video, against 600 s at Vertex's price.
    assert vm["cost_per_video_minute_usd"]["mean"] == pytest.approx(300 / 3600 * 0.50 / 2, rel=0.1)
    assert vertex["cost_per_video_minute_usd"]["mean"] == pytest.approx(600 / 3600 * VERTEX_PRICE / 2, rel=0.1)
    verdict = experiment["verdict"]
    assert verdict.startswith("vm-first is faster (median ") and "against" in verdict and "for vertex-first" in verdict
    assert ") and cheaper ($" in verdict and verdict.endswith(" per minute of video for vertex-first).")


def test_every_interval_contains_its_point_estimate_and_the_same_jobs_give_the_same_report() -> None:
    groups = (jobs("vm-first", 25, mean_s=300, spread_s=120, failed=3, seed=3),
              jobs("vertex-first", 12, mean_s=400, spread_s=200, failed=1, on_vm=False, seed=4))
    data = report(*groups)
    for arm in arms_of(data).values():
        for key, point in (("time_to_video_s", "median"), ("cost_per_video_minute_usd", "mean"), ("failure_rate", "value")):
            low, high = arm[key]["ci95"]
            assert low <= arm[key][point] <= high, (arm["name"], key, arm[key])
            assert low < high
    assert report(*groups) == data  # a seeded bootstrap: reproducible
    assert json.loads(json.dumps(data)) == data  # plain JSON for the dashboard


def test_too_few_finished_jobs_is_not_enough_data_however_different_the_arms_look() -> None:
    data = report(jobs("vm-first", 30, mean_s=100, spread_s=5, seed=5),
                  jobs("vertex-first", ab.MIN_FINISHED - 1, mean_s=900, spread_s=5, on_vm=False, seed=6))
    assert data["experiments"][0]["verdict"] == ab.NOT_ENOUGH == "not enough data yet"


def test_arms_that_cannot_be_told_apart_are_not_enough_data_and_running_or_cancelled_jobs_do_not_count() -> None:
    same = report(jobs("vm-first", 20, mean_s=300, spread_s=100, seed=7), jobs("vertex-first", 20, mean_s=300, spread_s=100, seed=8))
    assert same["experiments"][0]["verdict"] == ab.NOT_ENOUGH

    running, _ = a_job("vm-first", 90, seconds=50, status=Status.VM_RUNNING)
    cancelled, _ = a_job("vm-first", 91, seconds=50, status=Status.CANCELLED)
    vm = arms_of(report(([running, cancelled], {}), ([], {})))["vm-first"]
    assert (vm["jobs"], vm["succeeded"], vm["failed"]) == (2, 0, 0)
    assert vm["failure_rate"] == {"value": None, "ci95": None} and vm["time_to_video_s"]["median"] is None


def test_a_job_still_billing_has_no_cost_yet_and_one_job_has_no_interval() -> None:
    state, _ = a_job("vm-first", 1, seconds=120)
    state.fallback.deleted_at, state.cleaned_up = None, False  # its VM is still being deleted
    vm = arms_of(report(([state], {}), ([], {})))["vm-first"]
    assert vm["time_to_video_s"] == {"median": 120.0, "p90": 120.0, "ci95": None}
    assert vm["cost_per_video_minute_usd"] == {"mean": None, "ci95": None}


def test_the_failure_rate_has_a_wilson_interval() -> None:
    assert ab.wilson_ci(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert ab.wilson_ci(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert ab.wilson_ci(0, 0) is None
    data = report(jobs("vm-first", 40, mean_s=300, spread_s=30, failed=20, seed=9),
                  jobs("vertex-first", 40, mean_s=300, spread_s=30, on_vm=False, seed=10))
    arms = arms_of(data)
    assert arms["vm-first"]["failure_rate"]["value"] == 0.5 and arms["vertex-first"]["failure_rate"]["value"] == 0.0
    assert "vm-first fails more (50% against 0%)" in data["experiments"][0]["verdict"]


def test_a_bad_experiments_file_is_one_line_and_exit_1(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "experiments.yml"
    path.write_text("experiments:\n  e1:\n    description: d\n    share: 0.5\n    activ: true\n    arms: {a: {}, b: {}}\n")
    monkeypatch.setenv("EXPERIMENTS_FILE", str(path))
    assert ab.run(argparse.Namespace(since="30d", json=False)) == 1
    err = capsys.readouterr().err
    assert err == "avmonitor: experiments: experiments.e1.activ: unknown field (did you mean active?)\n"


# ---------------------------------------------------------------- on a local cloud with an active experiment

PROJECT = "fast-render-ab"
EXPERIMENTS = """\
version: 1
experiments:
  route:
    description: VM first against Vertex AI first
    share: 1.0
    active: true
    arms:
      vertex-first: {route: vertex-first}
      vm-first: {route: vm-first}
"""


@pytest.fixture(scope="module")
def ab_cloud(new_cloud: Callable, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    path = tmp_path_factory.mktemp("experiments") / "experiments.yml"
    path.write_text(EXPERIMENTS)
    settings = {**FAST_SETTINGS, "EXPERIMENTS_FILE": str(path)}
    local = new_cloud(PROJECT, "ab-cloud", tick_every_s=2, extra_env=settings)
    with local, client_of(local, {"EXPERIMENTS_FILE": str(path)}):  # this process reads the same file
        yield local


@pytest.fixture
def faults(ab_cloud) -> Iterator:
    from functions import budget, clients, memory
    from infra.local.testkit import admin

    compute = ab_cloud.env["COMPUTE_API_ENDPOINT"]
    yield lambda **faults: admin(compute, "faults", faults)
    admin(compute, "faults", {})
    db = clients.firestore_client()  # what one test taught the fleet (stockouts) must not steer the next
    for collection in (memory.FLEET, budget.COLLECTION):
        for document in db.collection(collection).list_documents():
            document.delete()


def job_in(arm: str, tmp_path: Path, prefix: str) -> tuple[str, Path]:
    """A small job whose id the configured experiment puts in ``arm`` (assignment is a function of the id)."""
    from functions import experiments
    from render_vm.sample_job import make_sample_job

    configured = experiments.load_experiments()
    job_id = next(f"{prefix}-{i}" for i in range(1000) if experiments.assign(f"{prefix}-{i}", configured).arm == arm)
    make_sample_job(tmp_path / job_id, scenes=3, width=320, height=180, seconds_per_scene=1.0, job_id=job_id)
    return job_id, tmp_path / job_id


def run_jobs(cloud, outcomes, *folders: Path, timeout_s: float = 120) -> list[JobState]:
    """Submit the jobs together, as the main app would, and wait for each one's video."""
    from functions import clients
    from functions.jobs import store
    from infra.local.testkit import submit_job

    bucket = clients.storage_client().bucket(clients.config().staging_bucket)
    job_ids = [submit_job(cloud, bucket, folder) for folder in folders]
    for job_id in job_ids:
        assert outcomes.wait(job_id, timeout_s=timeout_s)["status"] == "succeeded", job_id
    return [store().get(job_id) for job_id in job_ids]


def instances_of(cloud, job_id: str) -> list[dict]:
    from infra.local.testkit import admin

    return [i for i in admin(cloud.env["COMPUTE_API_ENDPOINT"], "instances")["instances"]
            if i.get("labels", {}).get("fast-render-job") == job_id]


@pytest.fixture(scope="module")
def outcomes(ab_cloud):
    from infra.local.testkit import Outcomes

    return Outcomes(ab_cloud)


def test_an_active_experiment_sends_each_job_the_way_of_its_arm_and_records_it(ab_cloud, outcomes, faults, tmp_path,
                                                                            capsys) -> None:
    unique = f"ab{random.randrange(10**6):06d}"
    on_vertex, vertex_dir = job_in("vertex-first", tmp_path, unique)
    on_vm, vm_dir = job_in("vm-first", tmp_path, unique)
    vertex_job, vm_job = run_jobs(ab_cloud, outcomes, vertex_dir, vm_dir)

    assert vertex_job.experiment == ExperimentArm(name="route", arm="vertex-first", route="vertex-first")
    assert vertex_job.result.rendered_by == "vertex" and vertex_job.method == "vertex"
    assert instances_of(ab_cloud, on_vertex) == []
    assert vm_job.experiment == ExperimentArm(name="route", arm="vm-first", route="vm-first")
    assert vm_job.result.rendered_by == "vm" and vm_job.method == "vm" and vm_job.primary.failure == "experiment"
    assert vm_job.primary.custom_job is None  # Vertex AI was never asked
    assert len(instances_of(ab_cloud, on_vm)) == 1
    assert "route: vm-first" in vm_job.history[0].get("experiment", "")

    assert ab.run(argparse.Namespace(since="1h", json=True)) == 0
    [experiment] = json.loads(capsys.readouterr().out)["experiments"]
    arms = {arm["name"]: arm for arm in experiment["arms"]}
    assert arms["vertex-first"]["succeeded"] >= 1 and arms["vm-first"]["succeeded"] >= 1
    assert experiment["verdict"] == "not enough data yet"
    assert ab.run(argparse.Namespace(since="1h", json=False)) == 0
    table = capsys.readouterr().out
    assert "route (active, 100% of new jobs" in table and "VM first" in table and "verdict: not enough data yet" in table


def test_a_vm_first_job_whose_first_zone_is_out_of_gpus_still_gets_its_video(ab_cloud, outcomes, faults, tmp_path) -> None:
    first = select(load_catalog(), 3.0, spot=True).selected  # make_sample_job(scenes=3, seconds_per_scene=1.0)
    faults(stockout_zones=[first.zones[0]])
    _, folder = job_in("vm-first", tmp_path, f"ab-stockout{random.randrange(10**6):06d}")
    [state] = run_jobs(ab_cloud, outcomes, folder)
    assert state.result.rendered_by == "vm" and state.fallback.zone == first.zones[1]
    assert [(t["zone"], t["kind"]) for t in state.fallback.tried] == [(first.zones[0], "stockout")]


def test_a_vm_first_job_no_vm_can_take_is_rendered_on_vertex(ab_cloud, outcomes, faults, tmp_path) -> None:
    every_zone = sorted({zone for gpu in load_catalog().gpus.values() for zone in gpu.zones})
    faults(stockout_zones=every_zone)
    job_id, folder = job_in("vm-first", tmp_path, f"ab-nogpu{random.randrange(10**6):06d}")
    [state] = run_jobs(ab_cloud, outcomes, folder)
    assert state.result.rendered_by == "vertex" and state.method == "vertex"
    assert state.fallback.hedge_failed.startswith("no GPU VM could be launched")
    assert any("submitting to Vertex AI" in h["note"] for h in state.history)
    assert instances_of(ab_cloud, job_id) == []
    assert state.experiment.arm == "vm-first"  # still counted in its arm: what the arm cost, it cost
