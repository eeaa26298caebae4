"""Segments are named by their inputs: a restarted render reuses finished ones and makes the same video."""

from __future__ import annotations

import json
from pathlib import Path

import av

from render_vm.renderer import render_job


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def test_resumed_render_reuses_segments_and_gives_the_same_video(small_job: Path, tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    done: list[Path] = []
    first = render_job(small_job, tmp_path / "a.mp4", workers=2, segments_dir=segments, on_segment_done=done.append)
    kept = sorted(segments.glob("*.mp4"))
    assert first.segments_reused == 0 and len(kept) == first.segments_total == len(done) == 4
    assert sorted(done) == kept and not list(segments.glob(".*"))  # no partial files left

    kept[1].unlink()  # as if the render had died before segment 1 finished
    done.clear()
    second = render_job(small_job, tmp_path / "b.mp4", workers=2, segments_dir=segments, on_segment_done=done.append)
    assert second.segments_reused == 3 and done == [kept[1]]
    assert video_packets(tmp_path / "a.mp4") == video_packets(tmp_path / "b.mp4")


def test_changing_an_input_changes_only_the_segments_it_touches(small_job: Path, tmp_path: Path) -> None:
    segments = tmp_path / "segments"
    render_job(small_job, tmp_path / "a.mp4", workers=1, segments_dir=segments)
    manifest = json.loads((small_job / "job.json").read_text())
    manifest["scenes"][3]["caption"] = "A new last caption"
    (small_job / "job.json").write_text(json.dumps(manifest))
    report = render_job(small_job, tmp_path / "b.mp4", workers=1, segments_dir=segments)
    # The last scene and the segment before it (its crossfade shows the new caption fading in) are new.
    assert report.segments_reused == 2


def test_progress_reaches_the_total(small_job: Path, tmp_path: Path) -> None:
    seen: list[dict] = []
    report = render_job(small_job, tmp_path / "a.mp4", workers=2, on_progress=seen.append)
    assert seen[-1]["stage"] == "done" and seen[-1]["frames_done"] == seen[-1]["frames_total"] == report.frames
    assert {"frames_done", "frames_total", "stage", "segments_done", "segments_total"} <= set(seen[0])
