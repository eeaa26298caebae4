"""The two decision tables: what a Vertex error means, and what an insert error blocks."""

from __future__ import annotations

import pytest

from catalog.model import load_catalog
from catalog.select import select
from functions.failures import Action, classify
from functions.fallback import classify_insert_error, instance_name, request_id
from functions.vertex_events import failure_reason


@pytest.mark.parametrize(
    ("code", "message", "kind", "action"),
    [
        (3, "The replica workerpool0-0 exited with a non-zero status of 2.\nerror: scenes[1].image: file not found", "invalid", Action.FAIL),
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
    return select(load_catalog(), 180, spot=False).selected


@pytest.mark.parametrize(
    ("text", "kind", "location"),
    [
        ("ZONE_RESOURCE_POOL_EXHAUSTED The zone 'projects/p/zones/us-central1-a' does not have enough resources", "stockout", "zone"),
        ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS ...", "stockout", "zone"),
        ("QUOTA_EXCEEDED Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 0.0 in region us-central1.", "region-quota", "region"),
        ("QUOTA_EXCEEDED Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.", "all-regions-quota", None),
        ("Required 'compute.instances.create' permission for 'projects/p'", "fatal", None),
    ],
)
def test_insert_errors_block_a_zone_a_region_or_a_gpu_type(option, text: str, kind: str, location: str | None) -> None:
    failure = classify_insert_error(text, option, "us-central1-a")
    assert failure.kind == kind
    if kind == "fatal":
        assert failure.block is None
        return
    assert failure.block.gpu == option.gpu
    assert failure.block.location == {"zone": "us-central1-a", "region": "us-central1", None: None}[location]


def test_instance_names_and_request_ids_are_deterministic(option) -> None:
    name = instance_name("lighthouse-0042", 2)
    assert name == "fr-lighthouse-0042-a2" and len(instance_name("x" * 40, 99)) <= 63
    assert request_id(name, "us-central1-a", option, 1) == request_id(name, "us-central1-a", option, 1)
    assert request_id(name, "us-central1-a", option, 1) != request_id(name, "us-central1-a", option, 2)
    assert request_id(name, "us-central1-a", option, 1) != request_id(name, "us-central1-b", option, 1)


def test_an_invalid_job_reported_by_vertex_keeps_the_renderers_one_line_reason() -> None:
    message = "The replica workerpool0-0 exited with a non-zero status of 2.\nerror: scenes[3].image: file not found: images/004.png"
    assert failure_reason("invalid", 3, message) == "invalid job: scenes[3].image: file not found: images/004.png"
    assert failure_reason("quota", 8, "The following quota metrics exceed quota limits: x") == (
        "primary quota: The following quota metrics exceed quota limits: x"
    )
