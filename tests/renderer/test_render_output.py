"""The finished MP4: format (read with PyAV; there is no ffprobe), length, and scene timing."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from common.manifest import load_manifest
from render_vm.renderer import render_job
from render_vm.renderer.pipeline import job_timeline
from render_vm.renderer.stills import rgb_to_planes
from render_vm.sample_job import NARRATION_TAIL_S


def luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's Y plane as stored (limited range), without any colour conversion."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]


def luma_of(rgb: tuple[int, int, int]) -> int:
    return int(rgb_to_planes(np.full((2, 2, 3), rgb, np.uint8)).y[0, 0])


def test_output_is_h264_high_yuv420p_aac_48k_stereo_faststart(tiny_render) -> None:
    report, video = tiny_render
    with av.open(str(video)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.profile, v.codec_context.pix_fmt) == ("h264", "High", "yuv420p")
        assert (v.width, v.height, v.average_rate) == (320, 180, 30)
        assert (a.codec_context.name, a.sample_rate, a.codec_context.channels) == ("aac", 48000, 2)
        duration = container.duration / 1e6
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == report.frames
    assert duration == pytest.approx(report.video_s, abs=1 / 30 + 0.1)
    head = video.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat"), "index must come first (faststart)"
    assert report.encoder == "libx264" and report.preset == "superfast"  # docs/renderer.md: the VMAF decision
    assert report.segments_total == 12 and report.segments_reused == 0


def test_timeline_places_scenes_by_narration_length(tiny_job: Path) -> None:
    manifest = load_manifest(tiny_job)
    timeline = job_timeline(manifest, tiny_job)
    start = 0.0
    for scene, slot in zip(manifest.scenes, timeline.scenes):
        assert slot.start_s == pytest.approx(start)
        if scene.duration_s is None:  # narrated: clip (1.2 - 0.5 s, in any format) + 0.5 s
            assert slot.narration_s == pytest.approx(1.2 - NARRATION_TAIL_S, abs=0.03)
            assert slot.duration_s == pytest.approx(slot.narration_s + NARRATION_TAIL_S)
        else:
            assert slot.duration_s == scene.duration_s
        start += slot.duration_s
    assert timeline.total_s == pytest.approx(start)


def test_cuts_land_on_the_frames_of_scene_starts(tmp_path: Path) -> None:
    """Flat colours, hard cuts, odd durations: frame n shows the scene playing at n / fps."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    durations = [0.7, 0.45, 1.0, 0.5]
    job = tmp_path / "job"
    (job / "images").mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", (64, 48), colour).save(job / f"images/{i}.png")
    manifest = {
        "version": 1, "job_id": "cuts", "output": {"width": 160, "height": 128, "fps": 20},
        "transition": {"type": "cut"}, "motion": "none",
        "scenes": [{"image": f"images/{i}.png", "duration_s": d} for i, d in enumerate(durations)],
    }
    (job / "job.json").write_text(json.dumps(manifest))
    report = render_job(job, tmp_path / "out.mp4", workers=2)
    starts = np.cumsum([0.0] + durations)
    with av.open(str(tmp_path / "out.mp4")) as container:
        shown = [int(luma(f)[64, 80]) for f in container.decode(video=0)]
    assert len(shown) == report.frames == round(sum(durations) * 20)
    for n, y in enumerate(shown):
        scene = int(np.searchsorted(starts, n / 20, side="right")) - 1
        assert abs(y - luma_of(colours[scene])) < 6, f"frame {n}"


def test_crossfade_is_centred_on_the_boundary(tmp_path: Path) -> None:
    """Black to white over 0.5 s: half way exactly at the boundary, pure on both sides of the fade."""
    job = tmp_path / "job"
    (job / "images").mkdir(parents=True)
    Image.new("L", (64, 48), 0).save(job / "images/black.png")
    Image.new("L", (64, 48), 255).save(job / "images/white.png")
    manifest = {
        "version": 1, "job_id": "fade", "output": {"width": 128, "height": 128, "fps": 20},
        "transition": {"type": "crossfade", "duration_s": 0.5}, "motion": "none",
        "scenes": [{"image": "images/black.png", "duration_s": 1.0}, {"image": "images/white.png", "duration_s": 1.0}],
    }
    (job / "job.json").write_text(json.dumps(manifest))
    render_job(job, tmp_path / "out.mp4", workers=1)
    with av.open(str(tmp_path / "out.mp4")) as container:
        y = [float(luma(f)[64, 64]) for f in container.decode(video=0)]
    assert max(y[:15]) <= 18 and min(y[26:]) >= 233  # black (16) before 0.75 s, white (235) after 1.25 s
    assert y[20] == pytest.approx((16 + 235) / 2, abs=6)  # at the boundary (1.0 s): half way
    assert all(b >= a - 2 for a, b in zip(y[15:26], y[16:27]))  # rising through the fade
