"""One segment's frames, drawn in a worker process and piped raw to the encoder.

A frame is one or two scenes (two inside a crossfade). A scene's picture at time
*t* is its still zoomed about the Ken Burns path's fixed point, one yuv420p
plane at a time, straight into the output buffer (``zoom.py``: ``cv2.resize``
anchored at that point, bilinear and sub-pixel exact, about three times cheaper
than ``cv2.warpAffine``; the warp remains for a path without a usable fixed
point), then its caption blended over its bottom rectangle. A crossfade is one
``cv2.addWeighted`` over the whole buffer. Working on the 4:2:0 planes touches
1.5 bytes a pixel instead of the 3 of RGB and needs no colour conversion per
frame. A frame that cannot differ from the one before (motion "none", no fade)
is not drawn again: the same buffer is written once more.

Memory stays flat however long the job is: a worker holds only the stills of the
scenes visible in its segment (two or three; the last one carried on into its
next segment), and drops each when it is done. A Ken Burns still is held padded,
with mirrored copies of the quarters before its fixed point: about twice the
prepared planes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path

import cv2
import numpy as np

from render_vm.renderer.captions import CaptionOverlay, render_caption
from render_vm.renderer.encoder import COLOUR_TAGS, ffmpeg_exe
from render_vm.renderer.frame_pipe import FramePipe
from render_vm.renderer.motion import OVERSCAN, STILL, ZoomAbout, plane_matrix, zoom_about
from render_vm.renderer.segments import SceneSpec, Segment
from render_vm.renderer.stills import Planes, load_still
from render_vm.renderer.zoom import ZoomedPlane

PROGRESS_EVERY = 8  # frames between progress messages to the parent

_progress: Queue | None = None
# Scenes still on screen when this worker's last segment ended (the one a crossfade led into), kept
# for its next segment: the parent hands a worker the following segment when it can, so each still
# is prepared about once, not once for its own segment and again for the crossfade before it.
_carried: dict[tuple[SceneSpec, int, int], _Scene] = {}


def init_worker(progress: Queue | None) -> None:
    """Pool initializer: where to report frames done; OpenCV on one thread.

    The encoder beside each worker already keeps the cores busy; OpenCV's own
    thread pool would only add hand-over overhead (measured: 5% more CPU a frame).
    """
    global _progress
    _progress = progress
    cv2.setNumThreads(1)


def warm_up() -> None:
    """A no-op task: submitting one per worker makes the pool start them all before the first segment."""


@dataclass(frozen=True)
class SegmentResult:
    number: int
    frames: int
    seconds: float
    worker_peak_rss_mb: float  # this worker process, over its whole life
    encoder_peak_rss_mb: float  # the largest ffmpeg this worker has run


class EncoderFailed(Exception):
    """ffmpeg exited non-zero; the message is its last lines of stderr."""


class _ZoomedStill:
    """A still's three planes, each zoomed about the scene's fixed point (see ``zoom.py``)."""

    def __init__(self, source: Planes, zoom: ZoomAbout, width: int, height: int) -> None:
        self.zoom = zoom
        self.sizes = source.size, (width, height)
        # The snapped fixed point is even, so it is a pixel edge of the half-size chroma planes too.
        half_frame, half_still = _half(zoom.frame_point), _half(zoom.still_point)
        self.planes = (
            ZoomedPlane(source.y, zoom.frame_point, zoom.still_point, (width, height)),
            ZoomedPlane(source.u, half_frame, half_still, (width // 2, height // 2)),
            ZoomedPlane(source.v, half_frame, half_still, (width // 2, height // 2)),
        )

    def draw(self, progress: float, frame: _Frame) -> None:
        scale = self.zoom.scale(progress, *self.sizes)  # luma and chroma alike
        for plane, dst in zip(self.planes, frame.planes()):
            plane.draw(scale, dst)


@dataclass
class _Scene:
    """A scene ready to draw: its still, zoomed (Ken Burns) or as planes (static, or warped), and its caption."""

    spec: SceneSpec
    still: _ZoomedStill | Planes
    caption: CaptionOverlay | None

    @property
    def static(self) -> bool:
        """The same picture in every frame."""
        return self.spec.motion == STILL and isinstance(self.still, Planes)


class _Frame:
    """A yuv420p frame: one contiguous buffer, with plane views into it."""

    def __init__(self, width: int, height: int) -> None:
        luma = width * height
        self.buffer = np.empty(luma * 3 // 2, dtype=np.uint8)
        self.y = self.buffer[:luma].reshape(height, width)
        self.u = self.buffer[luma : luma * 5 // 4].reshape(height // 2, width // 2)
        self.v = self.buffer[luma * 5 // 4 :].reshape(height // 2, width // 2)

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v


def layers_at(t: float, scenes: tuple[SceneSpec, ...]) -> list[tuple[SceneSpec, float]]:
    """``[(scene, opacity)]`` bottom-up at time ``t``: one scene, or two inside a crossfade."""
    current = 0
    for i, scene in enumerate(scenes):
        if scene.start_s <= t:
            current = i
    scene = scenes[current]
    if scene.fade_in_s > 0 and t < scene.start_s + scene.fade_in_s / 2 and current > 0:
        opacity = (t - scene.visible_from_s) / scene.fade_in_s
        return [(scenes[current - 1], 1.0), (scene, min(1.0, max(0.0, opacity)))]
    if scene.fade_out_s > 0 and t >= scene.end_s - scene.fade_out_s / 2 and current + 1 < len(scenes):
        opacity = (t - (scene.end_s - scene.fade_out_s / 2)) / scene.fade_out_s
        return [(scene, 1.0), (scenes[current + 1], min(1.0, max(0.0, opacity)))]
    return [(scene, 1.0)]


def _load_scene(spec: SceneSpec, width: int, height: int) -> _Scene:
    caption = render_caption(spec.caption, width, height) if spec.caption else None
    if spec.motion == STILL:
        return _Scene(spec, load_still(Path(spec.image), width, height), caption)
    # Oversized, so the tightest zoom still shows the still 1:1.
    source = load_still(Path(spec.image), _even(width * OVERSCAN), _even(height * OVERSCAN))
    zoom = zoom_about(spec.motion, source.size, (width, height))
    if zoom is None:  # no usable fixed point: the general warp
        return _Scene(spec, source, caption)
    return _Scene(spec, _ZoomedStill(source, zoom, width, height), caption)


def _draw(scene: _Scene, t: float, frame: _Frame) -> None:
    spec = scene.spec
    progress = (t - spec.visible_from_s) / (spec.visible_until_s - spec.visible_from_s)
    if isinstance(scene.still, _ZoomedStill):
        scene.still.draw(progress, frame)
    elif scene.static:
        for src, dst in zip((scene.still.y, scene.still.u, scene.still.v), frame.planes()):
            np.copyto(dst, src)
    else:
        for src, dst in zip((scene.still.y, scene.still.u, scene.still.v), frame.planes()):
            size = (dst.shape[1], dst.shape[0])
            matrix = plane_matrix(spec.motion, progress, (src.shape[1], src.shape[0]), size)
            cv2.warpAffine(
                src, matrix, size, dst=dst,
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )
    if scene.caption is not None:
        scene.caption.blend_into(*frame.planes())


def encoder_command(segment: Segment, out_path: Path) -> list[str]:
    """ffmpeg reading raw yuv420p frames on stdin and writing one MP4 segment."""
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{segment.width}x{segment.height}",
        "-framerate", str(segment.fps), *COLOUR_TAGS, "-i", "pipe:0",
        *segment.encoder.args, "-an", "-f", "mp4", str(out_path),
    ]


def render_segment(segment: Segment, out_path: Path) -> SegmentResult:
    """Render ``segment`` to ``out_path`` (written under a temporary name, then renamed)."""
    started = time.monotonic()
    partial = out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial.mp4")
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(encoder_command(segment, partial), stdin=subprocess.PIPE, stderr=stderr)
        pipe = FramePipe(process.stdin.fileno())
        try:
            try:
                _write_frames(segment, pipe)
                encoder_peak_mb = peak_rss_mb(process.pid)  # its memory plateaus once frames flow
                process.stdin.close()
            except BrokenPipeError:  # ffmpeg died: its stderr says why
                pass
            code = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            partial.unlink(missing_ok=True)
            raise
        finally:
            pipe.release()  # ffmpeg has exited: the frames it was handed by reference may be freed
        if code != 0:
            partial.unlink(missing_ok=True)
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise EncoderFailed(f"ffmpeg exited {code} on segment {segment.number}: {' | '.join(tail)}")
    partial.replace(out_path)
    return SegmentResult(segment.number, segment.frames, time.monotonic() - started, peak_rss_mb("self"), encoder_peak_mb)


def peak_rss_mb(pid: int | str) -> float:
    """A process's peak resident memory (VmHWM) in MB; 0 if it is gone.

    Not ``getrusage``: Linux carries ru_maxrss across fork and exec, so a spawned
    worker would report its parent's peak, and ffmpeg its worker's.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _write_frames(segment: Segment, out: FramePipe) -> None:
    """Draw the segment's frames and hand each to ``out``.

    ``out`` may hold a frame's pages by reference until the encoder reads them
    (``frame_pipe.py``), so each newly drawn frame goes into the next of
    ``out.buffers(...)`` buffers in turn, never into one the pipe may still hold.
    """
    size = (segment.width, segment.height)
    loaded = {key[0].index: scene for key, scene in _carried.items() if key[0] in segment.scenes and key[1:] == size}
    _carried.clear()
    under = _Frame(segment.width, segment.height)
    ring = [_Frame(segment.width, segment.height) for _ in range(out.buffers(segment.width * segment.height * 3 // 2))]
    drawn = 0
    frame = ring[0]
    unreported = 0
    showing = None  # the static scene whose picture ``frame`` holds, if any
    for n in range(segment.first_frame, segment.end_frame):
        t = n / segment.fps
        layers = layers_at(t, segment.scenes)
        wanted = {spec.index for spec, _ in layers}
        for index in [i for i in loaded if i not in wanted and loaded[i].spec.visible_until_s <= t]:
            del loaded[index]  # past its last frame: free the still
        for spec, _ in layers:
            if spec.index not in loaded:
                loaded[spec.index] = _load_scene(spec, segment.width, segment.height)
        if len(layers) == 1:
            scene = loaded[layers[0][0].index]
            if scene is not showing:  # else the buffer already holds exactly this frame: hand it over again
                frame, drawn = ring[drawn % len(ring)], drawn + 1
                _draw(scene, t, frame)
            showing = scene if scene.static else None
        else:
            showing = None
            (bottom, _), (top, opacity) = layers
            frame, drawn = ring[drawn % len(ring)], drawn + 1
            _draw(loaded[bottom.index], t, under)
            _draw(loaded[top.index], t, frame)
            cv2.addWeighted(under.buffer, 1.0 - opacity, frame.buffer, opacity, 0.0, dst=frame.buffer)
        out.write(frame.buffer)
        unreported += 1
        if unreported == PROGRESS_EVERY:
            _report(unreported)
            unreported = 0
    _report(unreported)
    end_s = segment.end_frame / segment.fps
    _carried.update({(scene.spec, *size): scene for scene in loaded.values() if scene.spec.visible_until_s > end_s})


def _report(frames: int) -> None:
    if _progress is not None and frames:
        _progress.put(frames)


def _even(value: float) -> int:
    return int(round(value / 2)) * 2


def _half(point: tuple[int, int]) -> tuple[int, int]:
    return point[0] // 2, point[1] // 2
