"""render_vm/startup.sh, run for real: bash, on the local Compute Engine, against its metadata server.

The VM is the one the launcher asks for (functions.vm_spec.build_instance), so
the script and its metadata are the product's. What a Deep Learning VM would
provide is faked on PATH: ``docker`` and ``nvidia-smi`` record each call in the
instance's disk (its working directory) and behave as the test's own metadata
(``test-*``) says. The self-delete goes to the stand-in's Compute API, which
stops the instance as GCE would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from catalog.model import load_catalog
from catalog.select import select
from functions.config import Config
from functions.vm_spec import build_instance, instance_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = "startup-tests"
ZONE = "us-central1-a"
IMAGE = "us-central1-docker.pkg.dev/startup-tests/render/worker:v1"

# The fakes read their orders from the instance's metadata (test-*), as the script reads its own.
_ATTR = 'attr() { curl -fsS -H "Metadata-Flavor: Google" "http://$GCE_METADATA_HOST/computeMetadata/v1/instance/attributes/$1" 2>/dev/null; }'
_RECORD = 'python3 -c "import json, sys; print(json.dumps(sys.argv[1:]))" "${0##*/}" "$@" >> "$PWD/calls.jsonl"'
FAKE_DOCKER = f"""#!/bin/bash
{_ATTR}
{_RECORD}
case "$1" in
  login) cat > "$PWD/login-password"; echo "$DOCKER_CONFIG" > "$PWD/docker-config" ;;
  info) [ "$(attr test-docker)" != down ] ;;
  pull) [ "$(attr test-pull)" != fail ] ;;
  run)
    if [ "$(attr test-gcplogs)" = broken ] && [[ " $* " == *" --log-driver=gcplogs "* ]]; then
      echo "docker: Error response from daemon: failed to initialize logging driver" >&2; exit 125
    fi
    echo "worker: rendering"
    exit "$(attr test-run-exit || echo 0)" ;;
esac
"""
FAKE_NVIDIA_SMI = f"""#!/bin/bash
{_ATTR}
{_RECORD}
# "absent": what bash says of a command that is not installed (a CPU image has no NVIDIA driver).
if [ "$(attr test-driver)" = absent ]; then echo "nvidia-smi: command not found" >&2; exit 127; fi
[ "$(attr test-driver)" != never ]
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Compute:
    def __init__(self, bin_dir: Path) -> None:
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        argv = [sys.executable, "-m", "infra.local.compute_server", "--port", str(port), "--project", PROJECT]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.admin("faults")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the local compute engine did not start") from None
                time.sleep(0.1)
        self.instances = compute_v1.InstancesClient(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
        )

    def admin(self, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.endpoint}/_admin/{path}", data=data,
                                         method="GET" if data is None else "POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def stop(self) -> None:
        for signum, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def compute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compute]:
    bin_dir = tmp_path_factory.mktemp("fake-bin")
    for name, text in (("docker", FAKE_DOCKER), ("nvidia-smi", FAKE_NVIDIA_SMI)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    server = Compute(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def clean(compute: Compute) -> Iterator[None]:
    compute.admin("reset", {})
    yield
    compute.admin("reset", {})


# A GPU VM as the launcher makes it: the first GPU option the selector weighs for a 3-minute video.
OPTION = next(o for o in select(load_catalog(), 180, spot=False).options if o.accelerator_count > 0)
# A CPU-only machine as the catalog's `cpus:` section gives it (no accelerator, count 0, named by its entry's key).
CPU_OPTION = dataclasses.replace(OPTION, gpu="c3-highcpu-8", machine_type="c3-highcpu-8", accelerator="",
                                 accelerator_count=0, has_nvenc=False)


def launch(compute: Compute, job_id: str, *, worker_command: str = "", option=OPTION, **test_metadata: str) -> dict:
    """The launcher's VM for ``job_id`` (plus test-* metadata for the fakes); returns its admin record once it is gone."""
    cfg = Config(project=PROJECT, region="us-central1", staging_bucket="s", output_bucket="o", worker_image=IMAGE,
                 vm_worker_command=worker_command, compute_endpoint=compute.endpoint)
    name = instance_name(job_id, 1, prefix=cfg.vm_name_prefix)
    instance = build_instance(cfg, job_id, 1, name, option, ZONE)
    extra = {"fast-render-driver-timeout-s": "2", "fast-render-retry-backoff-s": "0",
             **{f"test-{key.replace('_', '-')}": value for key, value in test_metadata.items()}}
    instance.metadata.items.extend(compute_v1.Items(key=k, value=v) for k, v in extra.items())
    compute.instances.insert(project=PROJECT, zone=ZONE, instance_resource=instance).result(timeout=30)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        (record,) = [i for i in compute.admin("instances")["instances"] if i["name"] == name]
        if record["deleted"]:
            return record
        time.sleep(0.1)
    raise AssertionError(f"{name} was not deleted:\n{Path(record['serial_log']).read_text()}")


def calls(record: dict) -> list[list[str]]:
    path = Path(record["disk_dir"], "calls.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def serial(record: dict) -> str:
    return Path(record["serial_log"]).read_text()


def docker(record: dict, command: str) -> list[list[str]]:
    """The ``docker COMMAND`` calls, each as its arguments after the command."""
    return [call[2:] for call in calls(record) if call[:2] == ["docker", command]]


def runs(record: dict) -> list[list[str]]:
    return docker(record, "run")


def test_the_container_path_logs_in_with_the_vms_token_pulls_runs_on_the_gpu_and_deletes_the_vm(compute) -> None:
    record = launch(compute, "happy")

    made = [" ".join(call[:2]) for call in calls(record)]
    assert made == ["nvidia-smi", "docker info", "docker login", "docker pull", "docker run"], made
    assert docker(record, "login") == [["-u", "oauth2accesstoken", "--password-stdin", "https://us-central1-docker.pkg.dev"]]
    assert Path(record["disk_dir"], "login-password").read_text() == "local-fake-token"  # the metadata server's
    docker_config = Path(Path(record["disk_dir"], "docker-config").read_text().strip())
    assert docker_config.parent.name.startswith("fast-render.") and not docker_config.parent.exists()  # removed
    assert docker(record, "pull") == [["--quiet", IMAGE]]
    (run,) = runs(record)
    for flag in ("--gpus all", "--cap-drop ALL", "--security-opt no-new-privileges", "--log-driver=gcplogs",
                 "--log-opt labels=fast-render-job", "--label fast-render-job=happy"):
        assert flag in " ".join(run), (flag, run)
    assert "--read-only" in run and "--rm" in run
    mount = run[run.index("--mount") + 1]  # a scratch volume on the VM's disk: the root is read-only
    assert mount.startswith("type=bind,source=/var/tmp/fast-render.") and mount.endswith(",target=/scratch")
    assert "TMPDIR=/scratch" in run and "--network" not in " ".join(run)  # Docker's bridge, not the host's network
    assert run[-5:] == [IMAGE, "python", "-m", "render_vm", "worker"]
    assert "worker: rendering" in serial(record)  # attached: the lines reach the serial console too
    assert "worker exited with 0" in serial(record)


def test_a_cpu_only_vm_runs_the_worker_without_a_driver_or_gpus_and_deletes_itself(compute) -> None:
    # No NVIDIA driver on the VM at all: a wait for it would time out and no render would happen.
    record = launch(compute, "cpuonly", option=CPU_OPTION, driver="absent")

    made = [" ".join(call[:2]) for call in calls(record)]
    assert made == ["docker info", "docker login", "docker pull", "docker run"], made
    (run,) = runs(record)
    assert "--gpus" not in run, run
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--log-driver=gcplogs",
                 "--label fast-render-job=cpuonly"):  # the same hardening and logging as on a GPU
        assert flag in " ".join(run), (flag, run)
    assert "--read-only" in run and run[-5:] == [IMAGE, "python", "-m", "render_vm", "worker"]
    assert Path(record["disk_dir"], "login-password").read_text() == "local-fake-token"  # the VM's own token
    assert "0 GPU(s)" in serial(record) and "NVIDIA" not in serial(record)
    assert "worker exited with 0" in serial(record) and "deleting this VM" in serial(record)


def test_a_cpu_only_vm_whose_logging_driver_fails_still_renders_without_gpus(compute) -> None:
    record = launch(compute, "cpunologs", option=CPU_OPTION, driver="absent", gcplogs="broken")
    first, second = runs(record)
    assert "--log-driver=json-file" in second and "--gpus" not in first + second
    assert "worker exited with 0" in serial(record)


def launch_with_gpu_count(compute: Compute, job_id: str, count: str | None) -> dict:
    """The launcher's GPU VM with its fast-render-gpu-count replaced (None: removed); its record once it is gone."""
    cfg = Config(project=PROJECT, region="us-central1", staging_bucket="s", output_bucket="o", worker_image=IMAGE,
                 compute_endpoint=compute.endpoint)
    name = instance_name(job_id, 1, prefix=cfg.vm_name_prefix)
    instance = build_instance(cfg, job_id, 1, name, OPTION, ZONE)
    items = [item for item in instance.metadata.items if item.key != "fast-render-gpu-count"]
    if count is not None:
        items.append(compute_v1.Items(key="fast-render-gpu-count", value=count))
    items.append(compute_v1.Items(key="fast-render-driver-timeout-s", value="2"))
    instance.metadata.items.clear()
    instance.metadata.items.extend(items)
    compute.instances.insert(project=PROJECT, zone=ZONE, instance_resource=instance).result(timeout=30)
    deadline = time.monotonic() + 30
    while not (record := [i for i in compute.admin("instances")["instances"] if i["name"] == name][0])["deleted"]:
        assert time.monotonic() < deadline, serial(record)
        time.sleep(0.1)
    return record


def test_a_gpu_count_that_is_not_a_number_is_one_line_and_the_vm_is_deleted(compute) -> None:
    record = launch_with_gpu_count(compute, "badcount", "two")
    assert "fast-render-gpu-count is 'two', not a number of GPUs" in serial(record)
    assert calls(record) == [] and "exiting with status 2" in serial(record)


def test_a_vm_without_a_gpu_count_is_a_gpu_vm_as_before(compute) -> None:
    """A launcher from before CPU-only VMs sets no count: it only ever made GPU VMs."""
    record = launch_with_gpu_count(compute, "nocount", None)
    assert [" ".join(call[:2]) for call in calls(record)][0] == "nvidia-smi"
    (run,) = runs(record)
    assert "--gpus all" in " ".join(run)


def test_a_failing_worker_still_deletes_the_vm(compute) -> None:
    record = launch(compute, "fails", run_exit="3")
    assert len(runs(record)) == 1
    assert "worker exited with 3" in serial(record) and "exiting with status 3; deleting this VM" in serial(record)


def test_a_pull_that_keeps_failing_is_retried_then_the_vm_is_deleted(compute) -> None:
    record = launch(compute, "nopull", pull="fail")
    assert len(docker(record, "pull")) == 5 and len(docker(record, "login")) == 5  # a fresh login before every attempt
    assert runs(record) == []
    assert "pull of " + IMAGE + " failed (attempt 5 of 5)" in serial(record)
    assert "deleting this VM" in serial(record)


def test_a_driver_that_never_appears_times_out_and_the_vm_is_deleted(compute) -> None:
    started = time.monotonic()
    record = launch(compute, "nodriver", driver="never")
    assert "the NVIDIA driver (nvidia-smi) not ready after 2 s; giving up" in serial(record)
    assert calls(record).count(["nvidia-smi"]) >= 2 and docker(record, "info") == [] and runs(record) == []
    assert "deleting this VM" in serial(record) and time.monotonic() - started < 30


def test_a_docker_daemon_that_never_starts_times_out_and_the_vm_is_deleted(compute) -> None:
    record = launch(compute, "nodocker", docker="down")
    assert "the Docker daemon not ready after 2 s; giving up" in serial(record) and runs(record) == []


def test_a_broken_logging_driver_falls_back_to_json_file_rather_than_lose_the_render(compute) -> None:
    record = launch(compute, "nologs", gcplogs="broken")
    first, second = runs(record)
    assert "--log-driver=gcplogs" in first and "--log-driver=json-file" in second
    assert "--cap-drop" in second and "--read-only" in second  # the fallback keeps the hardening
    assert "worker exited with 0" in serial(record)


def test_the_command_path_still_runs_its_command_and_deletes_the_vm(compute) -> None:
    record = launch(compute, "local", worker_command='echo "command ran for $(pwd)"; exit 4')
    assert calls(record) == []  # no driver wait, no docker
    assert f"command ran for {record['disk_dir']}" in serial(record)
    assert "worker exited with 4" in serial(record) and "deleting this VM" in serial(record)


def test_a_vm_with_neither_an_image_nor_a_command_says_so_and_is_deleted(compute) -> None:
    cfg = Config(project=PROJECT, region="us-central1", staging_bucket="s", output_bucket="o", worker_image="",
                 compute_endpoint=compute.endpoint)
    name = instance_name("nothing", 1, prefix=cfg.vm_name_prefix)
    instance = build_instance(cfg, "nothing", 1, name, OPTION, ZONE)
    compute.instances.insert(project=PROJECT, zone=ZONE, instance_resource=instance).result(timeout=30)
    deadline = time.monotonic() + 20
    while not (record := [i for i in compute.admin("instances")["instances"] if i["name"] == name][0])["deleted"]:
        assert time.monotonic() < deadline, serial(record)
        time.sleep(0.1)
    assert "neither fast-render-worker-image nor fast-render-worker-command is set" in serial(record)
    assert "exiting with status 2" in serial(record)


def test_the_script_is_the_one_the_launcher_sends() -> None:
    from functions import vm_spec

    assert vm_spec.STARTUP_SCRIPT == (REPO / "render_vm" / "startup.sh").read_text()



def test_a_vm_deleted_from_outside_while_it_renders_stops_at_once_without_a_second_delete(compute) -> None:
    cfg = Config(project=PROJECT, region="us-central1", staging_bucket="s", output_bucket="o",
                 vm_worker_command="echo rendering; sleep 60", compute_endpoint=compute.endpoint)
    name = instance_name("outside", 1, prefix=cfg.vm_name_prefix)
    instance = build_instance(cfg, "outside", 1, name, OPTION, ZONE)
    compute.instances.insert(project=PROJECT, zone=ZONE, instance_resource=instance).result(timeout=30)
    (record,) = compute.admin("instances")["instances"]
    deadline = time.monotonic() + 20
    while "rendering" not in serial(record):
        assert time.monotonic() < deadline, serial(record)
        time.sleep(0.1)

    started = time.monotonic()
    compute.instances.delete(project=PROJECT, zone=ZONE, instance=name).result(timeout=30)  # the completion's clean-up
    assert time.monotonic() - started < 1.5  # within the stand-in's 2 s grace: the script did not linger

    assert "stopped by SIGTERM (the VM is shutting down); no self-delete" in serial(record)
    deletes = [op for op in compute.admin("operations")["operations"] if op["operationType"] == "delete"]
    assert len(deletes) == 1
