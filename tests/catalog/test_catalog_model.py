"""Loading and validating catalogs, and the environment overrides."""

from __future__ import annotations

import copy

import pytest
import yaml

from catalog import CatalogError, load_catalog, parse_catalog, resolve_video_length, select
from catalog.model import DEFAULT_CATALOG_PATH


@pytest.fixture(scope="module")
def bundled():
    return yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())


def test_bundled_catalog_is_valid_and_has_the_seed_gpus():
    catalog = load_catalog(environ={})
    assert list(catalog.gpus)[:2] == ["t4", "l4"]
    assert catalog.baseline_s_per_s == 20
    t4, l4, a100 = catalog.gpus["t4"], catalog.gpus["l4"], catalog.gpus["a100"]
    assert (t4.cost_per_hour, t4.speed_factor) == (0.35, 1.0)
    assert (l4.cost_per_hour, l4.speed_factor) == (0.50, 1.5)
    assert (a100.cost_per_hour, a100.speed_factor) == (3.00, 8.0)
    assert t4.has_nvenc and l4.has_nvenc and not a100.has_nvenc
    assert l4.machine_type == "g2-standard-8" and l4.accelerator == "nvidia-l4"
    for spec in catalog.gpus.values():
        regions = {zone.rsplit("-", 1)[0] for zone in spec.zones}
        assert len(regions) >= 3, f"{spec.name} should be offered in several regions"


def test_a_minimal_catalog_gets_the_defaults():
    catalog = parse_catalog(
        {
            "gpus": {
                "custom_gpu": {
                    "accelerator": "nvidia-tesla-v100",
                    "machine_type": "n1-standard-4",
                    "cost_per_hour": 1.2,
                    "speed_factor": 4.0,
                    "zones": ["us-central1-a"],
                }
            }
        }
    )
    spec = catalog.gpus["custom_gpu"]
    assert spec.accelerator_count == 1 and spec.spot_cost_per_hour is None and not spec.has_nvenc
    assert catalog.budget.per_job_usd == 5.0 and catalog.spot.max_preemptions == 2


def mutate(document, path, value):
    """A copy of `document` with the field at dotted `path` set to `value` (or deleted for ...)."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("gpus.l4.speed_factor", -1, "catalog: gpus.l4.speed_factor: must be a positive number, got -1"),
        ("gpus.l4.speed_factor", "fast", "catalog: gpus.l4.speed_factor: must be a positive number, got 'fast'"),
        ("gpus.l4.speed_factor", True, "catalog: gpus.l4.speed_factor: must be a positive number, got True"),
        ("gpus.l4.speed_factor", float("nan"), "catalog: gpus.l4.speed_factor: must be a positive number"),
        ("gpus.l4.speed_factor", ..., "catalog: gpus.l4.speed_factor: required field is missing"),
        ("gpus.t4.cost_per_hour", 0, "catalog: gpus.t4.cost_per_hour: must be a positive number, got 0"),
        ("gpus.t4.machine", "n1-standard-4", "catalog: gpus.t4.machine: unknown field (did you mean machine_type?)"),
        ("gpus.t4.cost_per_hour", ..., None),  # still has a spot price: fine
        (
            "gpus.h100.spot_cost_per_hour",
            ...,
            "catalog: gpus.h100: needs cost_per_hour or spot_cost_per_hour (or both)",
        ),
        ("gpus.a100.zones", [], "catalog: gpus.a100.zones: must be a non-empty list of zones, got []"),
        (
            "gpus.a100.zones",
            ["us-central1-a", "mars-1"],
            "catalog: gpus.a100.zones[1]: must be a zone like us-central1-a, got 'mars-1'",
        ),
        (
            "gpus.a100.zones",
            ["us-central1-a", "us-central1-a"],
            "catalog: gpus.a100.zones[1]: zone us-central1-a is listed twice",
        ),
        ("gpus.a100.accelerator_count", 0, "catalog: gpus.a100.accelerator_count: must be a whole number >= 1, got 0"),
        (
            "gpus.a100.accelerator",
            "tesla",
            "catalog: gpus.a100.accelerator: must be an accelerator type like nvidia-l4, got 'tesla'",
        ),
        ("gpus.a100.has_nvenc", "no", "catalog: gpus.a100.has_nvenc: must be true or false, got 'no'"),
        ("gpus.a100.boot_overhead_s", -5, "catalog: gpus.a100.boot_overhead_s: must be a number >= 0, got -5"),
        ("gpus.Big GPU", {}, "catalog: gpus.Big GPU: GPU names are 1 to 31 characters"),
        ("gpus.l4", "fast", "catalog: gpus.l4: must be a mapping, got str"),
        ("gpus", {}, "catalog: gpus: must be a mapping of GPU names to options, with at least one"),
        ("gpus", ..., "catalog: gpus: required field is missing"),
        ("version", 2, "catalog: version: must be 1, got 2"),
        ("budget.per_job", 3, "catalog: budget.per_job: unknown field (did you mean per_job_usd?)"),
        ("budget.daily_usd", -1, "catalog: budget.daily_usd: must be a positive number, got -1"),
        ("spot.max_preemptions", 1.5, "catalog: spot.max_preemptions: must be a whole number >= 0, got 1.5"),
        ("baseline_s_per_s", 0, "catalog: baseline_s_per_s: must be a positive number, got 0"),
        ("extra", 1, "catalog: extra: unknown field"),
    ],
)
def test_validation_errors_are_one_line_naming_the_field(bundled, path, value, message):
    document = mutate(bundled, path, value)
    if message is None:
        parse_catalog(document)
        return
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(message)


def test_preemption_rate_needs_a_spot_price(bundled):
    document = mutate(bundled, "gpus.t4.spot_cost_per_hour", ...)
    with pytest.raises(CatalogError, match=r"^catalog: gpus.t4.preemption_rate_per_hour: only applies with"):
        parse_catalog(document)


def test_yaml_problems_are_one_line(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("gpus:\n  t4: [unclosed\n")
    with pytest.raises(CatalogError, match=r"not valid YAML \(line \d+, column \d+\)") as caught:
        load_catalog(broken, environ={})
    assert "\n" not in str(caught.value)

    duplicate = tmp_path / "duplicate.yml"
    duplicate.write_text("gpus:\n  t4: {}\n  t4: {}\n")
    with pytest.raises(CatalogError, match=r"^catalog: line 3: duplicate key 't4'$"):
        load_catalog(duplicate, environ={})

    with pytest.raises(CatalogError, match=r"cannot read"):
        load_catalog(tmp_path / "missing.yml", environ={})


def test_gpu_catalog_env_points_at_another_file(tmp_path, bundled):
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump({"gpus": {"t4": bundled["gpus"]["t4"]}}))
    catalog = load_catalog(environ={"GPU_CATALOG": str(other)})
    assert list(catalog.gpus) == ["t4"] and catalog.source == str(other)
    # An explicit path still wins over the environment.
    assert "l4" in load_catalog(DEFAULT_CATALOG_PATH, environ={"GPU_CATALOG": str(other)}).gpus


def test_baseline_env_overrides_the_catalog():
    catalog = load_catalog(environ={"BASELINE_T4_SPEED_S_PER_S": "15"})
    assert catalog.baseline_s_per_s == 15
    t4 = select(catalog, 180, overhead_s=0).options[0]
    assert t4.runtime_s == 180 * 15


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan", "inf"])
def test_bad_env_values_name_the_variable(value):
    with pytest.raises(
        CatalogError, match=rf"^catalog: BASELINE_T4_SPEED_S_PER_S: must be a positive number, got '{value}'$"
    ):
        load_catalog(environ={"BASELINE_T4_SPEED_S_PER_S": value})
    with pytest.raises(CatalogError, match=r"^catalog: VIDEO_LENGTH_S: "):
        resolve_video_length(60, environ={"VIDEO_LENGTH_S": value})


def test_video_length_env_overrides_the_computed_length():
    assert resolve_video_length(60, environ={"VIDEO_LENGTH_S": "300"}) == 300
    assert resolve_video_length(60, environ={"VIDEO_LENGTH_S": ""}) == 60
    assert resolve_video_length(60.5, environ={}) == 60.5
    with pytest.raises(CatalogError, match="video length"):
        resolve_video_length(None, environ={})


def test_every_catalog_zone_exists_in_the_local_compute_engine() -> None:
    """The local cloud must be able to launch every option the bundled catalog offers."""
    from catalog.model import load_catalog
    from infra.local.compute_server import ZONES

    zones = {zone for gpu in load_catalog().gpus.values() for zone in gpu.zones}
    assert zones <= set(ZONES)
