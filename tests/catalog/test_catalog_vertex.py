"""The catalog's Vertex AI prices: what the primary costs, for comparing each job with it."""

from __future__ import annotations

import copy

import pytest
import yaml

from catalog import CatalogError, load_catalog, parse_catalog
from catalog.model import DEFAULT_CATALOG_PATH


@pytest.fixture(scope="module")
def bundled():
    return yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())


def test_bundled_catalog_prices_the_primarys_default_shape_above_the_same_gpu_on_compute_engine():
    catalog = load_catalog(environ={})
    vertex = catalog.vertex
    # functions/config.py's defaults: VERTEX_MACHINE_TYPE=n1-standard-8, VERTEX_ACCELERATOR=NVIDIA_TESLA_T4.
    price = vertex.price_per_hour("n1-standard-8", "NVIDIA_TESLA_T4")
    assert price == pytest.approx(0.437 + 0.4025)
    assert vertex.region == "us-central1"
    assert vertex.gpu("NVIDIA_TESLA_T4") == "t4"
    # Vertex training costs more than Compute Engine for the same machine and GPU.
    assert price > catalog.gpus["t4"].cost_per_hour
    assert vertex.price_per_hour("n1-standard-8", "NVIDIA_TESLA_V100") > catalog.gpus["v100"].cost_per_hour


def test_an_unpriced_machine_or_accelerator_has_no_price_rather_than_a_guess():
    vertex = load_catalog(environ={}).vertex
    assert vertex.price_per_hour("a2-megagpu-16g", "NVIDIA_TESLA_T4") is None
    assert vertex.price_per_hour("n1-standard-8", "NVIDIA_H200_141GB") is None
    assert vertex.price_per_hour(None, None) is None
    assert vertex.gpu("NVIDIA_H200_141GB") is None
    assert vertex.price_per_hour("n1-standard-8", "NVIDIA_TESLA_T4", count=2) == pytest.approx(0.437 + 2 * 0.4025)


def test_a_catalog_without_a_vertex_section_is_still_valid(bundled):
    document = copy.deepcopy(bundled)
    del document["vertex"]
    assert parse_catalog(document).vertex is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(regoin="us-central1"), "catalog: vertex.regoin: unknown field (did you mean region?)"),
        (lambda v: v.pop("machine_types"), "catalog: vertex.machine_types: required field is missing"),
        (lambda v: v.update(region="us-central1-a"), "catalog: vertex.region: must be a region like us-central1"),
        (lambda v: v["machine_types"].update({"n1-standard-8": -1}),
         "catalog: vertex.machine_types.n1-standard-8: must be a positive number, got -1"),
        (lambda v: v.update(accelerators={}), "catalog: vertex.accelerators: must be a mapping with at least one entry"),
        (lambda v: v["accelerators"].update(nvidia_tesla_t4={"gpu": "t4", "cost_per_hour": 1}),
         "catalog: vertex.accelerators.nvidia_tesla_t4: must be a Vertex AI accelerator type like NVIDIA_TESLA_T4"),
        (lambda v: v["accelerators"]["NVIDIA_TESLA_T4"].update(cost_per_hr=0.4),
         "catalog: vertex.accelerators.NVIDIA_TESLA_T4.cost_per_hr: unknown field (did you mean cost_per_hour?)"),
        (lambda v: v["accelerators"]["NVIDIA_TESLA_T4"].update(gpu="t5"),
         "catalog: vertex.accelerators.NVIDIA_TESLA_T4.gpu: must be one of the catalog's GPUs"),
        (lambda v: v["accelerators"]["NVIDIA_TESLA_T4"].pop("cost_per_hour"),
         "catalog: vertex.accelerators.NVIDIA_TESLA_T4.cost_per_hour: required field is missing"),
    ],
)
def test_a_bad_vertex_section_stops_the_load_with_one_line_naming_the_field(bundled, change, message):
    document = copy.deepcopy(bundled)
    change(document["vertex"])
    with pytest.raises(CatalogError) as raised:
        parse_catalog(document)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
