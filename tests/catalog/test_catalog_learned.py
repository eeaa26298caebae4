"""Learned speeds: samples, the median once trusted, JSON round trips."""

from __future__ import annotations

import pytest

from catalog import LearnedSpeeds


def test_no_figure_until_min_samples():
    learned = LearnedSpeeds(min_samples=3)
    learned.add("l4", render_s=120, video_s=10)
    learned.add("l4", render_s=100, video_s=10)
    assert learned.count("l4") == 2 and learned.s_per_s("l4") is None
    learned.add("l4", render_s=900, video_s=10)  # one slow render does not move the median far
    assert learned.s_per_s("l4") == 12.0
    assert learned.s_per_s("t4") is None


def test_only_the_newest_samples_are_kept():
    learned = LearnedSpeeds(min_samples=2, max_samples=3)
    for s_per_s in (50, 40, 10, 11, 12):
        learned.add("t4", render_s=s_per_s * 60, video_s=60)
    assert learned.samples["t4"] == [10, 11, 12]


def test_json_round_trip():
    learned = LearnedSpeeds()
    learned.add("t4", 300, 20)
    learned.add("a100", 45, 18)
    again = LearnedSpeeds.from_json(learned.to_json())
    assert again.samples == learned.samples
    assert LearnedSpeeds.from_json(learned.to_json().encode(), min_samples=1).s_per_s("t4") == 15.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "learned: not valid JSON"),
        ('{"samples": {}}', "learned: must be an object with exactly 'version' and 'samples'"),
        ('{"version": 2, "samples": {}}', "learned: version: must be 1, got 2"),
        ('{"version": 1, "samples": []}', "learned: samples: must be an object"),
        ('{"version": 1, "samples": {"t4": 3}}', "learned: samples.t4: must be a list of numbers"),
        ('{"version": 1, "samples": {"t4": [1, -2]}}', "learned: samples.t4[1]: must be a positive number, got -2"),
    ],
)
def test_bad_json_is_one_line(text, message):
    with pytest.raises(ValueError) as caught:
        LearnedSpeeds.from_json(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("render_s", "video_s"), [(0, 10), (10, 0), (-1, 10), (float("inf"), 10), (True, 10)])
def test_add_rejects_nonsense(render_s, video_s):
    with pytest.raises(ValueError, match="must be a positive number"):
        LearnedSpeeds().add("t4", render_s, video_s)


def test_settings_must_make_sense():
    with pytest.raises(ValueError, match="min_samples"):
        LearnedSpeeds(min_samples=10, max_samples=5)
