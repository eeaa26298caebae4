"""A primary that runs far past what the runtime model expects of it is hedged with a VM, and the first
video wins.

On a cloud of its own (``overrun_catalog.yml``: the watchdog's estimate of the primary, the runtime model
on Vertex's n1-standard-8 with a T4, plus the T4's boot overhead, is a few seconds for this tiny job; and
``PRIMARY_OVERRUN_FACTOR`` 2). The Vertex stand-in's ``timeout`` mode holds the custom job RUNNING
without starting its command, as a hung container would, and fails it only after two minutes. What a
user would notice: the job succeeds long before that, rendered by the hedge VM, once; the primary is
stopped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions import clients
from functions.jobs import store
from infra.local.cloud import LocalCloud, Ports
from infra.local.testkit import FAST_SETTINGS, Outcomes, admin, client_of, submit_job
from infra.local.topology import load_topology

PROJECT = "fast-render-overrun-e2e"
CATALOG = Path(__file__).with_name("overrun_catalog.yml")
SETTINGS = {**FAST_SETTINGS, "GPU_CATALOG": str(CATALOG), "PRIMARY_OVERRUN_FACTOR": "2", "FALLBACK_GPU_ONLY": "true"}


@pytest.fixture(scope="module")
def overrun_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("the local cloud runs on Linux")
    cloud = LocalCloud(project=PROJECT, ports=Ports.free(load_topology(PROJECT)),
                       state_dir=tmp_path_factory.mktemp("overrun-cloud"), tick_every_s=2, extra_env=SETTINGS)
    with cloud, client_of(cloud, {"GPU_CATALOG": str(CATALOG)}):
        admin(cloud.env["VERTEX_API_ENDPOINT"], "faults", {"mode": "timeout", "timeout_after_s": 120})
        yield cloud


def test_a_primary_running_far_past_its_estimate_is_hedged_and_the_hedge_video_wins(overrun_cloud, job_dir) -> None:
    outcomes = Outcomes(overrun_cloud)
    started = time.monotonic()
    job_id = submit_job(overrun_cloud, clients.storage_client().bucket(clients.config().staging_bucket), job_dir)
    outcome = outcomes.wait(job_id, timeout_s=90)
    assert outcome["status"] == "succeeded" and outcome["rendered_by"] == "vm", outcome
    assert time.monotonic() - started < 100  # not the primary's two-minute timeout
    state = store().get(job_id)
    assert "x its estimate): hedging" in state.primary.error
    vertex = overrun_cloud.env["VERTEX_API_ENDPOINT"]
    time.sleep(1)
    [custom_job] = [j for j in admin(vertex, "custom_jobs")["custom_jobs"] if job_id in str(j.get("labels", {}))]
    assert custom_job["state"] in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")  # the loser is stopped
    outcomes.settle(2)
    assert len(outcomes.completed[job_id]) == 1
