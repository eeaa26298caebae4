"""Every GPU out of stock: the job still renders, on a machine without a GPU (unless the fallback is GPU-only).

On the local cloud, with a catalog of its own (``cpu_fallback_catalog.yml``: a
T4 and a dearer CPU-only ``c3-highcpu-8``, so that the launcher tries the GPU
first) and every T4 insert refused as a zone stockout by the Compute stand-in.
The tests start clouds of their own, because the catalog and
``FALLBACK_GPU_ONLY`` are the functions' environment (the GPU-only test first,
so that two clouds never run at once); what they check is what a user would
notice: the outcome on render-completed / render-failed, the video, the job's
state, and the VM that was (or was not) made.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from common import layout
from functions import clients
from functions.jobs import store
from infra.local.cloud import LocalCloud, Ports
from infra.local.testkit import FAST_SETTINGS, Outcomes, admin, client_of, submit_job
from infra.local.topology import load_topology

PROJECT = "fast-render-cpu-e2e"
CATALOG = Path(__file__).with_name("cpu_fallback_catalog.yml")
T4_ZONES = ["us-central1-a", "us-central1-b"]  # the catalog's

FAST = {**FAST_SETTINGS, "GPU_CATALOG": str(CATALOG)}
# Every GPU insert is a stockout, in every zone; an insert without a GPU is not matched (gpus names GPU types).
EVERY_GPU_STOCKED_OUT = {"insert_errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "zones": ["*"],
                                            "gpus": ["nvidia-tesla-t4"]}]}


@contextlib.contextmanager
def local_cloud(tmp_path: Path, **settings: str) -> Iterator[LocalCloud]:
    """A cloud of the test's own with these settings, this process its client; stopped (nothing left) after."""
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("the local cloud runs on Linux")
    cloud = LocalCloud(project=PROJECT, ports=Ports.free(load_topology(PROJECT)), state_dir=tmp_path / "cloud",
                       tick_every_s=2, extra_env={**FAST, **settings})
    with cloud, client_of(cloud, {"GPU_CATALOG": str(CATALOG), **settings}):
        admin(cloud.env["VERTEX_API_ENDPOINT"], "faults", {"mode": "quota"})  # the primary fails: the VM renders
        admin(cloud.env["COMPUTE_API_ENDPOINT"], "faults", EVERY_GPU_STOCKED_OUT)
        yield cloud


@pytest.fixture(scope="module")
def cpu_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The cloud of the tests where CPU-only machines may render (FALLBACK_GPU_ONLY unset: its default, false)."""
    with local_cloud(tmp_path_factory.mktemp("cpu-cloud")) as cloud:
        yield cloud


def submit(cloud: LocalCloud, job_dir: Path) -> str:
    return submit_job(cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)


def instances(cloud: LocalCloud, job_id: str) -> list[dict]:
    every = admin(cloud.env["COMPUTE_API_ENDPOINT"], "instances")["instances"]
    return [i for i in every if i.get("labels", {}).get(layout.JOB_LABEL) == job_id]


def test_a_gpu_only_fallback_launches_no_cpu_vm_and_fails_with_the_stockouts(tmp_path, job_dir) -> None:
    with local_cloud(tmp_path, FALLBACK_GPU_ONLY="true") as cloud:
        job_id = submit(cloud, job_dir)
        outcome = Outcomes(cloud).wait(job_id, timeout_s=240)
        assert outcome["status"] == "failed", outcome
        # What the user reads: nothing could be launched, within the backoff bound, and why.
        assert outcome["reason"].startswith("no GPU VM could be launched in "), outcome["reason"]
        assert "t4@us-central1-a: stockout" in outcome["reason"] and "c3-highcpu-8" not in outcome["reason"]
        state = store().get(job_id)
        assert state.status.value == "failed" and state.error == outcome["reason"]
        assert {t["gpu"] for t in state.fallback.tried} == {"t4"}  # the CPU-only machine was never tried
        assert state.fallback.launch_pass > 1  # it backed off and probed again before giving up
        assert instances(cloud, job_id) == []


def test_every_gpu_out_of_stock_renders_on_a_cpu_only_vm(cpu_cloud, tmp_path, job_dir) -> None:
    cloud = cpu_cloud  # shared with the next test (a cloud takes a minute to start)
    job_id = submit(cloud, job_dir)
    outcome = Outcomes(cloud).wait(job_id, timeout_s=240)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome

    state = store().get(job_id)
    assert (state.fallback.gpu, state.fallback.machine_type) == ("c3-highcpu-8", "c3-highcpu-8")
    assert state.fallback.zone == "us-central1-a"
    # The GPU was tried first, in each of its zones, and was out of stock there.
    gpu_tries = [(t["gpu"], t["zone"], t["kind"]) for t in state.fallback.tried]
    assert {zone for _, zone, _ in gpu_tries} == set(T4_ZONES), gpu_tries
    assert {(gpu, kind) for gpu, _, kind in gpu_tries} == {("t4", "stockout")}, gpu_tries

    [vm] = instances(cloud, job_id)  # one VM: the CPU-only one (a refused insert leaves none)
    assert vm["machineType"] == "c3-highcpu-8" and vm["guestAccelerators"] == []
    assert vm["labels"][layout.GPU_LABEL] == "c3-highcpu-8"
    assert vm["scheduling"]["onHostMaintenance"] == "MIGRATE"  # on-demand without a GPU: may live-migrate
    assert "fast-render-gpu-count" in vm["metadata_keys"] and "install-nvidia-driver" not in vm["metadata_keys"]
    assert vm["deleted"]  # it deleted itself after the render

    local = tmp_path / "video.mp4"
    clients.storage_client().bucket(clients.config().output_bucket).blob(
        layout.video_object(job_id)).download_to_filename(str(local))
    with av.open(str(local)) as container:
        assert {s.type: s.codec_context.name for s in container.streams} == {"video": "h264", "audio": "aac"}
        assert container.duration / 1_000_000 == pytest.approx(state.video_length_s, abs=1 / 30 + 0.1)


def test_a_cpu_machines_regional_quota_moves_it_to_another_region(cpu_cloud, job_dir) -> None:
    cloud = cpu_cloud
    # Still no GPU anywhere, and now no vCPU quota left in us-central1 (the stand-in's regional CPUS refusal).
    central = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    admin(cloud.env["COMPUTE_API_ENDPOINT"], "faults", {"insert_errors": [
        *EVERY_GPU_STOCKED_OUT["insert_errors"], {"code": "QUOTA_EXCEEDED", "zones": central, "gpus": ["*"]}]})
    job_id = submit(cloud, job_dir)
    outcome = Outcomes(cloud).wait(job_id, timeout_s=240)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome

    state = store().get(job_id)
    assert (state.fallback.gpu, state.fallback.zone) == ("c3-highcpu-8", "us-east1-b")
    cpu_tries = [(t["zone"], t["kind"]) for t in state.fallback.tried if t["gpu"] == "c3-highcpu-8"]
    assert cpu_tries == [("us-central1-a", "region-quota")]  # one refusal blocks the region, not just the zone
    [vm] = instances(cloud, job_id)
    assert vm["zone"] == "us-east1-b" and vm["guestAccelerators"] == []
