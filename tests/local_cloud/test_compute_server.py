"""The local Compute Engine, driven only through ``google.cloud.compute_v1``.

One server for the module; each test starts from ``/_admin/reset`` (no
instances, no faults).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from infra.local.compute_errors import TABLE

PROJECT = "compute-tests"


@pytest.fixture(scope="module")
def compute(start_server: Callable[..., Any]) -> Any:
    return start_server("infra.local.compute_server", PROJECT)


@pytest.fixture(autouse=True)
def clean(compute: Any) -> Iterator[None]:
    compute.admin("reset", {})
    yield
    compute.admin("reset", {})


@pytest.fixture(scope="module")
def instances(compute: Any) -> compute_v1.InstancesClient:
    options = {"api_endpoint": compute.endpoint}
    return compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options=options)


def make_instance(
    name: str,
    script: str | None = None,
    *,
    machine: str = "n1-standard-4",
    gpu: str | None = None,
    labels: dict[str, str] | None = None,
    scheduling: compute_v1.Scheduling | None = None,
    zone: str = "us-central1-a",
) -> compute_v1.Instance:
    items = [compute_v1.Items(key="job-id", value="lighthouse-0042")]
    if script is not None:
        items.append(compute_v1.Items(key="startup-script", value=script))
    instance = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine}",
        labels=labels or {},
        metadata=compute_v1.Metadata(items=items),
    )
    if gpu:
        instance.guest_accelerators = [
            compute_v1.AcceleratorConfig(accelerator_type=f"zones/{zone}/acceleratorTypes/{gpu}", accelerator_count=1)
        ]
    if gpu or machine.split("-")[0] in ("a2", "a3", "g2"):  # these machine types come with their GPUs
        instance.scheduling = compute_v1.Scheduling(on_host_maintenance="TERMINATE")  # a GPU cannot live-migrate
    if scheduling is not None:
        instance.scheduling = scheduling
    return instance


def insert(
    client: compute_v1.InstancesClient,
    instance: compute_v1.Instance,
    zone: str = "us-central1-a",
    request_id: str | None = None,
) -> Any:
    request = compute_v1.InsertInstanceRequest(project=PROJECT, zone=zone, instance_resource=instance)
    if request_id:
        request.request_id = request_id
    return client.insert(request=request)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (a zombie counts until its parent, or init, reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_startup_script_runs_and_reads_its_metadata(
    instances: compute_v1.InstancesClient, compute: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    script = f"""
out={tmp_path}
m="http://$GCE_METADATA_HOST/computeMetadata/v1"
get() {{ curl -sf -H 'Metadata-Flavor: Google' "$m/$1"; }}
get instance/name > $out/name
get instance/zone > $out/zone
get instance/attributes/job-id > $out/job-id
get 'instance/attributes/?recursive=true' > $out/attributes.json
get project/project-id > $out/project
get instance/scheduling/preemptible > $out/preemptible
curl -s -o /dev/null -w '%{{http_code}}' "$m/instance/name" > $out/status-without-header
pwd > $out/cwd
echo hello from the startup script
touch $out/done
"""
    insert(instances, make_instance("vm-metadata", script, labels={"fast-render-job": "j1"})).result(timeout=30)

    wait_for(lambda: (tmp_path / "done").exists())
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    assert read("name") == "vm-metadata"
    assert read("zone").startswith("projects/") and read("zone").endswith("/zones/us-central1-a")
    assert read("job-id") == "lighthouse-0042"
    assert json.loads(read("attributes.json"))["job-id"] == "lighthouse-0042"
    assert read("project") == PROJECT
    assert read("preemptible") == "FALSE"
    assert read("status-without-header") == "403"
    record = wait_for(
        lambda: [i for i in compute.admin("instances")["instances"] if i["startup_script_exit_code"] == 0]
    )[0]
    assert read("cwd").strip() == record["disk_dir"]

    got = instances.get(project=PROJECT, zone="us-central1-a", instance="vm-metadata")
    assert got.status == "RUNNING"  # as on GCE, the VM outlives its startup script
    assert got.labels["fast-render-job"] == "j1"
    serial = instances.get_serial_port_output(project=PROJECT, zone="us-central1-a", instance="vm-metadata")
    assert "hello from the startup script" in serial.contents
    assert [h["status"] for h in record["status_history"]] == ["PROVISIONING", "STAGING", "RUNNING"]


def test_same_request_id_gives_same_operation_and_one_instance(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    request_id = str(uuid.uuid4())
    first = insert(instances, make_instance("vm-once", "sleep 60"), request_id=request_id)
    again = insert(instances, make_instance("vm-once", "sleep 60"), request_id=request_id)
    again.result(timeout=30)

    assert again.name == first.name
    assert [i["name"] for i in compute.admin("instances")["instances"]] == ["vm-once"]


def test_duplicate_name_is_409_already_exists(instances: compute_v1.InstancesClient) -> None:
    insert(instances, make_instance("vm-dup", "sleep 60")).result(timeout=30)
    with pytest.raises(exceptions.Conflict) as raised:
        insert(instances, make_instance("vm-dup", "sleep 60"))
    assert "already exists" in raised.value.message


def test_delete_kills_the_startup_script(
    instances: compute_v1.InstancesClient, compute: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    pid_file = tmp_path / "pid"
    insert(instances, make_instance("vm-del", f"sleep 600 & echo $! > {pid_file}; wait")).result(timeout=30)
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    assert alive(pid)

    instances.delete(project=PROJECT, zone="us-central1-a", instance="vm-del").result(timeout=30)

    wait_for(lambda: not alive(pid), timeout_s=5)
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-del")
    assert list(instances.list(project=PROJECT, zone="us-central1-a")) == []
    (record,) = compute.admin("instances")["instances"]
    assert record["deleted"] and record["status"] == "TERMINATED"


@pytest.mark.parametrize("with_details", [False, True])
def test_stockout_zone_fails_the_insert_operation(
    instances: compute_v1.InstancesClient, compute: Any, with_details: bool
) -> None:
    compute.admin("faults", {"stockout_zones": ["us-central1-a"], "stockout_with_details": with_details})

    with pytest.raises(exceptions.ServiceUnavailable) as raised:
        insert(instances, make_instance("vm-stockout", gpu="nvidia-tesla-t4")).result(timeout=30)

    expected = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" if with_details else "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert raised.value.errors[0].code == expected
    assert "us-central1-a" in raised.value.errors[0].message
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-stockout")
    insert(
        instances, make_instance("vm-stockout", gpu="nvidia-tesla-t4", zone="us-central1-b"), zone="us-central1-b"
    ).result(timeout=30)
    assert compute.admin("instances")["instances"][0]["zone"] == "us-central1-b"


def test_regional_gpu_quota(instances: compute_v1.InstancesClient, compute: Any) -> None:
    compute.admin("faults", {"quota_exceeded": [{"region": "us-central1", "gpu": "nvidia-tesla-t4"}]})

    with pytest.raises(exceptions.Forbidden) as raised:
        insert(
            instances, make_instance("vm-t4", gpu="nvidia-tesla-t4", zone="us-central1-b"), zone="us-central1-b"
        ).result(timeout=30)
    error = raised.value.errors[0]
    assert error.code == "QUOTA_EXCEEDED"
    assert error.message == "Quota 'NVIDIA_T4_GPUS' exceeded.  Limit: 0.0 in region us-central1."
    assert error.error_details[0].quota_info.metric_name == "compute.googleapis.com/nvidia_t4_gpus"

    spot = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action="DELETE")
    with pytest.raises(exceptions.Forbidden, match="PREEMPTIBLE_NVIDIA_T4_GPUS"):
        insert(instances, make_instance("vm-t4-spot", gpu="nvidia-tesla-t4", scheduling=spot)).result(timeout=30)
    # Another region, and another GPU (an L4 that comes with the g2 machine type), are fine.
    insert(instances, make_instance("vm-t4", gpu="nvidia-tesla-t4", zone="us-east1-c"), zone="us-east1-c").result(
        timeout=30
    )
    insert(instances, make_instance("vm-l4", machine="g2-standard-8")).result(timeout=30)


def test_gpus_all_regions_quota(instances: compute_v1.InstancesClient, compute: Any) -> None:
    compute.admin("faults", {"gpus_all_regions": ["nvidia-tesla-t4"]})

    with pytest.raises(exceptions.Forbidden) as raised:
        insert(
            instances, make_instance("vm-t4", gpu="nvidia-tesla-t4", zone="europe-west4-a"), zone="europe-west4-a"
        ).result(timeout=30)
    assert raised.value.errors[0].code == "QUOTA_EXCEEDED"
    assert raised.value.errors[0].message == "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally."
    insert(instances, make_instance("vm-cpu", zone="europe-west4-a"), zone="europe-west4-a").result(timeout=30)


@pytest.mark.parametrize("action", ["DELETE", "STOP"])
def test_spot_instance_is_preempted(
    instances: compute_v1.InstancesClient, compute: Any, tmp_path: Path, wait_for: Callable[..., Any], action: str
) -> None:
    compute.admin("faults", {"preempt_after_s": 0.5})
    pid_file = tmp_path / "pid"
    spot = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action=action)
    insert(instances, make_instance("vm-spot", f"echo $$ > {pid_file}; exec sleep 600", scheduling=spot)).result(
        timeout=30
    )
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))

    (record,) = wait_for(lambda: [i for i in compute.admin("instances")["instances"] if i["status"] == "TERMINATED"])

    assert record["preempted"]
    wait_for(lambda: not alive(pid), timeout_s=5)
    if action == "DELETE":
        with pytest.raises(exceptions.NotFound):
            instances.get(project=PROJECT, zone="us-central1-a", instance="vm-spot")
    else:
        assert instances.get(project=PROJECT, zone="us-central1-a", instance="vm-spot").status == "TERMINATED"


def test_max_run_duration_deletes_the_instance(
    instances: compute_v1.InstancesClient, compute: Any, wait_for: Callable[..., Any]
) -> None:
    scheduling = compute_v1.Scheduling(
        max_run_duration=compute_v1.Duration(seconds=1), instance_termination_action="DELETE"
    )
    insert(instances, make_instance("vm-capped", "sleep 600", scheduling=scheduling)).result(timeout=30)

    wait_for(lambda: compute.admin("instances")["instances"][0]["deleted"], timeout_s=5)
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-capped")


def test_list_filter_aggregated_list_and_zones(instances: compute_v1.InstancesClient, compute: Any) -> None:
    insert(instances, make_instance("vm-a", labels={"fast-render-job": "a"})).result(timeout=30)
    insert(instances, make_instance("vm-b", labels={"fast-render-job": "b"})).result(timeout=30)
    insert(
        instances, make_instance("vm-c", labels={"fast-render-job": "a"}, zone="europe-west4-b"), zone="europe-west4-b"
    ).result(timeout=30)

    request = compute_v1.ListInstancesRequest(project=PROJECT, zone="us-central1-a", filter="labels.fast-render-job=a")
    assert [i.name for i in instances.list(request=request)] == ["vm-a"]
    unsupported = compute_v1.ListInstancesRequest(project=PROJECT, zone="us-central1-a", filter="cpuPlatform ~ weird(")
    assert sorted(i.name for i in instances.list(request=unsupported)) == ["vm-a", "vm-b"]

    aggregated = compute_v1.AggregatedListInstancesRequest(project=PROJECT, filter='labels.fast-render-job = "a"')
    found = {zone: [i.name for i in scoped.instances] for zone, scoped in instances.aggregated_list(request=aggregated)}
    assert found == {"zones/us-central1-a": ["vm-a"], "zones/europe-west4-b": ["vm-c"]}

    zones = compute_v1.ZonesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": compute.endpoint}
    )
    names = {zone.name for zone in zones.list(project=PROJECT)}
    assert {"us-central1-a", "us-east1-c", "europe-west4-a"} <= names


def operations_client(endpoint: str) -> compute_v1.ZoneOperationsClient:
    """Our own: ``operation.result()`` would poll through the InstancesClient's internal
    ZoneOperationsClient, which google-cloud-compute builds without our client_options."""
    options = {"api_endpoint": endpoint}
    return compute_v1.ZoneOperationsClient(credentials=AnonymousCredentials(), client_options=options)


def test_insert_delay_keeps_the_operation_running_and_the_instance_provisioning(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_delay_s": 0.5})

    operation = insert(instances, make_instance("vm-slow", "sleep 60"))

    assert operation.status == compute_v1.Operation.Status.RUNNING  # not .done(): that polls too
    assert instances.get(project=PROJECT, zone="us-central1-a", instance="vm-slow").status == "PROVISIONING"
    with pytest.raises(exceptions.BadRequest) as raised:  # GCE: resourceNotReady while being created
        instances.delete(project=PROJECT, zone="us-central1-a", instance="vm-slow")
    assert raised.value.errors[0]["reason"] == "resourceNotReady"
    waited = operations_client(compute.endpoint).wait(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert waited.status == compute_v1.Operation.Status.DONE and not waited.error.errors
    assert instances.get(project=PROJECT, zone="us-central1-a", instance="vm-slow").status == "RUNNING"


def test_an_insert_that_will_fail_shows_no_instance_while_pending_but_holds_its_name(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"stockout_zones": ["us-central1-a"], "insert_delay_s": 0.5})

    operation = insert(instances, make_instance("vm-doomed"))

    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-doomed")
    with pytest.raises(exceptions.Conflict):
        insert(instances, make_instance("vm-doomed"), request_id=str(uuid.uuid4()))
    waited = operations_client(compute.endpoint).wait(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert waited.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert waited.http_error_status_code == 503
    assert compute.admin("instances")["instances"] == []


def test_the_server_flag_sets_the_insert_delay_and_the_fault_overrides_it(
    start_server: Callable[..., Any],
) -> None:
    own = start_server("infra.local.compute_server", PROJECT, "--insert-delay-s", "0.3")
    options = {"api_endpoint": own.endpoint}
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options=options)

    assert insert(client, make_instance("vm-flag")).status == compute_v1.Operation.Status.RUNNING
    own.admin("faults", {"insert_delay_s": 0})
    assert insert(client, make_instance("vm-now")).status == compute_v1.Operation.Status.DONE
    own.admin("reset", {})


@pytest.mark.parametrize("key", sorted(TABLE))
def test_every_insert_error_in_the_table_reaches_the_client_in_its_real_shape(
    instances: compute_v1.InstancesClient, compute: Any, key: str
) -> None:
    shape = TABLE[key]
    compute.admin("faults", {"insert_errors": [{"code": key, "zones": ["us-central1-a"], "gpus": ["*"]}]})
    expected = exceptions.from_http_status(shape.http_status, "").__class__

    with pytest.raises(expected) as raised:
        insert(instances, make_instance("vm-refused", gpu="nvidia-tesla-t4")).result(timeout=30)

    if shape.where == "sync":  # the insert call itself failed: errors[] are dicts, GCE's reason in each
        assert raised.value.errors[0]["reason"] == shape.code
        assert [op for op in compute.admin("operations")["operations"] if op["operationType"] == "insert"] == []
    else:  # the operation failed: errors[] are the operation's, GCE's code in each
        assert raised.value.errors[0].code == shape.code
        (failed,) = compute.admin("operations")["operations"]
        assert failed["status"] == "DONE" and failed["httpErrorStatusCode"] == shape.http_status
    assert raised.value.message  # the client's exception carries GCE's message


def test_resource_operation_rate_exceeded_is_an_operation_error_with_that_code(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_errors": [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED", "zones": ["*"]}]})

    operation = insert(instances, make_instance("vm-rate"))

    assert operation.status == compute_v1.Operation.Status.DONE  # accepted, then failed in the operation
    waited = operations_client(compute.endpoint).wait(project=PROJECT, zone="us-central1-a", operation=operation.name)
    assert waited.error.errors[0].code == "RESOURCE_OPERATION_RATE_EXCEEDED"
    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        operation.result(timeout=30)
    assert raised.value.errors[0].code == "RESOURCE_OPERATION_RATE_EXCEEDED"


def test_rate_limit_exceeded_is_a_synchronous_403_with_that_reason(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_errors": [{"code": "rateLimitExceeded", "zones": ["*"]}]})

    with pytest.raises(exceptions.Forbidden) as raised:
        insert(instances, make_instance("vm-throttled"))

    assert raised.value.errors[0]["reason"] == "rateLimitExceeded"
    assert "compute.googleapis.com" in raised.value.message
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-throttled")


def test_concurrent_operations_quota_is_a_rate_limit_whose_error_info_names_it(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_errors": [{"code": "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"}]})

    with pytest.raises(exceptions.Forbidden) as raised:
        insert(instances, make_instance("vm-busy"))

    assert raised.value.errors[0]["reason"] == "rateLimitExceeded"
    assert raised.value.reason == "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"  # from the ErrorInfo detail
    assert raised.value.domain == "compute.googleapis.com"


def test_insert_error_rules_match_zones_and_gpus_and_run_out_after_times(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    rule = {"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "zones": ["us-central1-a"], "gpus": ["nvidia-l4"], "times": 2}
    compute.admin("faults", {"insert_errors": [rule]})

    insert(instances, make_instance("vm-t4", gpu="nvidia-tesla-t4")).result(timeout=30)  # another GPU
    insert(  # another zone
        instances, make_instance("vm-l4-b", machine="g2-standard-8", zone="us-central1-b"), zone="us-central1-b"
    ).result(timeout=30)
    for attempt in range(2):
        with pytest.raises(exceptions.ServiceUnavailable):
            insert(instances, make_instance(f"vm-l4-{attempt}", machine="g2-standard-8")).result(timeout=30)
    insert(instances, make_instance("vm-l4-third", machine="g2-standard-8")).result(timeout=30)
    assert compute.admin("faults")["insert_errors"][0]["times"] == 0


def test_a_retry_with_the_same_request_id_is_not_counted_again(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_errors": [{"code": "RESOURCE_NOT_READY", "times": 1}]})
    request_id = str(uuid.uuid4())

    first = insert(instances, make_instance("vm-retry"), request_id=request_id)
    again = insert(instances, make_instance("vm-retry"), request_id=request_id)

    assert again.name == first.name and again.error.errors[0].code == "RESOURCE_NOT_READY"
    insert(instances, make_instance("vm-retry"), request_id=str(uuid.uuid4())).result(timeout=30)


def test_unknown_insert_error_codes_are_refused(compute: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        compute.admin("faults", {"insert_errors": [{"code": "NOT_A_GCE_CODE"}]})
    assert raised.value.code == 400


def test_preempted_during_creation_leaves_a_terminated_instance_to_delete(
    instances: compute_v1.InstancesClient, compute: Any
) -> None:
    compute.admin("faults", {"insert_errors": [{"code": "UNSUPPORTED_OPERATION"}]})
    spot = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action="DELETE")

    with pytest.raises(exceptions.BadRequest, match="Instance failed to start due to preemption."):
        insert(instances, make_instance("vm-gone", "sleep 60", scheduling=spot)).result(timeout=30)

    left = instances.get(project=PROJECT, zone="us-central1-a", instance="vm-gone")
    assert left.status == "TERMINATED"
    instances.delete(project=PROJECT, zone="us-central1-a", instance="vm-gone").result(timeout=30)


def process_state(pid: int) -> str:
    """The one-letter state in /proc/PID/stat (T: stopped, Z: zombie), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def counting_script(counter: Path, pid_file: Path) -> str:
    return f"echo $$ > {pid_file}; while true; do date +%s%N >> {counter}; sleep 0.05; done"


@pytest.mark.parametrize("how", ["fault", "admin"])
def test_a_hung_instance_stops_running_but_gce_still_says_running(
    instances: compute_v1.InstancesClient, compute: Any, tmp_path: Path, wait_for: Callable[..., Any], how: str
) -> None:
    if how == "fault":
        compute.admin("faults", {"hang_after_s": 0.5})
    counter, pid_file = tmp_path / "counter", tmp_path / "pid"
    insert(instances, make_instance("vm-hang", counting_script(counter, pid_file))).result(timeout=30)
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    wait_for(lambda: counter.exists() and len(counter.read_text().splitlines()) > 2)

    if how == "admin":
        record = compute.admin("instances/us-central1-a/vm-hang/hang", {})
        assert record["hung"]
    wait_for(lambda: process_state(pid) == "T", timeout_s=5)
    seen = len(counter.read_text().splitlines())
    time.sleep(0.5)

    assert len(counter.read_text().splitlines()) == seen  # frozen
    assert instances.get(project=PROJECT, zone="us-central1-a", instance="vm-hang").status == "RUNNING"
    started = time.monotonic()
    instances.delete(project=PROJECT, zone="us-central1-a", instance="vm-hang").result(timeout=30)
    assert time.monotonic() - started < 2  # no shutdown grace for a frozen guest
    wait_for(lambda: process_state(pid) in ("", "Z"), timeout_s=5)  # killed (a zombie until reaped)


def test_admin_preempt_preempts_a_spot_instance_now(
    instances: compute_v1.InstancesClient, compute: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    seen = tmp_path / "preempted"
    script = f"""
m=http://$GCE_METADATA_HOST/computeMetadata/v1
trap 'curl -sf -H "Metadata-Flavor: Google" $m/instance/preempted > {seen}' TERM
sleep 600 & wait
"""
    spot = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action="DELETE")
    insert(instances, make_instance("vm-spot-now", script, scheduling=spot)).result(timeout=30)
    insert(instances, make_instance("vm-standard", "sleep 600")).result(timeout=30)
    wait_for(lambda: compute.admin("instances")["instances"][0]["pid"])

    record = compute.admin("instances/us-central1-a/vm-spot-now/preempt", {})

    assert record["preempted"]
    wait_for(lambda: seen.exists() and seen.read_text() == "TRUE")
    wait_for(lambda: [i for i in compute.admin("instances")["instances"] if i["name"] == "vm-spot-now"][0]["deleted"])
    with pytest.raises(exceptions.NotFound):
        instances.get(project=PROJECT, zone="us-central1-a", instance="vm-spot-now")
    operations = operations_client(compute.endpoint).list(project=PROJECT, zone="us-central1-a")
    assert "compute.instances.preempted" in [op.operation_type for op in operations]
    with pytest.raises(urllib.error.HTTPError) as raised:  # GCE preempts only Spot and preemptible VMs
        compute.admin("instances/us-central1-a/vm-standard/preempt", {})
    assert raised.value.code == 400


def test_sigterm_stops_the_server_and_every_instance(
    start_server: Callable[..., Any], tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    own = start_server("infra.local.compute_server", PROJECT)
    client = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": own.endpoint}
    )
    pid_file = tmp_path / "pid"
    insert(client, make_instance("vm-orphan", f"sleep 600 & echo $! > {pid_file}; wait")).result(timeout=30)
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    disk = own.admin("instances")["instances"][0]["disk_dir"]

    os.kill(own.process.proc.pid, signal.SIGTERM)

    assert own.process.proc.wait(timeout=10) == 0
    wait_for(lambda: not alive(pid), timeout_s=5)  # a zombie lingers until reaped
    assert not os.path.exists(disk)


def test_metadata_server_tells_the_instance_its_own_service_account_and_scopes(
    instances: compute_v1.InstancesClient, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    """A VM learns who it runs as from its metadata server: the account and scopes its insert asked for."""
    script = f"""
m="http://$GCE_METADATA_HOST/computeMetadata/v1/instance/service-accounts/default"
curl -sf -H 'Metadata-Flavor: Google' "$m/email" > {tmp_path}/email
curl -sf -H 'Metadata-Flavor: Google' "$m/scopes" > {tmp_path}/scopes
touch {tmp_path}/done
"""
    instance = make_instance("vm-identity", script)
    scopes = ["https://www.googleapis.com/auth/devstorage.read_write", "https://www.googleapis.com/auth/logging.write"]
    instance.service_accounts = [compute_v1.ServiceAccount(email="render@p.iam.gserviceaccount.com", scopes=scopes)]
    insert(instances, instance).result(timeout=30)

    wait_for(lambda: (tmp_path / "done").exists())
    assert (tmp_path / "email").read_text() == "render@p.iam.gserviceaccount.com"
    assert (tmp_path / "scopes").read_text().split() == scopes


def test_a_gpu_vm_that_would_live_migrate_is_refused(instances: compute_v1.InstancesClient) -> None:
    """GCE's default maintenance policy is MIGRATE, which a GPU VM cannot do: the insert is a 400."""
    with pytest.raises(exceptions.BadRequest, match="guest accelerators do not support live migration"):
        vm = make_instance("vm-gpu-migrate", gpu="nvidia-tesla-t4")
        vm.scheduling = compute_v1.Scheduling(on_host_maintenance="MIGRATE")
        insert(instances, vm).result(timeout=30)
    spot = make_instance("vm-gpu-spot", gpu="nvidia-tesla-t4",
                         scheduling=compute_v1.Scheduling(provisioning_model="SPOT"))  # Spot only ever terminates
    insert(instances, spot).result(timeout=30)
