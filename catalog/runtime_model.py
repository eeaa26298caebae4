"""The renderer's runtime on a machine, from what one frame costs (catalog/calibration.json).

This renderer composes every frame on the CPU (numpy/OpenCV, one worker
process per pair of cores, each feeding its own encoder) and uses a GPU only
for NVENC encoding. So a job of F frames on a machine with V vCPUs takes

    render_s   = F x (compose_s / usable_cores(V) + encode_s) x granularity
                 + audio_mix_s / usable_cores(V) + start_s + mux_s
    runtime_s  = render_s + boot_s + transfer_s

- compose_s: the calibration's CPU seconds per frame of the renderer's own
  frame loop on one worker, at the output size.
- encode_s: libx264 at the preset (default: the renderer's) from raw frames,
  CPU seconds per frame on one thread, divided by usable_cores(V) as the
  composing is (each worker runs its own encoder); on a GPU with NVENC, the
  NVENC seconds per frame instead, measured where the calibration ran on one,
  else ASSUMED_NVENC_FPS (with its source), marked "assumed". A GPU without
  NVENC (A100, H100) encodes on its vCPUs like any CPU machine. NVENC's time
  is added, not overlapped with composing: the conservative side.
- usable_cores(V): Amdahl's law, 1 / ((1 - p) + p / V), with the parallel
  fraction p fitted (least squares in 1/speed-up) to the speed-ups measured at
  1..N workers (N = the calibrating machine's cores). Beyond N it is an
  extrapolation by that rule, not a measurement; with no point beyond one
  worker, p = 1 (linear) and the estimate says "scaling not measured".
  The speed-ups are CPU-time efficiencies (N x CPU per frame at 1 / at N), so
  other load on the calibrating machine does not count as lost scaling; what
  does count is what N busy workers cost each other (caches, memory, SMT).
- granularity: the renderer draws one segment per scene, W at a time
  (W = max(2, V // 2) workers, as ``pipeline.default_workers``, at most one per
  segment), each worker a pipeline with its own encoder (``frames_wall_s``):
  while all W are busy they share the usable cores evenly; in the last round,
  with fewer busy, a worker goes no faster than the slower of its two stages.
  The ratio of that to the even share is the granularity (1 when S is a
  multiple of W; for 3 segments on 2 cores about 1.1 to 1.33, by how evenly
  composing and encoding split a frame). NVENC's share is not scaled: one
  engine serves every worker.
- audio_mix_s: the mix (which runs beside the frames, on the same cores), CPU
  seconds per minute of video; start_s: spawning a worker and preparing the job
  (per scene), and starting one encoder per scene (its CPU seconds, spread over
  the usable cores like the frames); mux_s: concat + stream copy, per minute.
- transfer_s: the job's inputs and its output through Cloud Storage at the
  calibration's stated rate (a documented default, not a cloud measurement).

Scenes: a job of unknown shape is planned at one scene per SCENE_S seconds (the
standard benchmark job's 24 scenes in 3 minutes).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.checks import CatalogError

DEFAULT_CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
ENV_CALIBRATION = "CATALOG_CALIBRATION"
DEFAULT_SIZE = "1920x1080"
SCENE_S = 7.5

# NVENC frames per second at 1920x1080 (H.264) where no calibration measured one. Source: NVIDIA's NVENC
# application note for its first-generation (Kepler) encoder: "up to 8X real-time HD video encoding
# (1080p @30 fps) ... 240 frames per second of 1920 x 1080" (quoted at
# https://forum.handbrake.fr/viewtopic.php?f=26&t=32442&p=151792); NVIDIA's current note says NVENC
# performance "has increased steadily" with every generation since, Turing (T4) and Ada (L4) included
# (https://docs.nvidia.com/video-technologies/video-codec-sdk/13.0/nvenc-application-note/index.html).
# So 240 fps is a floor for T4 and L4, not their figure. Other sizes scale by pixels. NOT MEASURED here.
ASSUMED_NVENC_FPS = 240.0
ASSUMED_NVENC_SOURCE = ("assumed 240 fps at 1080p: NVIDIA's Kepler NVENC figure (8x real-time 1080p30), a floor "
                        "for Turing/Ada; not measured")


@dataclass(frozen=True)
class SizeCosts:
    """What one frame costs at one output size on the calibrating machine."""

    size: str  # "1920x1080"
    pixels: int
    fps: int
    compose_s: float  # CPU s per frame, one worker
    speedups: dict[int, float]  # workers -> measured speed-up
    encode_s: dict[str, float]  # x264 preset -> CPU s per frame, one thread
    bytes_per_frame: dict[str, float]  # x264 preset -> output bytes per frame
    nvenc_s: float | None  # measured NVENC s per frame; None: not measured
    audio_mix_s_per_min: float  # CPU s
    mux_s_per_min: float
    prepare_s_per_scene: float
    assets_bytes_per_scene: float
    encoder_start_s: float = 0.0  # CPU s to start one encoder (one per scene, so per segment)


@dataclass(frozen=True)
class Calibration:
    source: str
    machine: dict[str, Any]
    default_preset: str
    worker_start_s: float
    sizes: dict[str, SizeCosts]
    transfer_mb_per_s: float
    transfer_fixed_s: float
    transfer_source: str
    warnings: tuple[str, ...] = ()  # what bench/calibrate.py found doubtful about its own figures

    def size(self, size: str) -> SizeCosts:
        if size not in self.sizes:
            raise CatalogError(f"calibration: size {size}: not calibrated (have {', '.join(self.sizes)})")
        return self.sizes[size]


@dataclass(frozen=True)
class Estimate:
    """One machine's predicted runtime, term by term (seconds)."""

    frames: int
    vcpus: int
    usable_cores: float
    compose_s: float
    encoder: str  # "libx264 veryfast" or "h264_nvenc"
    encode_s: float
    encode_source: str  # "measured", "assumed" (NVENC), or "measured on the CPU"
    other_s: float  # worker start + prepare + audio mix + mux
    render_s: float
    boot_s: float
    transfer_s: float
    scaling: str  # how usable_cores was found
    segments: int = 1
    workers: int = 1
    granularity: float = 1.0  # ceil(segments / workers) x workers / segments
    cpu_s: float = 0.0  # CPU seconds the render takes (on the CPU; NVENC's work excluded): less sensitive to other load than wall time

    @property
    def runtime_s(self) -> float:
        return self.render_s + self.boot_s + self.transfer_s

    def terms(self) -> str:
        """The arithmetic in one line, for the estimate's table and the decision's reasons."""
        nvenc = " (NVENC assumed)" if self.encode_source == "assumed" else ""
        rounds = (f" (x{self.granularity:.2f}: {self.segments} segments on {self.workers} workers)"
                  if self.granularity > 1.0001 else "")
        return (f"{self.frames} fr: compose {self.compose_s:.0f}s on {self.usable_cores:.1f}/{self.vcpus} cores "
                f"+ encode {self.encode_s:.0f}s {self.encoder}{nvenc}{rounds} + other {self.other_s:.0f}s "
                f"+ boot {self.boot_s:.0f}s + transfer {self.transfer_s:.0f}s")

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames, "vcpus": self.vcpus, "usable_cores": round(self.usable_cores, 2),
            "compose_s": round(self.compose_s, 1), "encoder": self.encoder, "encode_s": round(self.encode_s, 1),
            "encode_source": self.encode_source, "other_s": round(self.other_s, 1),
            "render_s": round(self.render_s, 1), "boot_s": round(self.boot_s, 1),
            "transfer_s": round(self.transfer_s, 1), "scaling": self.scaling, "cpu_s": round(self.cpu_s, 1),
            "segments": self.segments, "workers": self.workers, "granularity": round(self.granularity, 3),
        }


def parallel_fraction(speedups: Mapping[int, float]) -> float | None:
    """Amdahl's p fitted to measured speed-ups: 1/S - 1 = p (1/N - 1), least squares; None without N > 1."""
    points = [(1 / n - 1, 1 / s - 1) for n, s in speedups.items() if n > 1]
    if not points:
        return None
    p = sum(x * y for x, y in points) / sum(x * x for x, _ in points)
    return min(1.0, max(0.0, p))


def usable_cores(vcpus: int, p: float) -> float:
    return 1 / ((1 - p) + p / vcpus)


def renderer_workers(vcpus: int) -> int:
    """The renderer's worker count on `vcpus` (render_vm.renderer.pipeline.default_workers; a test holds them equal)."""
    return max(2, vcpus // 2)


def frames_wall_s(segment_frames: list[int], workers: int, compose_s: float, encode_s: float, threads: int,
                  cores: float) -> float:
    """Wall seconds to compose and encode the segments, handed out in order to `workers` pipelines.

    A worker is a pipeline: it composes frame n + 1 while its own encoder encodes frame n. So a frame
    takes the slower of the two stages (composing, or encoding on the encoder's `threads`), and no
    less than the pipeline's share of the usable cores: k busy workers need k x (compose + encode)
    CPU seconds a frame from `cores`. The last segments run with fewer workers busy; a worker does
    not go faster than its own pipeline for it, which is what makes a job of few segments slower
    than the even share. CPU seconds per frame in, the even share comes out when every round is full.
    """
    pending, running, elapsed = list(segment_frames), [], 0.0
    while pending or running:
        while pending and len(running) < workers:
            running.append(float(pending.pop(0)))
        per_frame = max(compose_s, encode_s / threads, len(running) * (compose_s + encode_s) / cores)
        step = min(running)  # frames until the first busy worker finishes its segment
        elapsed += step * per_frame
        running = [left - step for left in running if left - step > 1e-9]
    return elapsed


def estimate(
    calibration: Calibration,
    video_length_s: float,
    *,
    vcpus: int,
    has_nvenc: bool,
    size: str = DEFAULT_SIZE,
    preset: str | None = None,
    scenes: int | None = None,
    boot_s: float = 0.0,
    with_transfer: bool = True,
) -> Estimate:
    """Predict a render of `video_length_s` seconds at `size` on a machine with `vcpus` (and NVENC or not)."""
    costs = calibration.size(size)
    preset = preset or calibration.default_preset
    if preset not in costs.encode_s:
        raise CatalogError(f"calibration: preset {preset}: not calibrated at {size} (have {', '.join(costs.encode_s)})")
    frames = round(video_length_s * costs.fps)
    scenes = scenes if scenes is not None else max(1, math.ceil(video_length_s / SCENE_S))
    p = parallel_fraction(costs.speedups)
    measured_to = max(costs.speedups)
    if p is None:
        p, scaling = 1.0, "scaling not measured (one core): linear assumed"
    else:
        scaling = (f"Amdahl p={p:.3f} fitted to 1..{measured_to} workers"
                   + (f", extrapolated to {vcpus}" if vcpus > measured_to else ""))
    cores = usable_cores(vcpus, p)
    workers = min(renderer_workers(vcpus), scenes)
    threads = max(1, vcpus // renderer_workers(vcpus))  # x264 threads per encoder, as render_job sets them
    segments = [frames // scenes + (1 if i < frames % scenes else 0) for i in range(scenes)]
    if has_nvenc:
        if costs.nvenc_s is not None:
            per_frame, source = costs.nvenc_s, "measured"
        else:
            per_frame, source = costs.pixels / (1920 * 1080 * ASSUMED_NVENC_FPS), "assumed"
        encoder, encode_s = "h264_nvenc", frames * per_frame
        compose_s = frames_wall_s(segments, workers, costs.compose_s, 0.0, threads, cores)
        granularity = compose_s / (frames * costs.compose_s / cores)
    else:
        encoder, source = f"libx264 {preset}", "measured on the CPU"
        x264 = costs.encode_s[preset]
        both_s = frames_wall_s(segments, workers, costs.compose_s, x264, threads, cores)
        granularity = both_s / (frames * (costs.compose_s + x264) / cores)
        compose_s = both_s * costs.compose_s / (costs.compose_s + x264)
        encode_s = both_s - compose_s
    minutes = video_length_s / 60
    encoder_starts = 0.0 if has_nvenc else scenes * costs.encoder_start_s  # NVENC's start: not measured here
    other_s = (calibration.worker_start_s + scenes * costs.prepare_s_per_scene + minutes * costs.mux_s_per_min
               + (minutes * costs.audio_mix_s_per_min + encoder_starts) / cores)
    transfer_s = 0.0
    if with_transfer:
        megabytes = (scenes * costs.assets_bytes_per_scene + frames * costs.bytes_per_frame[preset]) / 1e6
        transfer_s = calibration.transfer_fixed_s + megabytes / calibration.transfer_mb_per_s
    fixed_s = calibration.worker_start_s + scenes * costs.prepare_s_per_scene + minutes * costs.mux_s_per_min
    cpu_s = (frames * (costs.compose_s + (0.0 if has_nvenc else costs.encode_s[preset]))
             + minutes * costs.audio_mix_s_per_min + encoder_starts + fixed_s)
    return Estimate(
        frames=frames, vcpus=vcpus, usable_cores=cores, compose_s=compose_s, encoder=encoder, encode_s=encode_s,
        encode_source=source, other_s=other_s, render_s=compose_s + encode_s + other_s, boot_s=boot_s,
        transfer_s=transfer_s, scaling=scaling, cpu_s=cpu_s, segments=scenes, workers=workers,
        granularity=granularity,
    )


# ---------------------------------------------------------------- loading and validating


def load_calibration(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Calibration:
    """The calibration file: `path`, else $CATALOG_CALIBRATION, else the bundled catalog/calibration.json."""
    env = os.environ if environ is None else environ
    chosen = Path(path) if path is not None else Path(env.get(ENV_CALIBRATION) or DEFAULT_CALIBRATION_PATH)
    return _load_cached(str(chosen.resolve()), _mtime(chosen))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


@lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: float) -> Calibration:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise CatalogError(f"calibration: {path}: cannot read: {err.strerror or err}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise CatalogError(f"calibration: {path}: not valid JSON (line {err.lineno}, column {err.colno})") from None
    return parse_calibration(document, source=path)


def parse_calibration(document: object, source: str = "<memory>") -> Calibration:
    """Validate a calibration document (what bench/calibrate.py writes); a bad field is one line naming it."""
    doc = _mapping(document, "")
    if doc.get("version") != 1:
        raise CatalogError(f"calibration: version: must be 1, got {doc.get('version')!r}")
    machine = _mapping(_get(doc, "machine", ""), "machine")
    for key in ("cpu_model", "date", "ffmpeg"):
        if not isinstance(machine.get(key), str):
            raise CatalogError(f"calibration: machine.{key}: must be a string, got {machine.get(key)!r}")
    _whole(_get(machine, "cores", "machine"), "machine.cores")
    preset = _get(doc, "default_preset", "")
    if not isinstance(preset, str):
        raise CatalogError(f"calibration: default_preset: must be a preset name, got {preset!r}")
    sizes_doc = _mapping(_get(doc, "sizes", ""), "sizes")
    if not sizes_doc:
        raise CatalogError("calibration: sizes: must list at least one output size")
    sizes = {name: _size(name, entry, preset) for name, entry in sizes_doc.items()}
    transfer = _mapping(_get(doc, "transfer", ""), "transfer")
    return Calibration(
        source=source, machine=machine, default_preset=preset,
        worker_start_s=_number(_get(doc, "worker_start_s", ""), "worker_start_s", zero_ok=True),
        sizes=sizes,
        transfer_mb_per_s=_number(_get(transfer, "mb_per_s", "transfer"), "transfer.mb_per_s"),
        transfer_fixed_s=_number(_get(transfer, "fixed_s", "transfer"), "transfer.fixed_s", zero_ok=True),
        transfer_source=str(transfer.get("source", "")),
        warnings=tuple(str(w) for w in doc.get("warnings", []) or []),
    )


def _size(name: object, entry: object, preset: str) -> SizeCosts:
    at = f"sizes.{name}"
    try:
        width, height = (int(part) for part in str(name).split("x"))
    except ValueError:
        raise CatalogError(f"calibration: {at}: must be named WIDTHxHEIGHT, like 1920x1080") from None
    raw = _mapping(entry, at)
    compose = _mapping(_get(raw, "compose", at), f"{at}.compose")
    cpu = _mapping(_get(compose, "cpu_s_per_frame", f"{at}.compose"), f"{at}.compose.cpu_s_per_frame")
    speed = _mapping(_get(compose, "speedup", f"{at}.compose"), f"{at}.compose.speedup")
    if "1" not in cpu:
        raise CatalogError(f"calibration: {at}.compose.cpu_s_per_frame.1: required field is missing")
    speedups = {}
    for workers, value in speed.items():
        if not str(workers).isdigit() or int(workers) < 1:
            raise CatalogError(f"calibration: {at}.compose.speedup.{workers}: keys are worker counts 1, 2, ...")
        speedups[int(workers)] = _number(value, f"{at}.compose.speedup.{workers}")
    encode = _mapping(_get(raw, "encode_x264", at), f"{at}.encode_x264")
    if preset not in encode:
        raise CatalogError(f"calibration: {at}.encode_x264.{preset}: required field is missing (the default preset)")
    encode_s, bytes_per_frame = {}, {}
    for name_, figures in encode.items():
        one = _mapping(_get(_mapping(figures, f"{at}.encode_x264.{name_}"), "threads_1", f"{at}.encode_x264.{name_}"),
                       f"{at}.encode_x264.{name_}.threads_1")
        encode_s[name_] = _number(_get(one, "cpu_s", f"{at}.encode_x264.{name_}.threads_1"),
                                  f"{at}.encode_x264.{name_}.threads_1.cpu_s")
        bytes_per_frame[name_] = _number(_get(one, "bytes_per_frame", f"{at}.encode_x264.{name_}.threads_1"),
                                         f"{at}.encode_x264.{name_}.threads_1.bytes_per_frame")
    nvenc = _mapping(_get(raw, "nvenc", at), f"{at}.nvenc")
    nvenc_s = nvenc.get("wall_s")
    return SizeCosts(
        size=str(name), pixels=width * height, fps=_whole(_get(raw, "fps", at), f"{at}.fps"),
        compose_s=_number(cpu["1"], f"{at}.compose.cpu_s_per_frame.1"), speedups=speedups or {1: 1.0},
        encode_s=encode_s, bytes_per_frame=bytes_per_frame,
        nvenc_s=None if nvenc_s is None else _number(nvenc_s, f"{at}.nvenc.wall_s"),
        audio_mix_s_per_min=_number(_get(raw, "audio_mix_cpu_s_per_min", at), f"{at}.audio_mix_cpu_s_per_min",
                                    zero_ok=True),
        mux_s_per_min=_number(_get(raw, "mux_s_per_min", at), f"{at}.mux_s_per_min", zero_ok=True),
        prepare_s_per_scene=_number(_get(raw, "prepare_s_per_scene", at), f"{at}.prepare_s_per_scene",
                                    zero_ok=True),
        assets_bytes_per_scene=_number(_get(raw, "assets_bytes_per_scene", at), f"{at}.assets_bytes_per_scene",
                                       zero_ok=True),
        encoder_start_s=_number(_get(raw, "encoder_start_cpu_s", at), f"{at}.encoder_start_cpu_s", zero_ok=True),
    )


def _mapping(value: object, at: str) -> dict:
    if not isinstance(value, dict):
        raise CatalogError(f"calibration: {at or 'the document'}: must be an object, got {type(value).__name__}")
    return value


def _get(doc: dict, key: str, at: str) -> Any:
    if key not in doc:
        raise CatalogError(f"calibration: {at + '.' if at else ''}{key}: required field is missing")
    return doc[key]


def _number(value: object, at: str, zero_ok: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        what = "a number >= 0" if zero_ok else "a positive number"
        raise CatalogError(f"calibration: {at}: must be {what}, got {value!r}")
    return float(value)


def _whole(value: object, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(f"calibration: {at}: must be a whole number >= 1, got {value!r}")
    return value
