"""The design note's short catalog (top-level GPU entries) loads, with documented defaults, beside the full form.

fixtures/design_note_gpu_catalog.yml is the note's two YAML blocks verbatim
(its `gpu_catalog.yml` with l4 and t4, then its `custom_gpu` example), joined
by a blank line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import catalog.model as model
from catalog import CatalogError, GpuSpec, load_catalog, parse_catalog, select
from catalog.__main__ import main
from catalog.model import DEFAULT_CATALOG_PATH

ROOT = Path(__file__).resolve().parents[2]
NOTE = Path(__file__).with_name("fixtures") / "design_note_gpu_catalog.yml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GPU_CATALOG", "BASELINE_T4_SPEED_S_PER_S", "VIDEO_LENGTH_S", "REGION"):
        monkeypatch.delenv(name, raising=False)


def short(text: str, region: str | None = None):
    return parse_catalog(yaml.safe_load(textwrap.dedent(text)), region=region)


# ---------------------------------------------------------------- the note's own file


def test_the_note_catalog_loads_as_written():
    catalog = load_catalog(NOTE, environ={})
    assert catalog.form == "short"
    assert list(catalog.gpus) == ["l4", "t4", "custom_gpu"]  # the file's order (it breaks exact ties)
    l4, t4, custom = catalog.gpus["l4"], catalog.gpus["t4"], catalog.gpus["custom_gpu"]
    assert (l4.cost_per_hour, l4.speed_factor, l4.accelerator, l4.machine_type) == (0.5, 1.5, "nvidia-l4",
                                                                                   "g2-standard-8")
    assert (t4.cost_per_hour, t4.speed_factor, t4.accelerator, t4.machine_type) == (0.35, 1.0, "nvidia-tesla-t4",
                                                                                   "n1-standard-4")
    assert (custom.accelerator, custom.machine_type, custom.cost_per_hour, custom.speed_factor) == (
        "nvidia-tesla-v100", "n1-standard-4", 1.2, 4.0)
    # The settings the note does not state are the full form's defaults.
    assert catalog.baseline_s_per_s == 20 and catalog.budget.per_job_usd == 5.0


def test_the_note_file_is_the_same_catalog_as_its_full_form_spelt_out():
    full = {
        "gpus": {
            "l4": {"accelerator": "nvidia-l4", "machine_type": "g2-standard-8", "cost_per_hour": 0.5,
                   "speed_factor": 1.5, "zones": ["us-central1-a", "us-central1-b", "us-central1-c"],
                   "has_nvenc": True},
            "t4": {"accelerator": "nvidia-tesla-t4", "machine_type": "n1-standard-4", "cost_per_hour": 0.35,
                   "speed_factor": 1.0, "zones": ["us-central1-a", "us-central1-b", "us-central1-f"],
                   "has_nvenc": True},
            "custom_gpu": {"accelerator": "nvidia-tesla-v100", "machine_type": "n1-standard-4", "cost_per_hour": 1.2,
                           "speed_factor": 4.0, "has_nvenc": True,
                           "zones": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]},
        }
    }
    assert load_catalog(NOTE, environ={}).gpus == parse_catalog(full).gpus


def test_estimate_reproduces_the_note_table_as_a_real_process():
    """The issue's own command. The note's rows come out (T4 3600 s $0.35, L4 2400 s $0.33); its custom_gpu
    (900 s, $0.30) is then the cheapest and is selected, which the note's table, listing an A100, does not show."""
    env = {key: value for key, value in os.environ.items() if key not in ("GPU_CATALOG", "REGION")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "catalog", "estimate", "--length", "180", "--catalog", str(NOTE),
         "--baseline", "20", "--overhead", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.split("\n\n")[0].splitlines()[2:]}
    assert rows["t4"][1:4] == ["3600", "s", "$0.35"]
    assert rows["l4"][1:4] == ["2400", "s", "$0.33"]
    assert rows["custom_gpu"][1:4] == ["900", "s", "$0.30"] and rows["custom_gpu"][-1] == "SELECTED"
    assert "180s x 20s/s / 1.5 = 2400s" in result.stdout
    assert "custom_gpu selected" in result.stdout and "Next: l4, 2400 s for $0.33." in result.stdout


def test_validate_says_ok_which_form_and_the_defaults(capsys):
    assert main(["validate", str(NOTE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {NOTE}: 3 GPU options (l4, t4, custom_gpu), short form")
    assert "  default l4.zones: us-central1-a, us-central1-b, us-central1-c" in out
    assert "  default custom_gpu.spot_cost_per_hour: none (not offered as Spot" in out
    assert "custom_gpu.machine" not in out  # given in the file: no default claimed
    assert main(["validate"]) == 0
    assert "full form" in capsys.readouterr().out


def test_gpu_catalog_env_points_the_system_at_the_note_file():
    catalog = load_catalog(environ={"GPU_CATALOG": str(NOTE)})
    assert catalog.source == str(NOTE) and select(catalog, 180, overhead_s=0).selected.gpu == "custom_gpu"


# ---------------------------------------------------------------- each default


@pytest.mark.parametrize(
    ("name", "accelerator", "machine", "nvenc"),
    [
        ("t4", "nvidia-tesla-t4", "n1-standard-4", True),
        ("l4", "nvidia-l4", "g2-standard-8", True),
        ("v100", "nvidia-tesla-v100", "n1-standard-8", True),
        ("a100", "nvidia-tesla-a100", "a2-highgpu-1g", False),
        ("h100", "nvidia-h100-80gb", "a3-highgpu-1g", False),
    ],
)
def test_a_well_known_name_needs_only_price_and_speed(name, accelerator, machine, nvenc):
    spec = short(f"{name}: {{cost_per_hour: 1, speed_factor: 2}}").gpus[name]
    assert (spec.accelerator, spec.machine_type, spec.has_nvenc) == (accelerator, machine, nvenc)
    assert spec.accelerator_count == 1
    assert spec.boot_overhead_s == model.DEFAULT_BOOT_OVERHEAD_S == 150  # not the bundled entry's (a100: 240)
    assert spec.spot_cost_per_hour is None and spec.preemption_rate_per_hour is None  # no Spot price guessed
    assert spec.zones and all(zone.startswith("us-central1-") for zone in spec.zones)


def test_spot_is_not_offered_without_a_spot_price():
    decision = select(short("l4: {cost_per_hour: 0.5, speed_factor: 1.5}"), 180, spot=True)
    assert [o.provisioning for o in decision.options] == ["on-demand"]


def test_the_machine_follows_the_accelerator_not_the_name():
    spec = short("t4: {accelerator: nvidia-l4, cost_per_hour: 0.5, speed_factor: 1.5}").gpus["t4"]
    assert (spec.machine_type, spec.zones) == ("g2-standard-8", ("us-central1-a", "us-central1-b", "us-central1-c"))


def test_zones_come_from_the_region_in_the_bundled_order(monkeypatch):
    bundled = load_catalog(environ={}).gpus["l4"].zones
    in_europe = [zone for zone in bundled if zone.startswith("europe-west4-")]
    assert load_catalog(NOTE, environ={"REGION": "europe-west4"}).gpus["l4"].zones == tuple(in_europe)
    assert short("l4: {cost_per_hour: 0.5, speed_factor: 1.5}", region="europe-west4").gpus["l4"].zones == tuple(
        in_europe)
    monkeypatch.setenv("REGION", "europe-west4")  # parse_catalog without a region reads $REGION too
    assert short("l4: {cost_per_hour: 0.5, speed_factor: 1.5}").gpus["l4"].zones == tuple(in_europe)
    monkeypatch.setenv("REGION", "")  # empty: the documented default
    assert short("l4: {cost_per_hour: 0.5, speed_factor: 1.5}").gpus["l4"].zones[0] == "us-central1-a"


def test_an_accelerator_the_bundled_catalog_lacks_is_planned_without_nvenc():
    spec = short("""
        p4:
          accelerator: nvidia-tesla-p4
          machine: n1-standard-4
          zones: [us-central1-c]
          cost_per_hour: 0.8
          speed_factor: 0.8
    """).gpus["p4"]
    assert (spec.accelerator, spec.machine_type, spec.zones, spec.has_nvenc) == (
        "nvidia-tesla-p4", "n1-standard-4", ("us-central1-c",), False)


def test_what_an_entry_states_wins_over_every_default():
    spec = short("""
        a100:
          cost_per_hour: 3.0
          speed_factor: 8.0
          machine_type: a2-highgpu-2g
          accelerator_count: 2
          zones: [us-east1-b]
          boot_overhead_s: 240
          has_nvenc: true
          spot_cost_per_hour: 1.1
          preemption_rate_per_hour: 0.05
    """).gpus["a100"]
    assert spec == GpuSpec(name="a100", accelerator="nvidia-tesla-a100", accelerator_count=2,
                           machine_type="a2-highgpu-2g", cost_per_hour=3.0, spot_cost_per_hour=1.1,
                           preemption_rate_per_hour=0.05, speed_factor=8.0, zones=("us-east1-b",),
                           boot_overhead_s=240, has_nvenc=True)


def test_settings_beside_short_entries_apply():
    catalog = short("""
        baseline_s_per_s: 10
        transfer_overhead_s: 0
        budget: {per_job_usd: 2}
        vertex:
          region: us-central1
          machine_types: {n1-standard-4: 0.2185}
          accelerators: {NVIDIA_TESLA_T4: {gpu: t4, cost_per_hour: 0.4025}}
        t4: {cost_per_hour: 0.35, speed_factor: 1.0}
    """)
    assert (catalog.baseline_s_per_s, catalog.transfer_overhead_s, catalog.budget.per_job_usd) == (10, 0, 2)
    assert catalog.vertex.gpu("NVIDIA_TESLA_T4") == "t4" and list(catalog.gpus) == ["t4"]


def test_every_default_is_documented_where_people_read_the_catalog():
    header = DEFAULT_CATALOG_PATH.read_text().split("\nversion:")[0]
    for documented in (model.__doc__, header):
        for default in ("accelerator", "machine", "zones", "REGION", "us-central1", "boot_overhead_s", "150",
                        "Spot", "has_nvenc", "A100", "gpus:"):
            assert default in documented, default


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("l4: {cost_per_hour: -1, speed_factor: 1.5}", "catalog: l4.cost_per_hour: must be a positive number, got -1"),
        ("l4: {cost_per_hour: null, speed_factor: 1.5}",
         "catalog: l4.cost_per_hour: must be a positive number, got None"),
        ("l4: {cost_per_hour: 0.5}", "catalog: l4.speed_factor: required field is missing"),
        ("l4: {speed_factor: 1.5}", "catalog: l4.cost_per_hour: required field is missing"),
        ("l4: {cost_per_hour: 0.5, speed_factr: 1.5}", "catalog: l4.speed_factr: unknown field (did you mean"
                                                       " speed_factor?)"),
        ("my_gpu: {cost_per_hour: 1, speed_factor: 2}",
         "catalog: my_gpu.accelerator: required field is missing (only the bundled catalog's GPUs have a default:"
         " t4, l4, v100, a100, h100)"),
        ("my_gpu: {accelerator: nvidia-tesla-p4, cost_per_hour: 1, speed_factor: 2}",
         "catalog: my_gpu.machine: required field is missing (the bundled catalog has no machine type for"
         " nvidia-tesla-p4)"),
        ("my_gpu: {accelerator: nvidia-tesla-p4, machine: n1-standard-4, cost_per_hour: 1, speed_factor: 2}",
         "catalog: my_gpu.zones: required field is missing (the bundled catalog has no nvidia-tesla-p4 zones in"
         " region 'us-central1', from $REGION)"),
        ("custom_gpu: {accelerator: tesla, machine: n1-standard-4, cost_per_hour: 1, speed_factor: 2}",
         "catalog: custom_gpu.accelerator: must be an accelerator type like nvidia-l4, got 'tesla'"),
        ("custom_gpu: {accelerator: nvidia-tesla-v100, machine: N1 Standard, cost_per_hour: 1, speed_factor: 2}",
         "catalog: custom_gpu.machine: must be a machine type like g2-standard-8, got 'N1 Standard'"),
        ("l4: {machine: g2-standard-8, machine_type: g2-standard-8, cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: l4.machine_type: the same as machine: give one of them"),
        ("l4: {zones: [mars], cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: l4.zones[0]: must be a zone like us-central1-a, got 'mars'"),
        ("l4: {preemption_rate_per_hour: 0.1, cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: l4.preemption_rate_per_hour: only applies with spot_cost_per_hour"),
        ("l4: {has_nvenc: maybe, cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: l4.has_nvenc: must be true or false, got 'maybe'"),
        ("Big GPU: {cost_per_hour: 1, speed_factor: 2}", "catalog: Big GPU: GPU names are 1 to 31 characters"),
        ("l4: 0.5", "catalog: l4: a GPU entry (short form) must be a mapping with cost_per_hour and speed_factor,"
                    " got float"),
        ("baseline: 15\nl4: {cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: baseline: unknown field (did you mean baseline_s_per_s?)"),
        ("spots: {max_preemptions: 1}\nl4: {cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: spots: unknown field (did you mean spot?)"),
        ("baseline_s_per_s: 0\nl4: {cost_per_hour: 0.5, speed_factor: 1.5}",
         "catalog: baseline_s_per_s: must be a positive number, got 0"),
        ("baseline_s_per_s: 20", "catalog: gpus: required field is missing"),
        ("gpu:\n  l4: {cost_per_hour: 0.5, speed_factor: 1.5}", "catalog: gpu: unknown field (did you mean gpus?)"),
    ],
)
def test_bad_short_entries_are_one_line_naming_the_field(text, message):
    with pytest.raises(CatalogError) as caught:
        short(text)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_region_without_the_accelerator_asks_for_zones():
    with pytest.raises(CatalogError, match=r"^catalog: h100\.zones: required field is missing \(the bundled catalog "
                                           r"has no nvidia-h100-80gb zones in region 'us-west1', from \$REGION\)$"):
        short("h100: {cost_per_hour: 10, speed_factor: 12}", region="us-west1")


def test_a_bad_short_file_fails_the_command_line_with_one_line(tmp_path, capsys):
    bad = tmp_path / "note.yml"
    bad.write_text(NOTE.read_text().replace("cost_per_hour: 0.50", "cost_per_hour: -1"))
    assert main(["validate", str(bad)]) == 2
    assert capsys.readouterr().err == "error: catalog: l4.cost_per_hour: must be a positive number, got -1\n"


# ---------------------------------------------------------------- the full form, unchanged


def test_the_full_catalog_loads_unchanged_and_ignores_the_region():
    bundled = load_catalog(environ={})
    assert bundled.form == "full" and bundled.defaults == ()
    assert list(bundled.gpus) == ["t4", "l4", "v100", "a100", "h100"]
    assert load_catalog(environ={"REGION": "europe-west4"}).gpus == bundled.gpus  # zones are its own
    assert bundled.gpus["a100"].boot_overhead_s == 240 and bundled.gpus["h100"].cost_per_hour is None


def test_mixing_gpus_with_top_level_entries_is_a_clear_error():
    document = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    document["custom_gpu"] = {"accelerator": "nvidia-tesla-v100", "machine": "n1-standard-4", "cost_per_hour": 1.2,
                              "speed_factor": 4.0}
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document)
    assert str(caught.value) == (
        "catalog: custom_gpu: unknown field: a file with gpus: lists every GPU under it "
        "(GPU entries at the top level are the short form, which has no gpus:)"
    )
    # A misspelt setting beside gpus: keeps its "did you mean".
    document = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    document["budgets"] = {"per_job_usd": 3}
    with pytest.raises(CatalogError, match=r"^catalog: budgets: unknown field \(did you mean budget\?\)$"):
        parse_catalog(document)


def test_the_bundled_catalog_stays_in_the_full_form():
    """The short form's defaults come from it: a short bundled catalog would have nowhere to take them from."""
    assert "gpus" in yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
