"""The video's sound track: narration on the timeline, music under it, one AAC file.

    seconds = probe_duration(Path("jobs/x/audio/001.mp3"))
    mix_audio(manifest, timeline, Path("jobs/x"), Path("work/audio.m4a"))

The rules come from the contract (``shared/specs/job-manifest.md``) through the
shared :class:`~common.timeline.Timeline`: narration *i* starts at scene *i*'s
start and is cut at the scene's end; music loops or is cut to the video's
length, dips under narration when ``duck``, and fades out over the last second;
the result is normalised to -16 LUFS (EBU R128) and encoded as AAC-LC, 48 kHz,
stereo, exactly ``timeline.total_s`` long (to the sample, before the encoder's
priming and padding, which the MP4 edit list hides).

How, and why this way rather than one ffmpeg filter graph:

* Every clip is decoded once per pass by PyAV and resampled by libswresample
  to float32 48 kHz stereo (mono is spread over both channels, 5.1 downmixed),
  whatever its format, rate or channel count. Placing it is then an addition
  at a sample offset: exact to the sample, with no ``adelay``/``amix`` chain of
  500 inputs (amix also rescales its inputs by their number).
* The mix is made in blocks of about 5 s, so memory stays at a few MB for a
  job of any length (one hour of float32 stereo would be 1.4 GB).
* Loudness needs the whole mix before the first sample can be scaled, so the
  mix is made twice: pass 1 streams it through ffmpeg's ``ebur128`` meter (the
  reference BS.1770 implementation, about 1500x real time) and notes the peak
  of every 10 ms; pass 2 makes it again, applies one gain and a peak limiter,
  and streams it to ffmpeg's AAC encoder. Mixing again costs about 0.6 s of
  CPU per 3 minutes and runs beside the encoder, the slower of the two, so it
  adds little wall time; keeping pass 1's mix instead would take 1.4 GB per
  hour of memory or disk. ``loudnorm`` would be slower (it resamples to
  192 kHz) and, in one pass, is a dynamic compressor rather than a plain gain.
* The AAC encoder (ffmpeg's native one, about 70x real time on one core) is
  the main cost; ``-aac_coder fast`` would halve it at some loss of quality.

Measured on the 2-core build machine, with other work running: a 3-minute,
24-scene job (MP3 narration, looped MP3 music) mixes in 3.9 to 6.5 s wall,
using 1.6 s of CPU in Python and 3.1 s in ffmpeg (2.6 s of it the AAC encoder);
a 500-scene, 62-minute one in 102 s, with 70 MB resident in Python and 68 MB
in ffmpeg.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from common.logs import get_logger
from common.manifest import Manifest
from common.timeline import Timeline
from render_vm.renderer.encoder import ffmpeg_exe

log = get_logger("renderer.audio")

SAMPLE_RATE = 48_000
TARGET_LUFS = -16.0
SILENCE_LUFS = -70.0  # BS.1770's absolute gate: ebur128 reports this for silence; nothing to normalise
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS after normalisation: headroom for the AAC encoder's overshoot
AAC_BITRATE = "192k"

DUCK_DB = -12.0  # music under narration
DUCK_ATTACK_S = 0.2  # the dip starts this long before the first word ...
DUCK_RELEASE_S = 0.6  # ... and the music comes back over this long after the last
MUSIC_FADE_OUT_S = 1.0
CUT_FADE_S = 0.01  # a narration cut at its scene's end fades over 10 ms rather than clicking

HOP_FRAMES = 480  # 10 ms: the limiter's resolution
LIMITER_HOLD_HOPS = 2  # limiter ramps last 2 * 2 + 1 hops (50 ms): smooth, still short
BLOCK_FRAMES = HOP_FRAMES * 546  # about 5.5 s, 2 MB of float32 stereo; a whole number of hops


class AudioError(Exception):
    """An audio file that cannot be used; ``str(err)`` is one line naming the file."""


def probe_duration(path: Path) -> float:
    """The length of an audio file in seconds, counted from its decoded samples.

    Decoding the whole file (about 0.4 ms per second of MP3) rather than trusting
    the header is exact for every format (a VBR MP3 without a Xing header only
    has an estimate), agrees to the sample with what the mixer plays, and proves
    that the file decodes before any video is rendered.
    """
    label = str(path)
    samples = 0
    rate = 0
    for frame in _decoded_frames(Path(path), label):
        samples += frame.samples
        rate = frame.sample_rate
    if samples == 0:
        raise AudioError(f"not a readable audio file: {label}: no audio samples")
    return samples / rate


def mix_audio(manifest: Manifest, timeline: Timeline, job_dir: Path, out_path: Path) -> None:
    """Write the job's sound track to ``out_path``: AAC-LC 48 kHz stereo in an MP4 (.m4a).

    Raises :class:`AudioError` when a clip cannot be decoded, its text naming the
    field first (``scenes[3].narration: not a readable audio file: audio/003.mp3:
    ...``); ``out_path`` is then not created (it is written as ``out_path.part``
    and renamed when complete). A failure of ffmpeg itself is a RuntimeError.
    """
    started = time.monotonic()
    plan = _make_plan(manifest, timeline, Path(job_dir))
    loudness, gain, limiter = None, 1.0, None
    if plan.narrations or plan.music is not None:  # else the track is silence: nothing to measure
        loudness, hop_peaks = _measure(plan)
        gain = _normalising_gain(loudness)
        limiter = _limiter_curve(hop_peaks, gain)
    _encode(_mixed_blocks(plan, gain, limiter), Path(out_path))
    log.info(
        "audio mixed",
        job_id=manifest.job_id,
        duration_s=round(timeline.total_s, 3),
        narrations=len(plan.narrations),
        music=plan.music is not None,
        loudness_in_lufs=loudness,
        gain_db=round(20 * math.log10(gain), 2),
        limited=limiter is not None,
        elapsed_s=round(time.monotonic() - started, 3),
    )


# --------------------------------------------------------------------------
# Decoding: any audio file as float32 48 kHz stereo, read in exact lengths.


def _decoded_frames(path: Path, label: str) -> Iterator[av.AudioFrame]:
    """Every decoded frame of the file's first audio stream, as the file has it."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"not a readable audio file: {label}: no audio stream")
            yield from container.decode(container.streams.audio[0])
    except (av.FFmpegError, OSError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise AudioError(f"not a readable audio file: {label}: {reason}") from None


def _stereo_48k(path: Path, label: str) -> Iterator[np.ndarray]:
    """The file's audio as float32 arrays of shape (frames, 2) at 48 kHz."""
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE)
    for frame in _decoded_frames(path, label):
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1, 2)
    for out in resampler.resample(None):  # flush the resampler's filter tail
        yield out.to_ndarray().reshape(-1, 2)


class _ClipReader:
    """One audio file, decoded as it is read; ``read(n)`` returns exactly n frames.

    Past the clip's end it returns silence, or, with ``loop``, starts the clip again.
    Its errors name the manifest field first, as the command line reports them:
    ``music.src: not a readable audio file: audio/music.mp3: ...``.
    """

    def __init__(self, path: Path, src: str, field: str, loop: bool = False) -> None:
        self._path = path
        self._src = src
        self._field = field
        self._loop = loop
        self._chunks = _stereo_48k(path, src)
        self._pending = np.zeros((0, 2), np.float32)
        self._played_any = False

    def read(self, n: int) -> np.ndarray:
        out = np.zeros((n, 2), np.float32)
        filled = 0
        while filled < n:
            if not len(self._pending):
                try:
                    chunk = next(self._chunks, None)
                except AudioError as err:
                    raise AudioError(f"{self._field}: {err}") from None
                if chunk is None:
                    if not (self._loop and self._played_any):  # an empty clip must not loop forever
                        break
                    self._chunks = _stereo_48k(self._path, self._src)
                    continue
                self._pending = chunk
                self._played_any = True
            take = min(len(self._pending), n - filled)
            out[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        return out

    def close(self) -> None:
        self._chunks.close()  # closes the container now rather than at garbage collection


# --------------------------------------------------------------------------
# The plan: where every clip goes, in sample frames at 48 kHz.


@dataclass(frozen=True)
class _Placement:
    path: Path
    src: str  # the path as the manifest gives it, and its field: for error messages
    field: str
    start: int  # first frame of the scene
    end: int  # the scene's end: the narration is cut here if it is still playing


@dataclass(frozen=True)
class _MusicPlan:
    path: Path
    src: str
    volume: float
    duck_x: np.ndarray | None  # knots of the ducking envelope (frames), or None without ducking
    duck_y: np.ndarray | None  # 0 = full volume, 1 = fully ducked, at each knot


@dataclass(frozen=True)
class _Plan:
    total_frames: int
    narrations: tuple[_Placement, ...]  # in time order, never overlapping
    music: _MusicPlan | None


def _frames(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def _make_plan(manifest: Manifest, timeline: Timeline, job_dir: Path) -> _Plan:
    total = _frames(timeline.total_s)
    narrations = tuple(
        _Placement(
            path=job_dir / slot.narration,
            src=slot.narration,
            field=f"scenes[{slot.index}].narration",
            start=_frames(slot.start_s),
            end=min(_frames(slot.end_s), total),
        )
        for slot in timeline.scenes
        if slot.narration is not None
    )
    music = None
    if manifest.music is not None and manifest.music.volume > 0:
        duck_x, duck_y = _duck_knots(timeline) if manifest.music.duck else (None, None)
        music = _MusicPlan(job_dir / manifest.music.src, manifest.music.src, manifest.music.volume, duck_x, duck_y)
    return _Plan(total_frames=total, narrations=narrations, music=music)


def _duck_knots(timeline: Timeline) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """The ducking envelope as knots for ``np.interp``: 0 = music at full volume, 1 = ducked.

    Computed from the timeline rather than with a sidechain compressor: the
    timeline says exactly when narration plays, so the dip can start *before* the
    first word (a compressor only reacts after it, or needs a delay line), the
    music does not pump in the pauses between words and sentences, the result
    is the same on every run, and it costs one ``np.interp`` per block.
    Narrations closer than attack + release are merged into one dip, so the
    music stays down through the 0.5 s tails between narrated scenes.
    """
    spans: list[list[float]] = []
    for slot in timeline.scenes:
        if slot.narration is None or slot.narration_s <= 0:
            continue
        start, end = slot.start_s, slot.start_s + slot.narration_s
        if spans and start - spans[-1][1] <= DUCK_ATTACK_S + DUCK_RELEASE_S:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    if not spans:
        return None, None
    xs: list[float] = []
    ys: list[float] = []
    for start, end in spans:
        xs += [start - DUCK_ATTACK_S, start, end, end + DUCK_RELEASE_S]
        ys += [0.0, 1.0, 1.0, 0.0]
    return np.array(xs) * SAMPLE_RATE, np.array(ys)


# --------------------------------------------------------------------------
# Mixing, block by block.


_Curve = tuple[np.ndarray, np.ndarray]  # knots (frame, gain) for np.interp


def _mixed_blocks(plan: _Plan, gain: float = 1.0, limiter: _Curve | None = None) -> Iterator[np.ndarray]:
    """The mix as float32 (frames, 2) blocks of ``BLOCK_FRAMES`` (the last one shorter).

    Narrations never overlap, so at most a couple of clips are open at a time.
    """
    waiting = list(plan.narrations)
    playing: list[tuple[_Placement, _ClipReader]] = []
    music = _ClipReader(plan.music.path, plan.music.src, "music.src", loop=True) if plan.music else None
    try:
        for b0 in range(0, plan.total_frames, BLOCK_FRAMES):
            b1 = min(b0 + BLOCK_FRAMES, plan.total_frames)
            block = np.zeros((b1 - b0, 2), np.float32)
            while waiting and waiting[0].start < b1:
                placement = waiting.pop(0)
                playing.append((placement, _ClipReader(placement.path, placement.src, placement.field)))
            for placement, reader in playing:
                _add_narration(block, b0, placement, reader)
                if placement.end <= b1:
                    reader.close()
            playing = [(placement, reader) for placement, reader in playing if placement.end > b1]
            if music is not None:
                block += music.read(b1 - b0) * _music_gain(plan, b0, b1)[:, None]
            if gain != 1.0:
                block *= np.float32(gain)
            if limiter is not None:
                block *= np.interp(np.arange(b0, b1), *limiter).astype(np.float32)[:, None]
            yield block
    finally:
        for _, reader in playing:
            reader.close()
        if music is not None:
            music.close()


def _add_narration(block: np.ndarray, b0: int, placement: _Placement, reader: _ClipReader) -> None:
    """Add the part of a narration that falls in the block starting at frame ``b0``."""
    start = max(placement.start, b0)
    end = min(placement.end, b0 + len(block))
    if start >= end:
        return
    chunk = reader.read(end - start)
    fade_from = placement.end - _frames(CUT_FADE_S)
    if end > fade_from:  # the last 10 ms before the scene's end (silence unless it is cut)
        first = max(start, fade_from)
        ramp = (placement.end - np.arange(first, end)) / _frames(CUT_FADE_S)
        chunk[first - start :] *= ramp.astype(np.float32)[:, None]
    block[start - b0 : end - b0] += chunk


def _music_gain(plan: _Plan, b0: int, b1: int) -> np.ndarray:
    """The music's gain for frames b0..b1: volume, ducking and the final fade-out.

    It changes over tenths of a second, so it is worked out every millisecond and
    interpolated in between: a third of the mixing time saved, no audible difference.
    """
    music = plan.music
    assert music is not None
    step = SAMPLE_RATE // 1000
    grid = np.arange(b0, b1 + step, step, dtype=np.float64)
    gain = np.full(len(grid), music.volume)
    if music.duck_x is not None:
        ducked = np.interp(grid, music.duck_x, music.duck_y)
        ducked = 0.5 - 0.5 * np.cos(np.pi * ducked)  # ease in and out: no corners in the level
        gain *= 10 ** (DUCK_DB * ducked / 20)
    gain *= np.clip((plan.total_frames - grid) / _frames(MUSIC_FADE_OUT_S), 0.0, 1.0)
    return np.interp(np.arange(b0, b1), grid, gain).astype(np.float32)


# --------------------------------------------------------------------------
# Loudness: measure (pass 1), then one gain and a peak limiter (pass 2).


def _measure(plan: _Plan) -> tuple[float, np.ndarray]:
    """Integrated loudness of the unscaled mix (LUFS) and its peak in every 10 ms hop."""
    peaks: list[np.ndarray] = []

    def noting_peaks(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            peaks.append(_hop_peaks(block))
            yield block

    report = _pipe_to_ffmpeg(noting_peaks(_mixed_blocks(plan)), ["-af", "ebur128=framelog=quiet", "-f", "null", "-"])
    return _integrated_loudness(report), np.concatenate(peaks)


def _hop_peaks(block: np.ndarray) -> np.ndarray:
    """The largest absolute sample of each 10 ms hop (blocks hold whole hops but the last)."""
    loudest = np.abs(block).max(axis=1)
    loudest = np.pad(loudest, (0, -len(loudest) % HOP_FRAMES))
    return loudest.reshape(-1, HOP_FRAMES).max(axis=1)


def _integrated_loudness(ebur128_report: str) -> float:
    """The "I: -23.4 LUFS" line of ebur128's summary (the last one printed)."""
    found = re.findall(r"I:\s+(-?(?:inf|[\d.]+)) LUFS", ebur128_report)
    if not found:
        raise RuntimeError("ffmpeg ebur128 printed no integrated loudness")
    return float(found[-1])


def _normalising_gain(loudness: float) -> float:
    """The linear gain that brings the mix to TARGET_LUFS (1 for silence: nothing to scale)."""
    if not math.isfinite(loudness) or loudness <= SILENCE_LUFS:
        return 1.0
    return 10 ** ((TARGET_LUFS - loudness) / 20)


def _limiter_curve(hop_peaks: np.ndarray, gain: float) -> _Curve | None:
    """Knots (frame, gain) that keep every sample under PEAK_CEILING after ``gain``; None if none need it.

    Each hop needs at most ``ceiling / peak``. Taking the minimum over
    ``hold + 1`` hops on each side, then averaging over ``hold`` hops on each
    side, gives a smooth curve that is still at or below every hop's need at
    the two hop centres around any sample, so the linear interpolation between
    them is too: no sample passes the ceiling, and there are no gain steps.
    """
    with np.errstate(divide="ignore"):
        need = np.minimum(1.0, PEAK_CEILING / (hop_peaks.astype(np.float64) * gain))
    if need.min() >= 1.0:
        return None
    hold = LIMITER_HOLD_HOPS
    padded = np.pad(need, hold + 1, constant_values=1.0)
    held = np.lib.stride_tricks.sliding_window_view(padded, 2 * hold + 3).min(axis=1)
    smooth = np.convolve(np.pad(held, hold, mode="edge"), np.full(2 * hold + 1, 1 / (2 * hold + 1)), mode="valid")
    centres = (np.arange(len(need)) + 0.5) * HOP_FRAMES
    return centres, smooth


# --------------------------------------------------------------------------
# ffmpeg: the meter and the encoder, fed raw samples on stdin.


def _encode(blocks: Iterable[np.ndarray], out_path: Path) -> None:
    """Encode the blocks to AAC-LC in an MP4 at ``out_path``, complete or not at all."""
    partial = out_path.with_name(out_path.name + ".part")
    try:
        aac = ["-c:a", "aac", "-profile:a", "aac_low", "-b:a", AAC_BITRATE]
        _pipe_to_ffmpeg(blocks, [*aac, "-f", "mp4", "-y", str(partial)])
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)


def _pipe_to_ffmpeg(blocks: Iterable[np.ndarray], output_args: list[str]) -> str:
    """Run ffmpeg on float32 48 kHz stereo fed from ``blocks``; return its log.

    The log goes to a temporary file rather than a pipe, so a chatty ffmpeg can
    never block while we are still writing to its stdin.
    """
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info",
        "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ch_layout", "stereo", "-i", "pipe:0", *output_args,
    ]
    with tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            with contextlib.suppress(BrokenPipeError):  # ffmpeg stopped early: its exit status and log say why
                for block in blocks:
                    process.stdin.write(block.astype("<f4", copy=False).data)  # no copy on little-endian hosts
                process.stdin.close()
        except BaseException:
            process.kill()  # the mix failed (e.g. AudioError): stop ffmpeg before it finishes a short file
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):  # already closed, unless we stopped early
                process.stdin.close()
            returncode = process.wait()
        log_file.seek(0)
        report = log_file.read().decode("utf-8", errors="replace")
    if returncode != 0:
        last_line = report.strip().splitlines()[-1] if report.strip() else "no output"
        raise RuntimeError(f"ffmpeg exited with {returncode}: {last_line}")
    return report
