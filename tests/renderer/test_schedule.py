"""Which segment a free worker takes: each still prepared about once, the work split evenly."""

from __future__ import annotations

from render_vm.renderer.pipeline import next_segment


def test_a_free_worker_goes_on_to_the_segment_its_crossfade_led_into() -> None:
    assert next_segment(list(range(2, 12)) + list(range(13, 24)), 1, {12}) == 2


def test_workers_start_at_the_beginning_and_half_way() -> None:
    assert next_segment(list(range(24)), None, set()) == 0
    assert next_segment(list(range(1, 24)), None, {0}) == 12  # the first worker carries on from 0


def test_when_its_next_is_taken_a_worker_splits_the_longest_stretch_left() -> None:
    assert next_segment([20, 21, 22, 23], 11, {19}) == 22  # the worker on 19 carries on into 20, 21
    assert next_segment([3, 4, 20], 11, {19}) == 3  # nobody is heading into 3..4: start there
