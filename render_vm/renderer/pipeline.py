"""``render_job``: a job folder in, a finished MP4 out.

    manifest -> narration lengths -> timeline -> segment plan
      -> segments in parallel worker processes  |  audio mixed once (a thread)
         (one at a time per worker, chosen by ``next_segment``)
      -> concat demuxer + stream copy + mux, faststart, to a temporary name
      -> rename to the output path

Invalid input raises :class:`ManifestError` (the command line exits 2) before
any frame is drawn, except a still that turns out to be undecodable, which a
worker reports as soon as it meets it. Anything else raises
:class:`RenderError`. Either way no output file is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from common.logs import get_logger
from common.manifest import Manifest, ManifestError, load_manifest
from common.timeline import Timeline, build_timeline

if TYPE_CHECKING:
    from render_vm.renderer.segments import Segment

log = get_logger("renderer")

PROGRESS_EVERY_S = 0.5


class RenderError(RuntimeError):
    """The render failed for a reason other than invalid input."""


@dataclass(frozen=True)
class RenderReport:
    video_s: float
    frames: int
    wall_s: float
    encoder: str
    preset: str
    workers: int
    segments_total: int
    segments_reused: int
    s_per_s: float  # wall-clock seconds per second of video
    worker_peak_rss_mb: float  # the largest worker process (Python side: stills, frames)
    encoder_peak_rss_mb: float  # the largest ffmpeg encoder process


def default_workers() -> int:
    """Half the cores, each encoder on two threads; at least two pipelines, so that on a
    small machine one worker's composing overlaps the other's encoding."""
    return max(2, (os.cpu_count() or 1) // 2)


def render_job(
    job_dir: Path,
    out_path: Path,
    *,
    workers: int | None = None,
    preset: str | None = None,
    segments_dir: Path | None = None,
    on_segment_done: Callable[[Path], None] | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> RenderReport:
    """Render ``job_dir`` to ``out_path``. See the module docstring for the flow.

    ``segments_dir`` keeps finished segments (named by a hash of their inputs)
    across runs; ``on_segment_done(path)`` is called for each newly finished one.
    ``on_progress(dict)`` receives ``frames_done``, ``frames_total``, ``stage`` ...
    """
    # Heavy modules (numpy, OpenCV, PyAV) load here, not when the package is imported.
    from render_vm.renderer.encoder import choose_encoder, nvenc_available
    from render_vm.renderer.segments import plan_segments

    started = time.monotonic()
    job_dir, out_path = Path(job_dir), Path(out_path)
    manifest = load_manifest(job_dir)
    workers = max(1, workers or default_workers())
    threads = max(1, (os.cpu_count() or 1) // workers)
    # The worker processes start (spawn and imports, most of a second of CPU each) and the NVENC
    # probe runs (one ffmpeg start) while this process probes the narration and hashes the stills:
    # one after the other, that start-up left a core idle for a second or more before the first frame.
    with _WorkerPool(min(workers, len(manifest.scenes))) as pool, ThreadPoolExecutor(max_workers=1) as side:
        nvenc_probe = side.submit(nvenc_available)
        timeline = job_timeline(manifest, job_dir)
        _check_stills(manifest, job_dir)
        nvenc_probe.result()
        try:
            encoder = choose_encoder(preset, threads)
        except ValueError as err:
            raise RenderError(str(err)) from None

        segments = plan_segments(manifest, timeline, job_dir, encoder)
        progress = _Progress(manifest.job_id, timeline.total_frames, len(segments), on_progress)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial.mp4")
        try:
            with tempfile.TemporaryDirectory(prefix=f"render-{manifest.job_id}-") as scratch:
                keep = Path(segments_dir) if segments_dir is not None else Path(scratch, "segments")
                keep.mkdir(parents=True, exist_ok=True)
                audio = Path(scratch, "audio.m4a")
                mixing = side.submit(_mix, manifest, timeline, job_dir, audio)
                peaks = _render_segments(segments, keep, pool, progress, on_segment_done, manifest)
                progress.stage("muxing")
                mixing.result()
                _concat_and_mux([keep / s.file_name for s in segments], audio, partial, Path(scratch))
            partial.replace(out_path)
        finally:
            partial.unlink(missing_ok=True)
    wall = time.monotonic() - started
    progress.stage("done")
    report = RenderReport(
        video_s=round(timeline.total_s, 3),
        frames=timeline.total_frames,
        wall_s=round(wall, 2),
        encoder=encoder.name,
        preset=encoder.preset,
        workers=workers,
        segments_total=len(segments),
        segments_reused=progress.segments_reused,
        s_per_s=round(wall / timeline.total_s, 3),
        worker_peak_rss_mb=round(peaks[0], 1),
        encoder_peak_rss_mb=round(peaks[1], 1),
    )
    log.info("render finished", job_id=manifest.job_id, **report.__dict__)
    return report


def job_timeline(manifest: Manifest, job_dir: Path) -> Timeline:
    """Probe every narration (and the music, so a broken file is an input error) and place the scenes."""
    from render_vm.renderer.audio import AudioError, probe_duration

    lengths: dict[str, float] = {}
    for field, rel in manifest.asset_paths():
        if field.endswith(".image") or rel in lengths:
            continue
        try:
            lengths[rel] = probe_duration(job_dir / rel)
        except AudioError as err:
            raise ManifestError(field, f"cannot read audio: {err}") from None
    return build_timeline(manifest, lengths)


def _check_stills(manifest: Manifest, job_dir: Path) -> None:
    from render_vm.renderer.stills import StillError, check_still

    for i, scene in enumerate(manifest.scenes):
        try:
            check_still(job_dir / scene.image)
        except StillError as err:
            raise ManifestError(f"scenes[{i}].image", str(err)) from None


def _mix(manifest: Manifest, timeline: Timeline, job_dir: Path, out_path: Path) -> None:
    from render_vm.renderer.audio import AudioError, mix_audio

    try:
        mix_audio(manifest, timeline, job_dir, out_path)
    except AudioError as err:
        raise RenderError(f"audio mix failed: {err}") from None


class _Progress:
    """Counts frames and segments and calls ``on_progress`` at most every half second."""

    def __init__(self, job_id: str, frames_total: int, segments_total: int, callback: Callable[[dict], None] | None):
        self.job_id = job_id
        self.frames_total = frames_total
        self.segments_total = segments_total
        self.callback = callback
        self.frames_done = 0
        self.segments_done = 0
        self.segments_reused = 0
        self.started = time.monotonic()
        self.frames_rendered = 0  # excludes reused frames: the speed figure counts real work
        self._stage = "rendering"
        self._last = 0.0

    def add(self, frames: int, rendered: bool = True) -> None:
        self.frames_done += frames
        if rendered:
            self.frames_rendered += frames
        self._emit(force=False)

    def stage(self, name: str) -> None:
        self._stage = name
        self._emit(force=True)

    def _emit(self, force: bool) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self._last < PROGRESS_EVERY_S):
            return
        self._last = now
        elapsed = now - self.started
        self.callback(
            {
                "job_id": self.job_id,
                "stage": self._stage,
                "frames_done": self.frames_done,
                "frames_total": self.frames_total,
                "segments_done": self.segments_done,
                "segments_total": self.segments_total,
                "segments_reused": self.segments_reused,
                "elapsed_s": round(elapsed, 1),
                "fps": round(self.frames_rendered / elapsed, 1) if elapsed > 0 else 0.0,
            }
        )


class _WorkerPool:
    """The worker processes, started as soon as the job is known: ``size`` of them, each one segment at a time."""

    def __init__(self, size: int) -> None:
        from render_vm.renderer.compose import init_worker, warm_up

        # spawn, not fork: the caller (the cloud worker) may have threads, which fork does not copy safely.
        context = multiprocessing.get_context("spawn")
        self.size = max(1, size)
        self.frames_queue = context.Queue()
        self.executor = ProcessPoolExecutor(
            max_workers=self.size, mp_context=context, initializer=init_worker, initargs=(self.frames_queue,)
        )
        # The executor spawns a process per submission while none is idle: one no-op each starts them all.
        for _ in range(self.size):
            self.executor.submit(warm_up)

    def __enter__(self) -> _WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _render_segments(
    segments: list[Segment],
    keep: Path,
    workers: _WorkerPool,
    progress: _Progress,
    on_segment_done: Callable[[Path], None] | None,
    manifest: Manifest,
) -> tuple[float, float]:
    """Render every segment not already in ``keep``; returns the peak RSS (MB) of a worker and of an encoder."""
    from render_vm.renderer.compose import render_segment
    from render_vm.renderer.stills import StillError

    todo = []
    for segment in segments:
        if (keep / segment.file_name).is_file():
            progress.segments_done += 1
            progress.segments_reused += 1
            progress.add(segment.frames, rendered=False)
        else:
            todo.append(segment)
    progress.stage("rendering")
    if not todo:
        return 0.0, 0.0
    frames_queue, pool = workers.frames_queue, workers.executor
    peaks = [0.0, 0.0]
    unassigned = [s.number for s in todo]
    running: dict[Future, int] = {}

    def submit(after: int | None) -> None:
        number = next_segment(unassigned, after, set(running.values()))
        unassigned.remove(number)
        running[pool.submit(render_segment, segments[number], keep / segments[number].file_name)] = number

    # One segment per worker at a time, so the worker that just finished is the one that picks up
    # the next submission: it gets the following segment, whose first still it already holds.
    for _ in range(min(workers.size, len(todo))):
        submit(None)
    while running:
        finished, _ = wait(running, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
        for frames in _drain(frames_queue):
            progress.add(frames)
        for future in finished:
            number = running.pop(future)
            try:
                result = future.result()
            except StillError as err:
                raise ManifestError(_image_field(manifest, err.path), str(err)) from None
            except Exception as err:  # a worker's failure, pickled back: one line, no worker traceback
                raise RenderError(f"{type(err).__name__}: {err}") from None
            if unassigned:
                submit(after=number)
            peaks = [max(peaks[0], result.worker_peak_rss_mb), max(peaks[1], result.encoder_peak_rss_mb)]
            progress.segments_done += 1
            if on_segment_done is not None:
                on_segment_done(keep / segments[result.number].file_name)
    for frames in _drain(frames_queue):
        progress.add(frames)
    return peaks[0], peaks[1]


def next_segment(unassigned: list[int], after: int | None, running: set[int]) -> int:
    """Which segment a free worker renders next, given the one it just finished (``after``).

    The next one in order if nobody has it: the crossfade that ended ``after``
    already prepared its first still. Otherwise the longest stretch nobody has
    started: its middle, if a worker is already heading into its start (it
    will carry on there), else its start. Stretches stay long, stills are
    prepared about once each, and the work still splits evenly.
    """
    if after is not None and after + 1 in unassigned:
        return after + 1
    runs: list[list[int]] = []
    for number in sorted(unassigned):
        if runs and runs[-1][-1] == number - 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    longest = max(runs, key=len)  # the first of the longest
    return longest[len(longest) // 2] if longest[0] - 1 in running else longest[0]


def _drain(frames_queue) -> Iterator[int]:
    while True:
        try:
            yield frames_queue.get_nowait()
        except queue.Empty:
            return


def _image_field(manifest: Manifest, path: str) -> str:
    """The manifest field that names the still at absolute ``path``."""
    for i, scene in enumerate(manifest.scenes):
        if path.endswith("/" + scene.image):
            return f"scenes[{i}].image"
    return "scenes"


def _concat_and_mux(segment_files: list[Path], audio: Path, out_path: Path, scratch: Path) -> None:
    """Join the segments with the concat demuxer and add the audio; stream copy, index first."""
    from render_vm.renderer.encoder import ffmpeg_exe

    listing = scratch / "segments.txt"
    # The concat list quotes paths in single quotes; a quote inside is written '\''.
    listing.write_text("".join("file '" + str(f).replace("'", "'\\''") + "'\n" for f in segment_files))
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(audio),
        "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(out_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise RenderError(f"joining segments failed (ffmpeg exited {done.returncode}): {tail}")
