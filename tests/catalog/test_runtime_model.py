"""The runtime model: the calibration file loads and validates, and the model's arithmetic."""

from __future__ import annotations

import copy
import json

import pytest

from catalog import CatalogError
from catalog.runtime_model import (
    ASSUMED_NVENC_FPS,
    estimate,
    load_calibration,
    parallel_fraction,
    parse_calibration,
    usable_cores,
)
from tests.catalog.calibration_doc import hand_made


def test_the_bundled_calibration_loads_and_says_where_it_was_measured():
    calibration = load_calibration(environ={})
    assert {"1280x720", "1920x1080"} <= set(calibration.sizes)
    assert calibration.machine["cores"] >= 1 and calibration.machine["date"].startswith("20")
    for costs in calibration.sizes.values():
        assert costs.compose_s > 0 and costs.encode_s[calibration.default_preset] > 0
        assert 1 in costs.speedups


def test_the_calibration_env_points_at_another_file(tmp_path):
    other = tmp_path / "calibration.json"
    other.write_text(json.dumps(hand_made()))
    assert load_calibration(environ={"CATALOG_CALIBRATION": str(other)}).machine["cpu_model"] == "test CPU"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["sizes"]["1920x1080"]["compose"]["cpu_s_per_frame"].update({"1": -1}),
         "calibration: sizes.1920x1080.compose.cpu_s_per_frame.1: must be a positive number, got -1"),
        (lambda d: d["transfer"].pop("mb_per_s"), "calibration: transfer.mb_per_s: required field is missing"),
        (lambda d: d["sizes"]["1920x1080"]["encode_x264"].pop("veryfast"),
         "calibration: sizes.1920x1080.encode_x264.veryfast: required field is missing (the default preset)"),
        (lambda d: d["sizes"]["1920x1080"]["compose"]["speedup"].update({"2": "fast"}),
         "calibration: sizes.1920x1080.compose.speedup.2: must be a positive number, got 'fast'"),
        (lambda d: d.update(version=2), "calibration: version: must be 1, got 2"),
        (lambda d: d["machine"].update(cores=0), "calibration: machine.cores: must be a whole number >= 1, got 0"),
        (lambda d: d["sizes"].update({"big": {}}), "calibration: sizes.big: must be named WIDTHxHEIGHT"),
    ],
)
def test_a_bad_calibration_is_one_line_naming_the_field(change, message):
    document = copy.deepcopy(hand_made())
    change(document)
    with pytest.raises(CatalogError) as caught:
        parse_calibration(document)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(message)


def test_a_broken_file_is_one_line(tmp_path):
    broken = tmp_path / "calibration.json"
    broken.write_text("{not json")
    with pytest.raises(CatalogError, match=r"^calibration: .*: not valid JSON \(line 1"):
        load_calibration(broken)


def test_amdahl_fitted_to_the_measured_points():
    # 1.8x on 2 workers: p = 2 (1 - 1/1.8) = 8/9; on 8 vCPUs 1 / (1/9 + 1/9) = 4.5 usable cores.
    assert parallel_fraction({1: 1.0, 2: 1.8}) == pytest.approx(8 / 9)
    assert usable_cores(8, 8 / 9) == pytest.approx(4.5)
    assert parallel_fraction({1: 1.0}) is None
    assert parallel_fraction({1: 1.0, 2: 2.3}) == 1.0  # noise above linear is clipped to linear


def test_the_model_arithmetic_on_a_cpu_machine():
    calibration = parse_calibration(hand_made())
    e = estimate(calibration, 60, vcpus=8, has_nvenc=False, boot_s=90)
    # 1800 frames; 4.5 usable cores; 8 scenes (one per 7.5 s).
    assert e.frames == 1800 and e.usable_cores == pytest.approx(4.5)
    assert e.compose_s == pytest.approx(1800 * 0.010 / 4.5)  # 4 s
    assert e.encode_s == pytest.approx(1800 * 0.030 / 4.5)  # 12 s: libx264 on the vCPUs
    assert e.encoder == "libx264 veryfast" and e.encode_source == "measured on the CPU"
    # worker start 1 + 8 scenes x 0.1 + mux 2 per minute
    # + (audio 4.5 CPU-s per minute + 8 encoder starts x 0.09 CPU-s) on 4.5 cores.
    assert e.other_s == pytest.approx(1 + 0.8 + 2 + (4.5 + 0.72) / 4.5)
    assert e.render_s == pytest.approx(4 + 12 + e.other_s)
    # 8 scenes x 1 MB in, 1800 x 10 kB out, at 100 MB/s, plus 2 s.
    assert e.transfer_s == pytest.approx(2 + (8 + 18) / 100)
    assert e.runtime_s == pytest.approx(e.render_s + 90 + e.transfer_s)
    assert "Amdahl p=0.889 fitted to 1..2 workers, extrapolated to 8" == e.scaling
    assert e.cpu_s == pytest.approx(1800 * 0.040 + 4.5 + 0.72 + 1 + 0.8 + 2)


def test_nvenc_encodes_at_the_assumed_rate_and_says_so():
    calibration = parse_calibration(hand_made())
    e = estimate(calibration, 60, vcpus=8, has_nvenc=True)
    assert e.encoder == "h264_nvenc" and e.encode_source == "assumed"
    assert e.encode_s == pytest.approx(1800 / ASSUMED_NVENC_FPS)
    assert "NVENC assumed" in e.terms()
    measured = parse_calibration(hand_made(nvenc={"wall_s": 0.002}))
    assert estimate(measured, 60, vcpus=8, has_nvenc=True).encode_source == "measured"


def test_more_cores_help_only_as_much_as_the_measured_scaling_allows():
    calibration = parse_calibration(hand_made())
    four, twenty_two = (estimate(calibration, 60, vcpus=v, has_nvenc=False) for v in (4, 22))
    assert twenty_two.render_s < four.render_s
    assert twenty_two.usable_cores < 22 * 0.5  # Amdahl's p = 8/9 caps it near 9


def test_one_measured_core_means_linear_and_says_not_measured():
    document = hand_made()
    document["sizes"]["1920x1080"]["compose"]["speedup"] = {"1": 1.0}
    e = estimate(parse_calibration(document), 60, vcpus=8, has_nvenc=False)
    assert e.usable_cores == pytest.approx(8) and "not measured" in e.scaling


def test_the_last_round_of_segments_is_not_shared_out():
    # 3 scenes of 225 frames on 2 vCPUs (1.8 usable cores): 2 workers share the cores for the first
    # round (2 x 0.040 CPU-s a frame on 1.8 cores); the third segment then runs alone, as fast as its
    # slower stage allows (encoding, 0.030 s a frame on its one thread), not on both cores.
    calibration = parse_calibration(hand_made())
    e = estimate(calibration, 22.5, vcpus=2, has_nvenc=False, scenes=3)
    cores = usable_cores(2, 8 / 9)
    frames_s = 225 * 2 * 0.040 / cores + 225 * 0.030
    assert (e.segments, e.workers) == (3, 2)
    assert e.compose_s + e.encode_s == pytest.approx(frames_s)
    assert e.granularity == pytest.approx(frames_s / (675 * 0.040 / cores))
    assert e.compose_s == pytest.approx(frames_s / 4)  # composing's share of a frame's CPU: 0.010 of 0.040
    assert "3 segments on 2 workers" in e.terms()
    assert estimate(calibration, 30, vcpus=2, has_nvenc=False, scenes=4).granularity == pytest.approx(1.0)


def test_a_lone_segment_goes_at_its_slower_stage():
    # One scene on 8 vCPUs: one worker, its encoder on 8 // 4 = 2 threads; composing (0.010 s a frame)
    # and encoding (0.030 / 2) overlap in the pipeline, so a frame takes 0.015 s, not their sum.
    e = estimate(parse_calibration(hand_made()), 7.5, vcpus=8, has_nvenc=False, scenes=1)
    assert e.workers == 1 and e.compose_s + e.encode_s == pytest.approx(225 * 0.015)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 22, 26])
def test_the_model_counts_the_renderers_own_workers(monkeypatch, cores):
    from catalog.runtime_model import renderer_workers
    from render_vm.renderer import pipeline

    monkeypatch.setattr(pipeline.os, "cpu_count", lambda: cores)
    assert renderer_workers(cores) == pipeline.default_workers()
