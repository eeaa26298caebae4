"""What the primary (Vertex AI) is expected to take: the runtime model on Vertex's own machine type by
default, the design note's speed factors under speed_factor pricing."""

from __future__ import annotations

import dataclasses

import pytest

from catalog.model import PRICING_SPEED_FACTOR, load_catalog
from catalog.primary import primary_estimate
from catalog.runtime_model import estimate, load_calibration


def test_by_the_model_the_primary_runs_on_its_own_machines_cores_with_nvenc():
    catalog = load_catalog(environ={})
    expected = primary_estimate(catalog, 180, "n1-standard-8", "NVIDIA_TESLA_T4")
    model = estimate(load_calibration(environ={}), 180, vcpus=8, has_nvenc=True)
    assert expected.render_s == pytest.approx(model.render_s) and expected.transfer_s == pytest.approx(model.transfer_s)
    assert expected.start_s == catalog.gpus["t4"].boot_overhead_s and expected.basis == "runtime model, n1-standard-8"
    # Minutes, not the speed factors' hour: an overrun hedge can come before Vertex's own 1-hour limit.
    assert expected.total_s < 600


def test_by_speed_factors_it_is_the_notes_baseline_over_the_gpus_factor():
    catalog = dataclasses.replace(load_catalog(environ={}), pricing=PRICING_SPEED_FACTOR)
    expected = primary_estimate(catalog, 180, "n1-standard-8", "NVIDIA_TESLA_T4")
    assert expected.render_s == pytest.approx(180 * catalog.baseline_s_per_s / catalog.gpus["t4"].speed_factor)
    assert expected.transfer_s == catalog.transfer_overhead_s


def test_an_accelerator_the_catalog_does_not_price_has_no_estimate():
    assert primary_estimate(load_catalog(environ={}), 180, "n1-standard-8", "NVIDIA_H100_80GB") is None
