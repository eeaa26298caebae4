"""One segment's frames, drawn in a worker process and piped raw to the encoder.

A frame is one or two scenes (two inside a crossfade). A scene's picture at time
*t* is three ``cv2.warpAffine`` calls, one per yuv420p plane, straight into
the output buffer (bilinear, float matrix: sub-pixel motion), then its caption
blended over its bottom rectangle. A crossfade is one ``cv2.addWeighted`` over
the whole buffer. Warping the 4:2:0 planes touches 1.5 bytes a pixel instead of
the 3 of RGB and needs no colour conversion per frame.

Memory stays flat however long the job is: a worker holds only the stills of the
scenes visible in its segment (two or three), and drops each when it is done.
"""

from __future__ import annotations

import fcntl
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
from render_vm.renderer.motion import OVERSCAN, STILL, plane_matrix
from render_vm.renderer.segments import SceneSpec, Segment
from render_vm.renderer.stills import Planes, load_still

PROGRESS_EVERY = 8  # frames between progress messages to the parent

_progress: Queue | None = None


def init_worker(progress: Queue | None) -> None:
    """Pool initializer: where to report frames done; OpenCV on one thread.

    The encoder beside each worker already keeps the cores busy; OpenCV's own
    thread pool would only add hand-over overhead (measured: 5% more CPU a frame).
    """
    global _progress
    _progress = progress
    cv2.setNumThreads(1)


@dataclass(frozen=True)
class SegmentResult:
    number: int
    frames: int
    seconds: float
    worker_peak_rss_mb: float  # this worker process, over its whole life
    encoder_peak_rss_mb: float  # the largest ffmpeg this worker has run


class EncoderFailed(Exception):
    """ffmpeg exited non-zero; the message is its last lines of stderr."""


@dataclass
class _Scene:
    spec: SceneSpec
    source: Planes
    caption: CaptionOverlay | None


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
    if spec.motion == STILL:
        source = load_still(Path(spec.image), width, height)
    else:  # oversized, so the tightest zoom still shows the still 1:1
        source = load_still(Path(spec.image), _even(width * OVERSCAN), _even(height * OVERSCAN))
    caption = render_caption(spec.caption, width, height) if spec.caption else None
    return _Scene(spec, source, caption)


def _draw(scene: _Scene, t: float, frame: _Frame) -> None:
    spec = scene.spec
    if scene.source.size == (frame.y.shape[1], frame.y.shape[0]) and spec.motion == STILL:
        for src, dst in zip((scene.source.y, scene.source.u, scene.source.v), frame.planes()):
            np.copyto(dst, src)
    else:
        progress = (t - spec.visible_from_s) / (spec.visible_until_s - spec.visible_from_s)
        for src, dst in zip((scene.source.y, scene.source.u, scene.source.v), frame.planes()):
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
        _widen_pipe(process.stdin.fileno())
        try:
            try:
                _write_frames(segment, process)
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


def _write_frames(segment: Segment, process: subprocess.Popen) -> None:
    loaded: dict[int, _Scene] = {}
    frame, under = _Frame(segment.width, segment.height), _Frame(segment.width, segment.height)
    unreported = 0
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
            _draw(loaded[layers[0][0].index], t, frame)
        else:
            (bottom, _), (top, opacity) = layers
            _draw(loaded[bottom.index], t, under)
            _draw(loaded[top.index], t, frame)
            cv2.addWeighted(under.buffer, 1.0 - opacity, frame.buffer, opacity, 0.0, dst=frame.buffer)
        process.stdin.write(frame.buffer.data)
        unreported += 1
        if unreported == PROGRESS_EVERY:
            _report(unreported)
            unreported = 0
    _report(unreported)


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: a 3 MB frame crosses in 3 hand-overs, not 48."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except OSError:  # above /proc/sys/fs/pipe-max-size: the default works, a little slower
        pass


def _report(frames: int) -> None:
    if _progress is not None and frames:
        _progress.put(frames)


def _even(value: float) -> int:
    return int(round(value / 2)) * 2
