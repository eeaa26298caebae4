"""The same Ken Burns job made by moviepy 2.x and by a plain ffmpeg ``zoompan`` graph, at a matched quality.

Imported by ``bench/render.py`` (its ``rivals`` section). Both make the first
scenes of the job: a zoom of each still (to 1.12x over the scene, about the
centre), 0.5 s crossfades; moviepy also draws the captions (its TextClip),
the zoompan graph does not (``drawtext`` would need the captions escaped for
the filter syntax; it would only make zoompan slower). Video only.

Quality is matched the way the renderer's is measured: each tool renders the
job twice, once losslessly (``-qp 0``) and once with the renderer's encoder
settings (preset and CRF), and the second is scored with VMAF against the
first. The figures say at what VMAF each tool ran; the speed compared is the
second run's (wall and CPU seconds per second of video). The stills are
decoded and scaled to 1.15x the frame (cover) before the clock starts, for
both, as the renderer's per-scene still preparation is a small part of its time.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.timing import cpu_seconds
from bench.vmaf import vmaf
from common.manifest import load_manifest
from render_vm.renderer.encoder import ffmpeg_exe
from render_vm.renderer.pipeline import job_timeline

ZOOM = 0.12  # over a scene, for both tools


def _scenes(job: Path, seconds_wanted: float) -> tuple[list, float, float]:
    manifest = load_manifest(job)
    timeline = job_timeline(manifest, job)
    slots, shown = [], 0.0
    for slot in timeline.scenes:
        if shown >= seconds_wanted:
            break
        slots.append(slot)
        shown = slot.end_s
    return slots, shown, manifest.transition.duration_s


def _cover(path: Path, width: int, height: int) -> Image.Image:
    """The still upright, in RGB, cover-cropped and scaled to 1.15x the frame."""
    still = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return ImageOps.fit(still, (round(width * 1.15 / 2) * 2, round(height * 1.15 / 2) * 2))


def zoompan(job: Path, scratch: Path, size: tuple[int, int], fps: int, seconds: float, preset: str, crf: int) -> dict:
    """ffmpeg alone: one input per still, zoompan per scene, xfade between them; lossless, then at preset/CRF."""
    width, height = size
    slots, shown, fade = _scenes(job, seconds)
    inputs, chains = [], []
    for i, slot in enumerate(slots):
        still = scratch / f"zoompan-{i}.png"
        _cover(job / slot.image, width, height).save(still)
        frames = round((slot.duration_s + (fade if i + 1 < len(slots) else 0)) * fps)
        inputs += ["-i", str(still)]
        chains.append(
            f"[{i}:v]zoompan=z='1+{ZOOM}*on/{frames}':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2'"
            f":d={frames}:s={width}x{height}:fps={fps},format=yuv420p,settb=1/{fps}[s{i}]"
        )
    last, offset = "s0", 0.0
    for i, slot in enumerate(slots[1:], start=1):
        offset += slots[i - 1].duration_s
        chains.append(f"[{last}][s{i}]xfade=transition=fade:duration={fade}:offset={offset - fade / 2:.4f}[x{i}]")
        last = f"x{i}"
    graph = ";".join(chains)
    runs = {}
    for name, quality in (("lossless", ["-preset", "ultrafast", "-qp", "0"]), ("matched", ["-preset", preset, "-crf", str(crf)])):
        out = scratch / f"zoompan-{name}.mp4"
        command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *inputs,
            "-filter_complex", graph, "-map", f"[{last}]", "-t", f"{shown:.3f}",
            "-c:v", "libx264", *quality, "-pix_fmt", "yuv420p", str(out),
        ]
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        subprocess.run(command, check=True)
        runs[name] = (out, time.monotonic() - wall0, cpu_seconds() - cpu0)
    out, wall, cpu = runs["matched"]
    return {"seconds": shown, "wall_s_per_s": wall / shown, "cpu_s_per_s": cpu / shown,
            "vmaf": vmaf(out, runs["lossless"][0], 2)}


def moviepy_render(job: Path, scratch: Path, size: tuple[int, int], fps: int, seconds: float, preset: str, crf: int) -> dict | None:
    """moviepy 2.x: resize by t about the centre, crossfades, captions; lossless, then at preset/CRF."""
    try:
        import moviepy
        from moviepy import CompositeVideoClip, ImageClip, TextClip, vfx
    except ImportError:
        return None
    from render_vm.renderer.captions import primary_font

    width, height = size
    slots, shown, fade = _scenes(job, seconds)
    clips = []
    for slot in slots:
        duration = slot.duration_s + fade
        base = ImageClip(np.asarray(_cover(job / slot.image, width, height))).with_duration(duration)
        layers = [base.resized(lambda t, d=duration: 1 + ZOOM * t / d).with_position("center")]
        if slot.caption:
            text = TextClip(
                font=primary_font().path, text=slot.caption, font_size=48, color="white", stroke_color="black",
                stroke_width=2, method="caption", size=(int(width * 0.9), None), bg_color=(0, 0, 0),
            ).with_duration(duration).with_position(("center", int(height * 0.78)))
            layers.append(text)
        scene = CompositeVideoClip(layers, size=size).with_duration(duration)
        clips.append(scene.with_effects([vfx.CrossFadeIn(fade)]).with_start(max(0.0, slot.start_s - fade / 2)))
    video = CompositeVideoClip(clips, size=size).with_duration(shown)
    runs = {}
    for name, params in (("lossless", ["-qp", "0"]), ("matched", ["-crf", str(crf)])):
        out = scratch / f"moviepy-{name}.mp4"
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        video.write_videofile(
            str(out), fps=fps, codec="libx264", preset="ultrafast" if name == "lossless" else preset,
            audio=False, threads=os.cpu_count(), logger=None, ffmpeg_params=params,
        )
        runs[name] = (out, time.monotonic() - wall0, cpu_seconds() - cpu0)
    out, wall, cpu = runs["matched"]
    return {"seconds": shown, "wall_s_per_s": wall / shown, "cpu_s_per_s": cpu / shown,
            "vmaf": vmaf(out, runs["lossless"][0], 2), "version": moviepy.__version__}
