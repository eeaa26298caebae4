"""``avmonitor cost``: each job's actual cost from what its state and Vertex AI record, against its estimate and Vertex AI.

The rules are tested on job states built here (no cloud needed); one test runs a
real fallback job on the local cloud and reads its row back through the command.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from catalog import LearnedSpeeds, load_catalog, select
from catalog.runtime_model import estimate, load_calibration
from functions.state import FallbackRun, JobState, PrimaryRun, RenderResult, Status
from operators import cost
from operators.cost import VertexRun

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(environ={})  # the bundled catalog: pricing "model", the runtime model's estimates
SPEED_FACTOR = dataclasses.replace(CATALOG, pricing="speed_factor")  # the design note's speed factors
SHAPE = ("n1-standard-8", "NVIDIA_TESLA_T4")  # functions/config.py's defaults for the primary


def on_vertex_machine(video_s: float):
    """The runtime model's render on Vertex's machine: n1-standard-8 (8 vCPUs) with a T4 (NVENC)."""
    return estimate(load_calibration(), video_s, vcpus=8, has_nvenc=True)

VERTEX_PRICE = CATALOG.vertex.price_per_hour(*SHAPE)  # $/h: n1-standard-8 + 1 T4 on Vertex AI
NOW = 1_800_000_000.0
T = NOW - 7200  # two hours ago: each job starts then
CREATED = datetime.fromtimestamp(T, timezone.utc).isoformat(timespec="milliseconds")
JOB = "projects/123/locations/us-central1/customJobs/"


def job(job_id: str, status: Status, *, primary: PrimaryRun | None = None, fallback: FallbackRun | None = None,
        result: RenderResult | None = None, cleaned_up: bool = True, video_length_s: float = 180.0) -> JobState:
    return JobState(job_id=job_id, status=status, created_at=CREATED, updated_at=CREATED, video_length_s=video_length_s,
                    primary=primary or PrimaryRun(custom_job=JOB + job_id, machine_type=SHAPE[0], accelerator=SHAPE[1]),
                    fallback=fallback or FallbackRun(), result=result or RenderResult(), cleaned_up=cleaned_up)


def vm_render(gpu: str, wall_s: float, worker_wall_s: float) -> RenderResult:
    return RenderResult(rendered_by="vm", gpu=gpu, wall_s=wall_s, worker_wall_s=worker_wall_s, video_s=180.0)


def row(state: JobState, runs: dict[str, VertexRun] | None = None, catalog=CATALOG) -> dict:
    never_ran = {JOB + state.job_id: VertexRun(JOB + state.job_id, "JOB_STATE_FAILED", None, T + 5)}
    return cost.job_cost(state, catalog, never_ran if runs is None else runs, SHAPE, NOW)


def a_vm_job(job_id: str = "on-vm") -> JobState:
    """The primary was refused for quota (it never ran); an on-demand L4 ran for 7 minutes, boot included."""
    return job(job_id, Status.SUCCEEDED, primary=PrimaryRun(custom_job=JOB + job_id, failure="quota"),
               fallback=FallbackRun(instance=f"{job_id}-a1", gpu="l4", provisioning="on-demand", price_per_hour=0.50,
                                    launched_at=T, deleted_at=T + 420, estimated_cost_usd=0.08),
               result=vm_render("l4", wall_s=240, worker_wall_s=300))


def test_a_vm_job_costs_its_vms_life_from_insert_to_delete_and_saves_against_the_same_render_on_vertex() -> None:
    r = row(a_vm_job())
    assert r["method"] == "vm" and r["vm_s"] == 420 and r["vertex_usd"] == 0  # a refused Vertex job costs nothing
    assert r["actual_usd"] == pytest.approx(420 / 3600 * 0.50, abs=1e-6)
    assert r["estimate_usd"] == 0.08
    assert r["estimate_error"] == pytest.approx((420 / 3600 * 0.50) / 0.08 - 1, abs=1e-4)
    # Vertex's n1-standard-8 + T4 has the L4 VM's 8 vCPUs and NVENC too, so by the runtime model its render of the
    # video takes as long as the L4's 240 s (this renderer composes on the CPU); plus the 60 s of transfer measured.
    on_vertex = (240 + 60) / 3600 * VERTEX_PRICE
    assert r["vertex_equivalent_usd"] == pytest.approx(on_vertex, abs=1e-6)
    assert r["vertex_equivalent_basis"] == "measured on l4, scaled to t4 (runtime model, n1-standard-8)"
    assert r["saving_usd"] == pytest.approx(on_vertex - 420 / 3600 * 0.50, abs=1e-6) and r["saving_usd"] > 0
    assert r["saving_fraction"] == pytest.approx(r["saving_usd"] / on_vertex, abs=1e-4)
    assert not r["open"] and r["notes"] == []


def test_under_speed_factor_pricing_a_vm_render_is_scaled_to_vertex_by_the_catalogs_speed_factors() -> None:
    r = row(a_vm_job(), catalog=SPEED_FACTOR)
    # On Vertex's T4 the L4's 240 s of rendering take 1.5x as long (the catalog's speed factors), plus the 60 s of transfer.
    on_vertex = (240 * 1.5 / 1.0 + 60) / 3600 * VERTEX_PRICE
    assert r["vertex_equivalent_usd"] == pytest.approx(on_vertex, abs=1e-6)
    assert r["vertex_equivalent_basis"] == "measured on l4, scaled to t4 (speed factors)"
    assert r["saving_usd"] == pytest.approx(on_vertex - 420 / 3600 * 0.50, abs=1e-6)


def a_cpu_job(job_id: str = "on-cpu", price: float | None = 0.30) -> JobState:
    """The primary was refused for quota; a CPU-only c3-highcpu-8 rendered the 180 s video in 500 s."""
    return job(job_id, Status.SUCCEEDED, primary=PrimaryRun(custom_job=JOB + job_id, failure="quota"),
               fallback=FallbackRun(instance=f"{job_id}-a1", gpu="c3-highcpu-8", provisioning="on-demand",
                                    price_per_hour=price, launched_at=T, deleted_at=T + 700, estimated_cost_usd=0.06),
               result=vm_render("c3-highcpu-8", wall_s=500, worker_wall_s=560))


def test_a_render_on_a_cpu_only_vm_is_measured_there_and_scaled_to_vertexs_machine_by_the_model() -> None:
    r = row(a_cpu_job())
    assert r["actual_usd"] == pytest.approx(700 / 3600 * 0.30, abs=1e-6) and r["gpu"] == "c3-highcpu-8"
    # The same 8 vCPUs, but Vertex's T4 encodes with NVENC where the CPU-only VM runs libx264 on its cores: the
    # measured 500 s are scaled by the model's ratio of the two machines' renders (whichever way it goes).
    cpu = estimate(load_calibration(), 180, vcpus=8, has_nvenc=False)
    scaled = 500 * on_vertex_machine(180).render_s / cpu.render_s
    assert r["vertex_equivalent_usd"] == pytest.approx((scaled + 60) / 3600 * VERTEX_PRICE, abs=1e-6)
    assert r["vertex_equivalent_basis"] == "measured on c3-highcpu-8, scaled to t4 (runtime model, n1-standard-8)"
    # Under speed_factor pricing a CPU-only machine has no speed factor: the Vertex estimate stands in, and says so.
    legacy = row(a_cpu_job(), catalog=SPEED_FACTOR)
    assert legacy["vertex_equivalent_basis"] == "Vertex estimate"
    assert legacy["vertex_equivalent_usd"] == pytest.approx((180 * 20 / 1.0 + 60) / 3600 * VERTEX_PRICE, abs=1e-6)


def test_an_adopted_cpu_only_vm_without_a_recorded_price_is_priced_from_the_catalogs_cpus() -> None:
    r = row(a_cpu_job("adopted", price=None))
    [attempt] = r["vm_attempts"]
    assert attempt["price_per_hour"] == CATALOG.cpus["c3-highcpu-8"].cost_per_hour
    assert r["actual_usd"] == pytest.approx(700 / 3600 * CATALOG.cpus["c3-highcpu-8"].cost_per_hour, abs=1e-6)
    assert r["notes"] == []


def test_a_preempted_spot_attempt_still_costs_its_time_and_the_relaunch_adds_its_own() -> None:
    preempted = {"attempt": 1, "instance": "spot-a1", "gpu": "t4", "provisioning": "spot", "launched_at": T,
                 "price_per_hour": 0.14, "ended_at": T + 300, "end": "preempted"}
    state = job("spot", Status.SUCCEEDED, primary=PrimaryRun(custom_job=JOB + "spot", failure="quota"),
                fallback=FallbackRun(attempt=2, instance="spot-a2", gpu="t4", provisioning="spot", price_per_hour=0.14,
                                     launched_at=T + 320, deleted_at=T + 1520, estimated_cost_usd=0.05, preemptions=1,
                                     previous=[preempted]),
                result=vm_render("t4", wall_s=1000, worker_wall_s=1100))
    r = row(state)
    first, second = r["vm_attempts"]
    assert (first["end"], first["seconds"], first["cost_usd"]) == ("preempted", 300, pytest.approx(300 / 3600 * 0.14, abs=1e-6))
    assert (second["end"], second["seconds"]) == ("deleted", 1200)
    assert r["actual_usd"] == pytest.approx(1500 / 3600 * 0.14, abs=1e-6)  # the Spot price, for both attempts
    assert r["provisioning"] == "spot" and r["estimate_error"] > 0  # the preemption cost more than planned


def test_a_hedge_pays_for_both_and_when_vertex_wins_the_saving_is_minus_the_vm() -> None:
    state = job("hedged", Status.SUCCEEDED,
                primary=PrimaryRun(custom_job=JOB + "hedged", machine_type=SHAPE[0], accelerator=SHAPE[1], failure="queued"),
                fallback=FallbackRun(instance="hedged-a1", gpu="l4", provisioning="on-demand", price_per_hour=0.50,
                                     launched_at=T + 60, deleted_at=T + 460, estimated_cost_usd=0.08),
                result=RenderResult(rendered_by="vertex", wall_s=800, worker_wall_s=900, video_s=180.0))
    runs = {JOB + "hedged": VertexRun(JOB + "hedged", "JOB_STATE_SUCCEEDED", T + 100, T + 1100)}
    r = row(state, runs)
    vm, on_vertex = 400 / 3600 * 0.50, 1000 / 3600 * VERTEX_PRICE
    assert r["method"] == "hedge"
    assert (r["vm_usd"], r["vertex_usd"]) == (pytest.approx(vm, abs=1e-6), pytest.approx(on_vertex, abs=1e-6))
    assert r["actual_usd"] == pytest.approx(vm + on_vertex, abs=1e-6)
    assert r["vertex_equivalent_usd"] == pytest.approx(on_vertex, abs=1e-6) and r["saving_usd"] == pytest.approx(-vm, abs=1e-6)
    # The estimate is both renders' too: the VM's, plus Vertex's for the 180 s video, by the runtime model on
    # Vertex's machine (render + transfer), or under speed_factor pricing at the T4's 20 s/s + the catalog's transfer.
    model = on_vertex_machine(180)
    assert r["estimate_usd"] == pytest.approx(0.08 + (model.render_s + model.transfer_s) / 3600 * VERTEX_PRICE, abs=1e-6)
    legacy = row(state, runs, catalog=SPEED_FACTOR)
    assert legacy["estimate_usd"] == pytest.approx(0.08 + (180 * 20 + 60) / 3600 * VERTEX_PRICE, abs=1e-6)


def test_a_vertex_only_job_costs_its_run_from_start_to_end_and_saves_nothing() -> None:
    state = job("vertex-only", Status.SUCCEEDED, result=RenderResult(rendered_by="vertex", wall_s=1000, video_s=180.0))
    runs = {JOB + "vertex-only": VertexRun(JOB + "vertex-only", "JOB_STATE_SUCCEEDED", T + 30, T + 1230)}
    r = row(state, runs)
    assert r["method"] == "vertex" and r["vm_attempts"] == [] and r["vm_usd"] == 0
    assert r["actual_usd"] == pytest.approx(1200 / 3600 * VERTEX_PRICE, abs=1e-6)  # queueing before start_time is free
    assert r["saving_usd"] == 0 and r["vertex_equivalent_basis"] == "its Vertex runs"


def test_a_still_running_vm_costs_up_to_now_and_is_marked_open() -> None:
    state = job("running", Status.VM_RUNNING, primary=PrimaryRun(custom_job=JOB + "running", failure="quota"),
                fallback=FallbackRun(instance="running-a1", gpu="l4", provisioning="spot", price_per_hour=0.20,
                                     launched_at=NOW - 120, estimated_cost_usd=0.03), cleaned_up=False)
    r = row(state)
    assert r["vm_attempts"][0]["end"] == "running" and r["vm_s"] == 120
    assert r["actual_usd"] == pytest.approx(120 / 3600 * 0.20, abs=1e-6) and r["open"]
    assert r["estimate_error"] is None and r["saving_usd"] is None  # neither is known until it ends


def test_a_finished_job_without_a_deletion_time_ends_at_its_last_change_and_clean_up_pending_keeps_billing() -> None:
    old = a_vm_job("old")
    old.fallback.deleted_at = None
    old.updated_at = datetime.fromtimestamp(T + 900, timezone.utc).isoformat()
    assert row(old)["vm_s"] == 900 and row(old)["vm_attempts"][0]["end"] == "job end (no deletion time recorded)"
    old.cleaned_up = False  # the VM may still be up: it costs until clean-up deletes it
    assert row(old)["vm_s"] == NOW - T and row(old)["open"]


def test_without_a_price_the_actual_is_unknown_rather_than_a_partial_sum() -> None:
    state = job("unpriced", Status.SUCCEEDED, result=RenderResult(rendered_by="vertex", wall_s=100, video_s=180.0),
                primary=PrimaryRun(custom_job=JOB + "unpriced", machine_type="a3-megagpu-8g", accelerator="NVIDIA_H100_MEGA_80GB"))
    r = row(state, {JOB + "unpriced": VertexRun(JOB + "unpriced", "JOB_STATE_SUCCEEDED", T, T + 100)})
    assert r["actual_usd"] is None and r["saving_usd"] is None
    assert "no Vertex price in the catalog for a3-megagpu-8g + NVIDIA_H100_MEGA_80GB" in r["notes"][0]
    gone = row(a_vm_job("gone"), runs={})  # Vertex AI could not say what its job ran
    assert gone["actual_usd"] is None and "Vertex AI did not answer" in gone["notes"][0]


def test_the_report_totals_per_day_and_overall_and_compares_learned_speeds_with_the_catalog() -> None:
    yesterday = a_vm_job("yesterday")
    yesterday.created_at = datetime.fromtimestamp(T - 86400, timezone.utc).isoformat()
    states = [a_vm_job("today-1"), a_vm_job("today-2"), yesterday]
    runs = {JOB + s.job_id: VertexRun(JOB + s.job_id, "JOB_STATE_FAILED", None, T) for s in states}
    learned = LearnedSpeeds(samples={"l4": [10.0, 12.0, 14.0]})
    report = cost.build_report(states, CATALOG, runs, SHAPE, learned, NOW, since_s=7 * 86400)
    assert [(d["day"], d["jobs"]) for d in report["days"]] == [(yesterday.created_at[:10], 1), (CREATED[:10], 2)]
    one = row(a_vm_job())
    totals = report["totals"]
    assert totals["actual_usd"] == pytest.approx(3 * one["actual_usd"], abs=1e-5) and totals["compared"] == 3
    assert totals["saving_fraction"] == pytest.approx(one["saving_fraction"], abs=1e-3)
    assert totals["median_estimate_error"] == pytest.approx(one["estimate_error"], abs=1e-4)
    # Speeds: every option, CPU-only machines too, at what the selector plans for a 180 s video before learning.
    speeds = {s["gpu"]: s for s in report["speeds"]}
    assert set(CATALOG.options) <= set(speeds) and speeds["c3-highcpu-8"]["cpu_only"] and not speeds["l4"]["cpu_only"]
    planned = {o.gpu: o.render_s / 180 for o in select(CATALOG, 180, spot=True).options}  # spot: h100 is Spot-only
    for name in CATALOG.options:
        assert speeds[name]["catalog_s_per_s"] == pytest.approx(planned[name], abs=1e-3), name
    l4 = speeds["l4"]
    assert l4["learned_s_per_s"] == 12.0 and l4["catalog_basis"].startswith("runtime model")
    assert l4["learned_vs_catalog"] == pytest.approx(12.0 / planned["l4"] - 1, abs=1e-3)
    assert l4["samples"] == 3 and not l4["used_by_selector"]  # 5 samples before the selector trusts them
    legacy = {s["gpu"]: s for s in cost.speeds(SPEED_FACTOR, learned)}
    assert legacy["l4"]["catalog_s_per_s"] == pytest.approx(20 / 1.5, abs=1e-3)
    assert legacy["l4"]["learned_vs_catalog"] == pytest.approx(12.0 / (20 / 1.5) - 1, abs=1e-3)
    assert legacy["c3-highcpu-8"]["catalog_s_per_s"] is None and legacy["c3-highcpu-8"]["in_catalog"]  # no speed factor
    rows = list(csv.DictReader(io.StringIO(cost.to_csv(report))))
    assert [r["job_id"] for r in rows] == ["yesterday", "today-1", "today-2"]
    assert float(rows[0]["actual_usd"]) == pytest.approx(one["actual_usd"]) and rows[0]["vm_attempts"] == "1"


def test_the_fields_the_report_reads_are_enough_to_cost_a_job_from_a_projection() -> None:
    """Once store.REPORT_FIELDS holds cost.COST_FIELDS, the report reads projections, not whole documents."""
    for state in (a_vm_job(), job("v", Status.SUCCEEDED, result=RenderResult(rendered_by="vertex", wall_s=9, video_s=9))):
        document = state.to_document(90)
        projected: dict = {}
        for name in cost.COST_FIELDS:
            section, _, key = name.partition(".")
            if key and key in document.get(section, {}):
                projected.setdefault(section, {})[key] = document[section][key]
            elif not key and section in document:
                projected[section] = document[section]
        assert row(JobState.from_document(projected)) == row(state)


def test_csv_and_json_together_are_refused_in_one_line(capsys) -> None:
    args = argparse.Namespace(since="7d", csv=True, json=True)
    assert cost.run(args) == 1
    assert capsys.readouterr().err.strip() == "avmonitor: --csv and --json: choose one"


# ---------------------------------------------------------------- on the local cloud


@pytest.fixture
def small_job(tmp_path: Path) -> Path:
    """A small story job folder (3 scenes, 320x180) with a job id of its own."""
    from render_vm.sample_job import make_sample_job

    folder = tmp_path / f"cost-{time.time_ns() % 10**9:09d}"
    make_sample_job(folder, scenes=3, width=320, height=180, seconds_per_scene=1.0, job_id=folder.name)
    return folder


def test_a_real_fallback_jobs_row_costs_its_vm_from_launch_to_deletion(cloud, outcomes, small_job, capsys) -> None:
    from functions import clients
    from functions.jobs import store
    from infra.local.testkit import admin, submit_job, wait_until

    vertex = cloud.env["VERTEX_API_ENDPOINT"]
    admin(vertex, "faults", {"mode": "quota"})
    try:
        job_id = submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), small_job)
        assert outcomes.wait(job_id)["status"] == "succeeded"
    finally:
        admin(vertex, "faults", {"mode": "ok"})
    wait_until(lambda: store().get(job_id).fallback.deleted_at is not None, timeout_s=60, interval_s=0.5)
    fb = store().get(job_id).fallback

    env = {**os.environ, **cloud.env, "COLUMNS": "200"}
    command = [sys.executable, "-m", "operators", "cost", "--since", "1h", "--json"]
    ran = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    r = next(j for j in json.loads(ran.stdout)["jobs"] if j["job_id"] == job_id)
    assert r["actual_usd"] == pytest.approx((fb.deleted_at - fb.launched_at) / 3600 * fb.price_per_hour, abs=1e-5)
    assert r["actual_usd"] > 0 and r["vm_attempts"][0]["end"] == "deleted" and r["vertex_usd"] == 0
    # Whichever option the selector took (a CPU-only machine when it is the cheapest), its measured render is scaled.
    assert fb.gpu in CATALOG.options and fb.price_per_hour == CATALOG.options[fb.gpu].price(fb.provisioning)
    assert r["saving_usd"] is not None and r["vertex_equivalent_basis"].startswith(f"measured on {fb.gpu}, scaled to t4")
    # The other two forms in this process (a process costs seconds of imports): one CSV row, and the tables.
    assert cost.run(argparse.Namespace(since="1h", csv=True, json=False)) == 0
    [line] = [c for c in csv.DictReader(io.StringIO(capsys.readouterr().out)) if c["job_id"] == job_id]
    assert float(line["actual_usd"]) == r["actual_usd"] and line["saving_usd"]
    assert cost.run(argparse.Namespace(since="1h", csv=False, json=False)) == 0
    assert "Saving against Vertex AI" in capsys.readouterr().out
