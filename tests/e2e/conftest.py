"""One local cloud for the end-to-end tests: started once, stopped at the end, nothing left running."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from infra.local.cloud import LocalCloud, Ports
from infra.local.testkit import FAST_SETTINGS, admin
from infra.local.topology import load_topology

PROJECT = "fast-render-e2e"


class Outcomes:
    """Every message the main app would receive on render-completed / render-failed, by job id."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud
        self.completed: dict[str, list[dict]] = defaultdict(list)
        self.failed: dict[str, list[dict]] = defaultdict(list)

    def drain(self) -> None:
        for subscription, sink in (("render-completed-main", self.completed), ("render-failed-main", self.failed)):
            for message in self._cloud.pull(subscription, timeout=0.5, max_messages=100):
                body = json.loads(message.data)
                sink[body["job_id"]].append(body)

    def wait(self, job_id: str, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            if self.completed[job_id] or self.failed[job_id]:
                return (self.completed[job_id] or self.failed[job_id])[0]
        raise TimeoutError(f"no render-completed or render-failed for {job_id} in {timeout_s:.0f} s")

    def settle(self, seconds: float = 3.0) -> None:
        """Keep collecting for a while, so late duplicates would be seen."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.drain()


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    local = LocalCloud(
        project=PROJECT,
        ports=Ports.free(load_topology(PROJECT)),
        state_dir=tmp_path_factory.mktemp("local-cloud"),
        tick_every_s=2,
        extra_env={
            **FAST_SETTINGS,
            "DEAD_LETTER_PATIENCE_S": "0",  # the dead-letter test counts to the limit at once
            # These tests inject GPU stockouts and quotas, so the fallback must try GPUs; the CPU-only
            # path (chosen whenever it is cheapest) has its own clouds in test_cpu_fallback.py.
            "FALLBACK_GPU_ONLY": "true",
        },
    )
    with local:
        os.environ.update(local.env)  # the tests are clients of the local cloud, like the main app
        yield local


@pytest.fixture(scope="session")
def outcomes(cloud: LocalCloud) -> Outcomes:
    return Outcomes(cloud)


@pytest.fixture
def faults(cloud: LocalCloud):
    """Set faults for one test; they are cleared afterwards."""
    compute, vertex = cloud.env["COMPUTE_API_ENDPOINT"], cloud.env["VERTEX_API_ENDPOINT"]

    class Faults:
        def vertex(self, **faults) -> None:
            admin(vertex, "faults", faults)

        def compute(self, **faults) -> None:
            admin(compute, "faults", faults)

        def instances(self, job_id: str) -> list[dict]:
            return [i for i in admin(compute, "instances")["instances"] if i.get("labels", {}).get("fast-render-job") == job_id]

        def custom_jobs(self, job_id: str) -> list[dict]:
            return [j for j in admin(vertex, "custom_jobs")["custom_jobs"] if job_id in json.dumps(j.get("labels", {}))]

    yield Faults()
    admin(vertex, "faults", {"mode": "ok"})
    admin(compute, "faults", {})
    # What one test taught the fleet (stockouts, spend) must not steer the next.
    from functions import budget, clients, memory

    db = clients.firestore_client()
    for collection in (memory.FLEET, budget.COLLECTION):
        for document in db.collection(collection).list_documents():
            document.delete()


@pytest.fixture
def job_dir(tmp_path: Path, request: pytest.FixtureRequest):
    """A small story job folder (3 scenes, 320x180) with a job id unique to the test."""
    from render_vm.sample_job import make_sample_job

    job_id = request.node.name.replace("_", "-").lower()[:30].strip("-") + "-" + format(time.time_ns() % 10**6, "06d")
    folder = tmp_path / job_id
    make_sample_job(folder, scenes=3, width=320, height=180, seconds_per_scene=1.0, job_id=job_id)
    return folder
