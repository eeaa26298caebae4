"""The two decision tables: what a Vertex error means, and what an insert error blocks."""

from __future__ import annotations

import dataclasses

import pytest

from catalog.model import load_catalog
from catalog.select import select
from functions.failures import Action, classify
from functions.insert_errors import InsertError, classify_insert_error
from functions.vertex_events import failure_reason
from functions.vm_spec import instance_name, request_id


@pytest.mark.parametrize(
    ("code", "message", "kind", "action"),
    [
        (3, "The replica workerpool0-0 exited with a non-zero status of 2. Termination reason: Error. To find out more", "invalid", Action.FAIL),
        # Vertex reports every replica exit as code 3: a crash is not bad input.
        (3, "The replica workerpool0-0 exited with a non-zero status of 1. Termination reason: Error.", "crash", Action.FALLBACK),
        (3, "The replica workerpool0-0 exited with a non-zero status of 137. Termination reason: Error.", "crash", Action.FALLBACK),
        (3, "The replica workerpool0-0 exited with a non-zero status of 128. Termination reason: StartError.", "crash", Action.FALLBACK),
        (3, "something else that is invalid", "unknown", Action.FALLBACK),
        (8, "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus", "quota", Action.FALLBACK),
        (9, "Resources are insufficient in region: us-central1", "quota", Action.FALLBACK),
        (4, "Job exceeded its scheduling.timeout of 3600s", "timeout", Action.FALLBACK),
        (13, "The job timed out after 1 hour", "timeout", Action.FALLBACK),
        (7, "Permission denied on resource project", "configuration", Action.FAIL),
        (13, "Internal error occurred", "internal", Action.RETRY_PRIMARY),
        (14, "Service unavailable", "internal", Action.RETRY_PRIMARY),
        (1, "CANCELED", "cancelled", Action.FALLBACK),
        (99, "something new", "unknown", Action.FALLBACK),
    ],
)
def test_vertex_errors_map_to_one_action(code: int, message: str, kind: str, action: Action) -> None:
    rule = classify(code, message)
    assert (rule.kind, rule.action) == (kind, action)


@pytest.fixture(scope="module")
def option():
    """A GPU option (the first the selector weighs for a 3-minute video)."""
    return next(o for o in select(load_catalog(), 180, spot=False).options if o.accelerator_count > 0)


@pytest.mark.parametrize(
    ("codes", "metric", "kind", "location"),
    [
        (("ZONE_RESOURCE_POOL_EXHAUSTED",), None, "stockout", "zone"),
        (("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "resource_availability"), None, "stockout", "zone"),
        (("insufficientCapacity",), None, "stockout", "zone"),
        (("UNSUPPORTED_OPERATION",), None, "zone", "zone"),
        (("RESOURCE_NOT_READY",), None, "zone", "zone"),
        (("QUOTA_EXCEEDED",), "NVIDIA_L4_GPUS", "region-quota", "region"),
        (("QUOTA_EXCEEDED",), "GPUS_ALL_REGIONS", "all-regions-quota", None),
        (("RESOURCE_OPERATION_RATE_EXCEEDED",), None, "rate-limit", None),
        (("rateLimitExceeded",), None, "rate-limit", None),
        (("CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",), None, "rate-limit", None),
        (("QUOTA_EXCEEDED",), "CONCURRENT_OPERATIONS", "rate-limit", None),  # a limit on operations in flight
        (("forbidden",), None, "fatal", None),
        (("INVALID_FIELD_VALUE",), None, "fatal", None),
        (("SOMETHING_NEW",), None, "unknown", "zone"),  # unknown: this zone only, the launch goes on
        ((), None, "unknown", "zone"),
    ],
)
def test_insert_errors_are_judged_by_their_code(option, codes, metric, kind: str, location: str | None) -> None:
    failure = classify_insert_error(InsertError(codes, "some text that must not matter", metric), option, "us-central1-a")
    assert failure.kind == kind
    if location is None:
        assert failure.block is None or failure.block.location is None
        return
    assert failure.block.gpu == option.gpu
    assert failure.block.location == {"zone": "us-central1-a", "region": "us-central1"}[location]


@pytest.fixture(scope="module")
def cpu_option(option):
    """A CPU-only machine as the catalog's `cpus:` section gives it: no accelerator, named by its entry's key."""
    return dataclasses.replace(option, gpu="c3-highcpu-22", machine_type="c3-highcpu-22", accelerator="",
                               accelerator_count=0, has_nvenc=False)


@pytest.mark.parametrize(
    ("codes", "metric", "kind", "location"),
    [
        # A machine family's regional vCPU quota, or the region's CPUS: the next region may have room.
        (("QUOTA_EXCEEDED",), "C3_CPUS", "region-quota", "region"),
        (("QUOTA_EXCEEDED",), "N2D_CPUS", "region-quota", "region"),
        (("QUOTA_EXCEEDED",), "CPUS", "region-quota", "region"),
        (("quotaExceeded",), "C3_CPUS", "region-quota", "region"),  # the synchronous form ([TF-QUOTA]'s C4A_CPUS)
        # The project's vCPUs in every region: no region can take this machine.
        (("QUOTA_EXCEEDED",), "CPUS_ALL_REGIONS", "all-regions-quota", None),
        (("ZONE_RESOURCE_POOL_EXHAUSTED",), None, "stockout", "zone"),
    ],
)
def test_a_cpu_only_machines_insert_errors_block_that_machine(cpu_option, codes, metric, kind, location) -> None:
    failure = classify_insert_error(InsertError(codes, "some text that must not matter", metric), cpu_option, "us-east4-a")
    assert failure.kind == kind and failure.remember
    assert failure.block.gpu == "c3-highcpu-22"  # the machine, not the GPUs: they keep their own chances
    assert failure.block.location == {"zone": "us-east4-a", "region": "us-east4", None: None}[location]
    assert failure.block.provisioning is None


@pytest.mark.parametrize("metric", ["PREEMPTIBLE_CPUS", "PREEMPTIBLE_NVIDIA_T4_GPUS"])
def test_a_spot_quota_blocks_spot_in_the_region_and_leaves_on_demand_its_chance(option, cpu_option, metric) -> None:
    """Spot VMs have quotas of their own (what the stand-in names for a Spot insert): on-demand may still fit."""
    for which in (option, cpu_option):
        spot = dataclasses.replace(which, provisioning="spot")
        failure = classify_insert_error(InsertError(("QUOTA_EXCEEDED",), "text", metric), spot, "us-east4-a")
        assert (failure.kind, failure.block.location, failure.block.provisioning) == ("region-quota", "us-east4", "spot")
        assert failure.block.matches(which.gpu, "us-east4-b", "spot")
        assert not failure.block.matches(which.gpu, "us-east4-b", "on-demand")
        assert not failure.block.matches(which.gpu, "us-central1-a", "spot")


def test_a_cpu_quota_named_only_in_the_message_is_read_from_it(cpu_option) -> None:
    error = InsertError.from_exception(type("E", (), {"errors": [{"reason": "quotaExceeded"}], "reason": None,
                                                      "message": "Quota 'C3_CPUS' exceeded.  Limit: 8.0 in region us-east4."})())
    failure = classify_insert_error(error, cpu_option, "us-east4-a")
    assert (failure.kind, failure.block.location) == ("region-quota", "us-east4")


def test_a_quota_metric_is_read_from_the_message_when_no_quota_info_came() -> None:
    error = InsertError.from_exception(type("E", (), {"errors": [{"reason": "quotaExceeded"}], "reason": None,
                                                      "message": "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally."})())
    assert error.codes == ("quotaExceeded",) and error.quota_metric == "GPUS_ALL_REGIONS"


def test_instance_names_and_request_ids_are_deterministic(option) -> None:
    name = instance_name("lighthouse-0042", 2)
    assert name == "av-render-lighthouse-0042-a2" and len(instance_name("x" * 40, 99)) <= 63
    assert request_id(name, "us-central1-a", option, 1) == request_id(name, "us-central1-a", option, 1)
    assert request_id(name, "us-central1-a", option, 1) != request_id(name, "us-central1-a", option, 2)
    assert request_id(name, "us-central1-a", option, 1) != request_id(name, "us-central1-b", option, 1)


def test_a_vertex_failure_reads_as_its_first_line() -> None:
    assert failure_reason("quota", 8, "The following quota metrics exceed quota limits: x") == (
        "primary quota: The following quota metrics exceed quota limits: x"
    )
