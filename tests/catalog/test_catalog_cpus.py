"""CPU-only options: in the catalog, weighed with the GPUs, selected when cheapest or when no GPU is left."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from catalog import Block, CatalogError, load_catalog, parse_catalog, select
from catalog.__main__ import main
from catalog.model import DEFAULT_CATALOG_PATH
from catalog.runtime_model import load_calibration, parse_calibration

from tests.catalog.calibration_doc import hand_made

CPUS = ("c3-highcpu-8", "c3-highcpu-22", "n2d-highcpu-16")


@pytest.fixture(scope="module")
def bundled():
    return yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())


@pytest.fixture(scope="module")
def calibration():
    return parse_calibration(hand_made())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GPU_CATALOG", "BASELINE_T4_SPEED_S_PER_S", "VIDEO_LENGTH_S", "CATALOG_PRICING",
                 "FALLBACK_GPU_ONLY", "CATALOG_CALIBRATION"):
        monkeypatch.delenv(name, raising=False)


def by_label(decision):
    return {o.label: o for o in decision.options}


def test_the_bundled_catalog_has_cpu_only_options_with_vcpus():
    catalog = load_catalog(environ={})
    assert tuple(catalog.cpus) == CPUS
    assert [catalog.cpus[name].vcpus for name in CPUS] == [8, 22, 16]
    assert {name: spec.vcpus for name, spec in catalog.gpus.items()} == {
        "t4": 4, "l4": 8, "v100": 8, "a100": 12, "h100": 26}
    for spec in catalog.cpus.values():
        assert spec.cost_per_hour and spec.spot_cost_per_hour < spec.cost_per_hour
        assert list(catalog.options)[-len(CPUS):] == list(CPUS)


def test_a_cpu_only_option_looks_like_a_gpu_option_without_an_accelerator(calibration):
    option = by_label(select(load_catalog(environ={}), 180, calibration=calibration))["c3-highcpu-22"]
    assert (option.gpu, option.machine_type, option.accelerator, option.accelerator_count, option.has_nvenc) == (
        "c3-highcpu-22", "c3-highcpu-22", "", 0, False)
    assert option.cpu_only and option.vcpus == 22 and option.speed_source == "model"
    assert option.estimate["encoder"] == "libx264 veryfast"


def test_gpus_with_nvenc_encode_there_and_the_others_on_their_vcpus(calibration):
    rows = by_label(select(load_catalog(environ={}), 180, spot=True, calibration=calibration))
    assert rows["l4"].estimate["encoder"] == "h264_nvenc" and rows["l4"].estimate["encode_source"] == "assumed"
    assert rows["a100"].estimate["encoder"] == "libx264 veryfast"
    assert rows["h100 spot"].estimate["encoder"] == "libx264 veryfast"


def test_a_cpu_only_machine_is_selected_when_it_is_the_cheapest(calibration):
    decision = select(load_catalog(environ={}), 180, calibration=calibration)
    cheapest = min((o for o in decision.options if o.excluded is None), key=lambda o: o.cost_usd)
    assert decision.selected is cheapest
    assert decision.selected.cpu_only  # fast enough on its cores, half the boot, no GPU to pay for


def test_when_every_gpu_is_blocked_the_job_still_renders_on_a_cpu_machine(calibration):
    catalog = load_catalog(environ={})
    blocks = [Block(gpu=name, reason=f"{name} out of stock") for name in catalog.gpus]
    decision = select(catalog, 180, spot=True, blocked=blocks, calibration=calibration)
    assert decision.selected is not None and decision.selected.cpu_only
    assert all(o.excluded.startswith("blocked in every zone") for o in decision.options if not o.cpu_only)


def test_a_gpu_is_chosen_when_the_cpu_machines_are_priced_out(bundled, calibration):
    document = copy.deepcopy(bundled)
    for entry in document["cpus"].values():
        entry["cost_per_hour"], entry["spot_cost_per_hour"] = 9.0, 8.0
    decision = select(parse_catalog(document), 180, calibration=calibration)
    assert not decision.selected.cpu_only


def test_fallback_gpu_only_keeps_cpu_machines_out_and_says_why(calibration):
    catalog = load_catalog(environ={"FALLBACK_GPU_ONLY": "true"})
    assert catalog.gpu_only
    decision = select(catalog, 180, spot=True, calibration=calibration)
    cpu_rows = [o for o in decision.options if o.cpu_only]
    assert len(cpu_rows) == 6
    assert all(o.excluded == "FALLBACK_GPU_ONLY=true: the fallback uses GPU machines only" for o in cpu_rows)
    assert not decision.selected.cpu_only
    assert "Excluded c3-highcpu-8: FALLBACK_GPU_ONLY=true" in decision.reasons
    blocks = [Block(gpu=name) for name in catalog.gpus]
    assert select(catalog, 180, blocked=blocks, calibration=calibration).selected is None


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_fallback_gpu_only_must_be_true_or_false(value):
    with pytest.raises(CatalogError, match=rf"^catalog: FALLBACK_GPU_ONLY: must be true or false, got '{value}'$"):
        load_catalog(environ={"FALLBACK_GPU_ONLY": value})


def test_speed_factor_pricing_reproduces_the_notes_figures_and_leaves_cpu_machines_out():
    catalog = load_catalog(environ={"CATALOG_PRICING": "speed_factor"})
    decision = select(catalog, 180, overhead_s=0)
    rows = by_label(decision)
    assert (rows["t4"].runtime_s, rows["l4"].runtime_s, rows["a100"].runtime_s) == (3600, 2400, 450)
    assert round(rows["l4"].cost_usd, 2) == 0.33 and decision.selected.gpu == "l4"
    assert rows["c3-highcpu-8"].excluded.startswith("speed_factor pricing: a CPU-only machine has no speed factor")
    # A learned speed prices a CPU machine under either pricing.
    from catalog import LearnedSpeeds

    learned = LearnedSpeeds(samples={"c3-highcpu-8": [0.3] * 5})
    assert by_label(select(catalog, 180, overhead_s=0, learned=learned))["c3-highcpu-8"].runtime_s == 54


def test_a_baseline_means_the_notes_formula():
    assert load_catalog(environ={"BASELINE_T4_SPEED_S_PER_S": "10"}).pricing == "speed_factor"
    assert load_catalog(environ={"BASELINE_T4_SPEED_S_PER_S": "10", "CATALOG_PRICING": "model"}).pricing == "model"
    assert select(load_catalog(environ={}), 180, baseline_s_per_s=20, overhead_s=0).pricing == "speed_factor"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("cpus.c3-highcpu-8.vcpus", 0, "catalog: cpus.c3-highcpu-8.vcpus: must be a whole number >= 1, got 0"),
        ("cpus.c3-highcpu-8.cost_per_hour", -1, "catalog: cpus.c3-highcpu-8.cost_per_hour: must be a positive"),
        ("cpus.c3-highcpu-8.gpu", "t4", "catalog: cpus.c3-highcpu-8.gpu: unknown field"),
        ("cpus.t4", {"machine_type": "c3-highcpu-8", "cost_per_hour": 1, "zones": ["us-central1-a"]},
         "catalog: cpus.t4: the name t4 is already a GPU's"),
        ("pricing", "cheap", "catalog: pricing: must be one of model, speed_factor, got 'cheap'"),
        ("gpus.t4.vcpus", 2.5, "catalog: gpus.t4.vcpus: must be a whole number >= 1, got 2.5"),
    ],
)
def test_cpu_section_errors_are_one_line(bundled, path, value, message):
    document = copy.deepcopy(bundled)
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    target[last] = value
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(message)


def test_an_unknown_machine_type_without_vcpus_is_not_priced_by_the_model(bundled, calibration):
    document = copy.deepcopy(bundled)
    document["cpus"]["c3-highcpu-8"]["machine_type"] = "custom"
    option = by_label(select(parse_catalog(document), 180, calibration=calibration))["c3-highcpu-8"]
    assert option.excluded == "vcpus unknown for machine type custom (give vcpus in the catalog)"


def test_the_estimate_command_shows_cpu_machines_beside_gpus_with_the_models_terms(capsys):
    assert main(["estimate", "--length", "180"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1]
    for term in ("KIND", "VCPU", "FRAMES", "COMPOSE/CORES", "ENCODE", "OTHER", "BOOT", "XFER"):
        assert term in header
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line and line.split()[0] in
            ("t4", "a100", *CPUS)}
    assert set(CPUS) <= set(rows)
    x264 = f"x264 {load_calibration(environ={}).default_preset}"  # the renderer's default when calibrated
    assert "cpu-only" in rows["c3-highcpu-22"] and x264 in rows["c3-highcpu-22"]
    assert "nvenc assumed" in rows["t4"] and x264 in rows["a100"]
    assert "Amdahl" in out and "NVENC assumed 240 fps" in out
    assert main(["estimate", "--length", "180", "--gpu-only"]) == 0
    assert "excluded: FALLBACK_GPU_ONLY=true" in capsys.readouterr().out


def test_the_estimate_json_has_the_terms(capsys):
    assert main(["estimate", "--length", "60", "--size", "1280x720", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["pricing"] == "model" and document["size"] == "1280x720"
    option = next(o for o in document["options"] if o["gpu"] == "n2d-highcpu-16")
    assert option["cpu_only"] and option["vcpus"] == 16 and option["estimate"]["frames"] == 1800


def test_the_short_form_keeps_the_notes_pricing_and_says_so():
    note = {"l4": {"cost_per_hour": 0.5, "speed_factor": 1.5}}
    catalog = parse_catalog(note)
    assert catalog.pricing == "speed_factor" and not catalog.cpus
    assert any(line.startswith("pricing: speed_factor") for line in catalog.defaults)
    assert parse_catalog({**note, "pricing": "model"}).pricing == "model"


def test_a_render_measured_on_one_option_scales_to_another(calibration):
    from catalog.select import scaled_render_s

    catalog = load_catalog(environ={})
    on_t4 = scaled_render_s(catalog, 30.0, 180, "c3-highcpu-8", "t4", calibration=calibration)
    rows = by_label(select(catalog, 180, calibration=calibration))
    assert on_t4 == pytest.approx(30.0 * rows["t4"].render_s / rows["c3-highcpu-8"].render_s)
    assert scaled_render_s(catalog, 30.0, 180, "t4", "t4", calibration=calibration) == pytest.approx(30.0)
    assert scaled_render_s(catalog, 30.0, 180, "nope", "t4", calibration=calibration) is None
    by_factors = load_catalog(environ={"CATALOG_PRICING": "speed_factor"})
    assert scaled_render_s(by_factors, 30.0, 180, "l4", "t4") == pytest.approx(45.0)
    assert scaled_render_s(by_factors, 30.0, 180, "c3-highcpu-8", "t4") is None
