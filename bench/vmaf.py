"""Speed at a fixed quality: VMAF of the renderer's output at each x264 preset (and CRF).

Imported by ``bench/render.py`` (its ``vmaf`` section). The reference is a
lossless render of the same job: the renderer's own segments, composed by the
same code, encoded with ``libx264 -qp 0`` (lossless in 4:2:0, so it holds
exactly the frames the renderer pipes to its encoder). Each preset is then a
real ``render_job`` at that preset and the renderer's CRF: its wall and CPU
seconds per second of video, its bitrate, and its VMAF against the reference.

The CRF sweep encodes the reference's frames, decoded once to a raw file,
with the renderer's encoder arguments at other CRFs (the renderer cuts the
video into per-scene segments, each starting with a key frame; one stream
here: the quality differs by a hair at the cuts, the cost not at all).

VMAF is libvmaf's ``vmaf_v0.6.1`` model in the shipped ffmpeg, computed on
every ``subsample``-th frame (1080p VMAF runs at a few frames a second on
two cores). Scores per frame are pooled four ways: mean, harmonic mean (which
weighs the worst frames more, as Netflix's own tools offer), 1st percentile
and minimum.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from bench.timing import cpu_seconds
from common.manifest import load_manifest
from render_vm.renderer import compose, render_job
from render_vm.renderer.encoder import COLOUR_TAGS, Encoder, ffmpeg_exe
from render_vm.renderer.pipeline import job_timeline
from render_vm.renderer.segments import plan_segments

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
VMAF_TARGET = 95.0  # mean over the scored frames
P1_FLOOR = 93.0  # the worst 1% of frames
PROFILE = "High"  # the renderer's documented format


@dataclass(frozen=True)
class Score:
    mean: float
    harmonic: float
    p1: float
    min: float
    frames: int

    def __str__(self) -> str:
        return f"{self.mean:6.2f} {self.harmonic:6.2f} {self.p1:6.2f} {self.min:6.2f}"


class LosslessEncoder(Encoder):
    """libx264 at QP 0: the renderer's frames, bit for bit (High 4:4:4 Predictive, the lossless profile)."""

    @property
    def args(self) -> list[str]:
        return ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", *COLOUR_TAGS]


def vmaf(distorted: Path, reference: Path, subsample: int) -> Score:
    """libvmaf of ``distorted`` against ``reference`` (same frames, same size), pooled per frame."""
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch, "vmaf.json")
        graph = (
            "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];"
            f"[d][r]libvmaf=n_subsample={subsample}:n_threads={os.cpu_count() or 1}:log_fmt=json:log_path={log}"
        )
        command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-",
        ]
        subprocess.run(command, check=True)
        frames = json.loads(log.read_text())["frames"]
    scores = np.array([f["metrics"]["vmaf"] for f in frames], dtype=np.float64)
    harmonic = len(scores) / np.sum(1.0 / (scores + 1.0)) - 1.0  # libvmaf's own harmonic_mean pooling
    return Score(float(scores.mean()), float(harmonic), float(np.percentile(scores, 1)), float(scores.min()), len(scores))


def lossless_render(job: Path, out: Path, scratch: Path) -> None:
    """The job's frames, composed by the renderer's own code, encoded losslessly (video only)."""
    manifest = load_manifest(job)
    timeline = job_timeline(manifest, job)
    segments = plan_segments(manifest, timeline, job, LosslessEncoder("libx264", "ultrafast", 0))
    compose.init_worker(None)
    parts = []
    for segment in segments:
        parts.append(scratch / f"lossless-{segment.number:04d}.mp4")
        compose.render_segment(segment, parts[-1])
    listing = scratch / "lossless.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
         "-i", str(listing), "-c", "copy", str(out)],
        check=True,
    )
    for part in parts:
        part.unlink()


def bitrate_mbps(video: Path, seconds: float) -> float:
    return video.stat().st_size * 8 / seconds / 1e6


def preset_rows(job: Path, reference: Path, scratch: Path, presets: tuple[str, ...], subsample: int) -> list[dict]:
    """One real render per preset at the renderer's CRF: speed, bitrate, VMAF."""
    rows = []
    for preset in presets:
        out = scratch / f"render-{preset}.mp4"
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        report = render_job(job, out, preset=preset)
        wall, cpu = time.monotonic() - wall0, cpu_seconds() - cpu0
        rows.append({
            "preset": preset, "wall_s_per_s": wall / report.video_s, "cpu_s_per_s": cpu / report.video_s,
            "mbps": bitrate_mbps(out, report.video_s), "vmaf": vmaf(out, reference, subsample),
            "profile": h264_profile(out),
        })
        out.unlink()
    return rows


def raw_frames(reference: Path, raw: Path) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(reference),
         "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)],
        check=True,
    )


def crf_rows(raw: Path, reference: Path, size: tuple[int, int], fps: int, combos: list[tuple[str, int]],
             scratch: Path, subsample: int) -> list[dict]:
    """Encode the raw frames at each (preset, CRF) with the renderer's arguments, one encoder thread."""
    frames = raw.stat().st_size // (size[0] * size[1] * 3 // 2)
    rows = []
    for preset, crf in combos:
        args = Encoder("libx264", preset, 1).args  # x264 even where NVENC answers: CRF is x264's
        args[args.index("-crf") + 1] = str(crf)
        out = scratch / f"crf-{preset}-{crf}.mp4"
        command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{size[0]}x{size[1]}", "-framerate", str(fps),
            *COLOUR_TAGS, "-i", str(raw), *args, "-an", "-f", "mp4", str(out),
        ]
        cpu0 = cpu_seconds()
        subprocess.run(command, check=True)
        cpu = cpu_seconds() - cpu0
        rows.append({
            "preset": preset, "crf": crf, "cpu_ms_per_frame": 1000 * cpu / frames,
            "mbps": bitrate_mbps(out, frames / fps), "vmaf": vmaf(out, reference, subsample),
            "profile": h264_profile(out),
        })
        out.unlink()
    return rows


def h264_profile(video: Path) -> str:
    with av.open(str(video)) as container:
        return container.streams.video[0].codec_context.profile or "?"


def passes(row: dict) -> bool:
    """docs/renderer.md's rule: mean VMAF >= 95, 1st percentile >= 93, H.264 High."""
    return row["vmaf"].mean >= VMAF_TARGET and row["vmaf"].p1 >= P1_FLOOR and row.get("profile", PROFILE) == PROFILE


def fastest_passing(rows: list[dict]) -> dict | None:
    """The first row (rows go fastest first) that passes."""
    return next((row for row in rows if passes(row)), None)


CRF_RANGE = (10, 34)


def highest_crf(raw: Path, reference: Path, size: tuple[int, int], fps: int, preset: str, start: int,
                scratch: Path, subsample: int, step: int = 2) -> tuple[dict | None, list[dict]]:
    """The highest CRF (from ``start``, in steps of ``step``) that still ``passes``, and every row tried."""
    tried: list[dict] = []

    def score(crf: int) -> dict:
        tried.append(crf_rows(raw, reference, size, fps, [(preset, crf)], scratch, subsample)[0])
        return tried[-1]

    row = score(start)
    if row["profile"] != PROFILE:  # no CRF changes the profile: nothing of this preset can pass
        return None, tried
    if passes(row):  # climb while it passes
        while row["crf"] + step <= CRF_RANGE[1]:
            higher = score(row["crf"] + step)
            if not passes(higher):
                break
            row = higher
        return row, tried
    while row["crf"] - step >= CRF_RANGE[0]:  # else descend until it passes
        row = score(row["crf"] - step)
        if passes(row):
            return row, tried
    return None, tried
