"""The command line: the design note's table, --json, validate, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
SEED_ARGS = ["estimate", "--length", "180", "--baseline", "20", "--overhead", "0"]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("GPU_CATALOG", "BASELINE_T4_SPEED_S_PER_S", "VIDEO_LENGTH_S"):
        monkeypatch.delenv(name, raising=False)


def test_table_reproduces_the_seed_example(capsys):
    code, out, _ = run(capsys, *SEED_ARGS)
    assert code == 0
    table = out.split("\n\n")[0].splitlines()[2:]
    rows = {line.split()[0]: line for line in table}
    assert rows["t4"].split()[1:4] == ["3600", "s", "$0.35"]
    assert rows["l4"].split()[1:4] == ["2400", "s", "$0.33"]
    assert rows["a100"].split()[1:4] == ["450", "s", "$0.38"]
    assert "180s x 20s/s / 1.5 = 2400s" in rows["l4"]
    assert rows["l4"].endswith("SELECTED")
    assert [line for line in out.splitlines() if "SELECTED" in line] == [rows["l4"]]


def test_json_output(capsys):
    code, out, _ = run(capsys, *SEED_ARGS, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["selected"] == "l4"
    options = {o["gpu"]: o for o in document["options"]}
    assert (options["t4"]["runtime_s"], round(options["t4"]["cost_usd"], 2)) == (3600, 0.35)
    assert (options["l4"]["runtime_s"], round(options["l4"]["cost_usd"], 2)) == (2400, 0.33)
    assert (options["a100"]["runtime_s"], options["a100"]["cost_usd"]) == (450, 0.375)
    assert options["l4"]["provisioning"] == "on-demand" and options["l4"]["speed_source"] == "catalog"


def test_deadline_spot_and_blocks_from_the_command_line(capsys):
    # Only the A100 (450 s) and the Spot-only H100 (300 s) meet 1000 s; the A100 is cheaper.
    code, out, _ = run(capsys, *SEED_ARGS, "--deadline", "1000", "--spot", "--block", "a100:on-demand", "--json")
    document = json.loads(out)
    assert code == 0
    assert (document["selected"], document["selected_provisioning"]) == ("a100", "spot")
    code, out, _ = run(capsys, *SEED_ARGS, "--deadline", "1000", "--spot", "--block", "a100", "--json")
    assert (json.loads(out)["selected"], json.loads(out)["selected_provisioning"]) == ("h100", "spot")
    code, out, _ = run(capsys, *SEED_ARGS, "--deadline", "1000", "--json")
    assert json.loads(out)["selected"] == "a100"


def test_learned_file(tmp_path, capsys):
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"version": 1, "samples": {"t4": [4, 4, 4, 4, 4]}}))
    code, out, _ = run(capsys, *SEED_ARGS, "--learned", str(learned))
    assert code == 0
    assert "180s x 4.00s/s (learned) = 720s" in out
    assert "t4 selected" in out


def test_length_and_baseline_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("VIDEO_LENGTH_S", "90")
    monkeypatch.setenv("BASELINE_T4_SPEED_S_PER_S", "10")
    code, out, _ = run(capsys, "estimate", "--overhead", "0", "--json")
    options = {o["gpu"]: o for o in json.loads(out)["options"]}
    assert code == 0 and options["t4"]["runtime_s"] == 900


def test_no_selectable_option_exits_1(capsys):
    code, out, _ = run(capsys, *SEED_ARGS, "--budget", "0.01")
    assert code == 1
    assert "No option can be selected" in out


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert run(capsys, "estimate")[0] == 2  # no length anywhere
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "gpus:\n  l4: {accelerator: nvidia-l4, machine_type: g2-standard-8, cost_per_hour: 0.5,"
        " speed_factor: -1, zones: [us-central1-a]}\n"
    )
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2 and out == ""
    assert err == "error: catalog: gpus.l4.speed_factor: must be a positive number, got -1\n"


def test_validate_the_bundled_catalog_as_a_real_process():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GPU_CATALOG", None)
    result = subprocess.run(
        [sys.executable, "-m", "catalog", "validate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and "(t4, l4, v100, a100, h100)" in result.stdout
