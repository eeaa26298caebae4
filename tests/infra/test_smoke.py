"""python -m infra.smoke, the deployment's smoke test, run against the local cloud: one job, its outcome line.

Cloud Build runs the same command against the real project (cloudbuild.yaml's
smoke step); here the environment points it at a local cloud of its own.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from common.manifest import parse_manifest
from infra import smoke
from infra.local.cloud import LocalCloud, Ports
from infra.local.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
PROJECT = "fast-render-smoke"


def test_the_smoke_job_is_a_valid_job_with_a_real_still():
    manifest = parse_manifest(smoke.smoke_manifest(smoke.new_job_id()))
    assert manifest.known_length_s() == 1.0
    image = Image.open(io.BytesIO(smoke.tiny_png()))
    image.load()
    assert image.size == (64, 36) and image.mode == "RGB"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("the local cloud runs on Linux")
    local = LocalCloud(project=PROJECT, ports=Ports.free(load_topology(PROJECT)),
                       state_dir=tmp_path_factory.mktemp("smoke-cloud"), tick_every_s=2,
                       extra_env={"VM_WORKER_COMMAND": "python -m render_vm worker"})
    with local:
        yield local


def run_smoke(cloud: LocalCloud, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, **cloud.env, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "infra.smoke", "--project", PROJECT, *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def smoked(cloud):
    """One smoke run (the module's one job): its process and how long it took."""
    started = time.monotonic()
    proc = run_smoke(cloud, "--timeout", "180")
    return proc, time.monotonic() - started


def test_smoke_submits_a_job_and_reports_its_video(cloud, smoked):
    proc, took_s = smoked
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.fullmatch(rf"smoke: ok: job (smoke-[0-9-]+-[0-9a-f]{{4}}) rendered by (vertex|vm) in (\d+) s: "
                         rf"gs://{PROJECT}-output/renders/(\S+)/video\.mp4", lines[-1])
    assert match, lines[-1]
    assert match.group(1) == match.group(4)
    assert int(match.group(3)) <= took_s + 0.5  # the line rounds to whole seconds
    assert cloud.storage().bucket(f"{PROJECT}-output").get_blob(f"renders/{match.group(1)}/video.mp4").size > 0


def test_no_outcome_in_time_is_one_failed_line_then_the_jobs_record(cloud, smoked):
    """Submitting the finished job's id again renders nothing (intake never changes an existing job):
    no outcome comes, and the smoke test says so, then shows what operators would look at."""
    known = re.search(r"job (smoke-\S+) rendered", smoked[0].stdout).group(1)
    proc = run_smoke(cloud, "--job-id", known, "--timeout", "3", timeout_s=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("smoke: FAILED")]
    assert len(failed) == 1 and re.fullmatch(rf"smoke: FAILED: job {known} after \d+ s: no render-completed or "
                                             r"render-failed within 3 s", failed[0]), proc.stdout
    report = proc.stdout.split(failed[0], 1)[1]
    assert f"avmonitor show {known}" in report and "succeeded" in report, report
