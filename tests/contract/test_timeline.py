"""The timeline rules: starts, total length, narration placement, clamped crossfades."""

from __future__ import annotations

import pytest

from common.manifest import parse_manifest
from common.timeline import build_timeline


def manifest(scenes, transition=None):
    data = {"version": 1, "job_id": "t", "scenes": scenes}
    if transition:
        data["transition"] = transition
    return parse_manifest(data)


def test_scene_lasts_narration_plus_half_a_second_and_starts_follow() -> None:
    m = manifest([
        {"image": "a.png", "narration": "n1.wav"},
        {"image": "b.png", "duration_s": 3},
        {"image": "c.png", "narration": "n2.wav"},
    ])
    timeline = build_timeline(m, {"n1.wav": 2.0, "n2.wav": 1.25})
    assert [s.start_s for s in timeline.scenes] == [0.0, 2.5, 5.5]
    assert [s.duration_s for s in timeline.scenes] == [2.5, 3.0, 1.75]
    assert timeline.total_s == pytest.approx(7.25)
    assert timeline.total_frames == round(7.25 * 30)


def test_narration_longer_than_an_explicit_duration_is_cut() -> None:
    timeline = build_timeline(manifest([{"image": "a.png", "narration": "n.wav", "duration_s": 1.0}]), {"n.wav": 4.0})
    assert timeline.scenes[0].narration_s == 1.0


def test_crossfade_is_clamped_to_half_the_shorter_neighbour_and_never_moves_starts() -> None:
    m = manifest(
        [{"image": "a.png", "duration_s": 4}, {"image": "b.png", "duration_s": 1}, {"image": "c.png", "duration_s": 4}],
        {"type": "crossfade", "duration_s": 2},
    )
    timeline = build_timeline(m, {})
    assert [s.start_s for s in timeline.scenes] == [0, 4, 5]
    assert timeline.total_s == 9
    assert [(s.fade_in_s, s.fade_out_s) for s in timeline.scenes] == [(0, 0.5), (0.5, 0.5), (0.5, 0)]


def test_cut_has_no_fades() -> None:
    m = manifest([{"image": "a.png", "duration_s": 2}, {"image": "b.png", "duration_s": 2}], {"type": "cut"})
    assert all(s.fade_in_s == s.fade_out_s == 0 for s in build_timeline(m, {}).scenes)
