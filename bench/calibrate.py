"""Calibration: what one frame of this renderer costs on this machine, for the catalog's runtime model.

    .venv/bin/python bench/calibrate.py [--quick] [--out catalog/calibration.json]

(about 2-3 minutes on 2 cores; --quick under 1 minute, fewer frames and repeats, default preset only)

Per output size (1280x720 and 1920x1080 at 30 fps) it measures, on a job made by
``render_vm.sample_job`` (Ken Burns, crossfades, captions):

- composing: the renderer's own frame loop (``compose._write_frames``), its raw
  frames thrown away, on 1 worker process and on N = 2..cores workers at once
  (contiguous runs of segments each, as the renderer hands them out). Figures
  per frame: wall seconds, and CPU seconds; the speed-up at N is
  N x CPU-per-frame(1) / CPU-per-frame(N), i.e. the parallel efficiency with
  the cores to itself. CPU time is what other load on a shared machine does not
  change; the wall figures are kept beside it.
- encoding: libx264 at each preset from ultrafast to medium at the renderer's
  CRF (``encoder.X264_CRF``), from raw frames the composer made (one scene
  period: the middle of scene 1 to the middle of scene 2), with 1 thread
  and with all threads; seconds per frame (wall and CPU), and output bytes per
  frame (what a render uploads).
- NVENC: measured when ``encoder.nvenc_available()``; else null, "not measured: no GPU".
- audio mix (``audio.mix_audio``, which runs beside the frames in the renderer)
  and muxing (concat + stream copy, ``pipeline._concat_and_mux``): seconds per
  minute of video.
- the job's inputs (stills, narration, music) in bytes per scene, what a VM downloads.
- start: spawning one worker process that imports the composer, and preparing
  the job (manifest, narration probes, still hashes, segment plan).
- transfer: upload and download of a file through google-cloud-storage to a
  local fake-gcs-server (loopback: an upper bound, not a cloud figure). The
  model uses the documented default written into the file instead.

It prints the load average at start and end and CPU seconds beside wall seconds,
takes the median of repeats, and writes a small JSON file (the machine it ran on
and the date inside) that ``catalog/runtime_model.py`` reads.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from render_vm.renderer.encoder import (
    COLOUR_TAGS,
    DEFAULT_PRESET,
    X264_CRF,
    Encoder,
    ffmpeg_exe,
    nvenc_available,
)

SIZES = ((1280, 720), (1920, 1080))
FPS = 30
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
SCENE_S = 7.5  # the standard benchmark job's scenes (bench/render.py: 24 in 3 minutes); the model's too
# Documented default for GCS transfer from a VM in the same region (the loopback stand-in says nothing about it).
TRANSFER_DEFAULT = {
    "mb_per_s": 100.0,
    "fixed_s": 2.0,
    "source": "assumed, not measured against Cloud Storage: 100 MB/s, a round figure below Compute Engine's "
              "per-VM network limits (https://cloud.google.com/compute/docs/network-bandwidth, not re-read "
              "from here: unverified), and 2 s of request setup per job",
}
ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time of this process and every finished descendant (workers, ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- composing


class _Sink:
    """Stands in for the encoder: the renderer's own ``FramePipe`` to a process that discards the frames,
    so the composer pays for handing frames over as in a render; optionally keeps frames
    [keep_from, keep_from + keep_frames) raw, for the encoders."""

    def __init__(self, keep: Path | None, keep_from: int, keep_frames: int) -> None:
        from render_vm.renderer.frame_pipe import FramePipe

        self.frames = 0
        self.drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.pipe = FramePipe(self.drain.stdin.fileno())
        self.keep = open(keep, "wb") if keep is not None else None  # noqa: SIM115 (closed in close())
        self.keep_from, self.keep_to = keep_from, keep_from + keep_frames

    def buffers(self, frame_bytes: int) -> int:
        return self.pipe.buffers(frame_bytes)

    def write(self, buffer) -> None:
        self.pipe.write(buffer)
        if self.keep is not None and self.keep_from <= self.frames < self.keep_to:
            self.keep.write(buffer.data)
        self.frames += 1

    def close(self) -> None:
        self.drain.stdin.close()
        self.drain.wait()
        self.pipe.release()
        if self.keep is not None:
            self.keep.close()


def _compose_worker(segments, keep: str | None, keep_from: int, keep_frames: int) -> tuple[int, float, float]:
    """In a worker process: draw `segments` in order with the renderer's own loop. (frames, wall, cpu)."""
    from render_vm.renderer import compose

    compose.init_worker(None)
    sink = _Sink(Path(keep) if keep else None, keep_from, keep_frames)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for segment in segments:
        compose._write_frames(segment, sink)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sink.close()
    return sink.frames, wall, cpu


def _warm() -> float:
    started = time.perf_counter()
    from render_vm.renderer import compose  # noqa: F401  (the imports a worker pays for)

    return time.perf_counter() - started


def measure_compose(segments, workers: int, keep: Path | None, keep_from: int, keep_frames: int) -> dict:
    """All `segments`, split into `workers` contiguous runs, drawn at once. Per-frame wall and CPU seconds."""
    context = multiprocessing.get_context("spawn")
    runs = [segments[i * len(segments) // workers:(i + 1) * len(segments) // workers] for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(_warm_noop, range(workers)))  # start and import first: startup is measured apart
        wall0 = time.perf_counter()
        futures = [pool.submit(_compose_worker, run, str(keep) if (keep and i == 0) else None, keep_from, keep_frames)
                   for i, run in enumerate(runs) if run]
        results = [f.result() for f in futures]
        wall = time.perf_counter() - wall0
    frames = sum(r[0] for r in results)
    return {"frames": frames, "wall_s": wall / frames, "cpu_s": sum(r[2] for r in results) / frames}


def _warm_noop(_: int) -> None:
    _warm()


def measure_startup() -> float:
    """Seconds to spawn one worker process that has imported the composer (what every render pays once)."""
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(_warm_noop, 0).result()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- encoding


def _encode_once(raw: Path, width: int, height: int, frames: int, preset: str, threads: int, out: Path):
    encoder = Encoder("libx264", preset, threads)
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(FPS), *COLOUR_TAGS,
        "-i", str(raw), "-frames:v", str(frames), *encoder.args, "-an", "-f", "mp4", str(out),
    ]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - wall0, cpu_seconds() - cpu0


def measure_encode(raw: Path, width: int, height: int, frames: int, preset: str, threads: int, out: Path,
                   start: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Per frame, net of one encoder's start (`start`: wall, CPU of encoding one frame), which the model
    counts per segment: the renderer starts one encoder per scene."""
    wall, cpu = _encode_once(raw, width, height, frames, preset, threads, out)
    size = out.stat().st_size
    return {"wall_s": max(0.0, wall - start[0]) / (frames - 1), "cpu_s": max(0.0, cpu - start[1]) / (frames - 1),
            "bytes_per_frame": size / frames}


def measure_nvenc(raw: Path, width: int, height: int, frames: int, out: Path) -> dict | None:
    if not nvenc_available():
        return None
    encoder = Encoder("h264_nvenc", "p3", 0)
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(FPS), *COLOUR_TAGS,
        "-i", str(raw), *encoder.args, "-an", "-f", "mp4", str(out),
    ]
    wall0 = time.perf_counter()
    subprocess.run(command, check=True)
    return {"wall_s": (time.perf_counter() - wall0) / frames, "preset": "p3", "source": "measured"}


# --------------------------------------------------------------------------- audio, mux, transfer


def measure_audio_and_mux(job: Path, segment_file: Path, segment_s: float, scratch: Path) -> dict:
    from common.manifest import load_manifest
    from render_vm.renderer import pipeline

    manifest = load_manifest(job)
    timeline = pipeline.job_timeline(manifest, job)
    audio = scratch / "audio.m4a"
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    pipeline._mix(manifest, timeline, job, audio)
    mix_wall, mix_cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    copies = max(1, round(timeline.total_s / segment_s))
    out = scratch / "muxed.mp4"
    wall0 = time.perf_counter()
    pipeline._concat_and_mux([segment_file] * copies, audio, out, scratch)
    mux_wall = time.perf_counter() - wall0
    minutes = timeline.total_s / 60
    return {"audio_mix_s_per_min": mix_wall / minutes, "audio_mix_cpu_s_per_min": mix_cpu / minutes,
            "mux_s_per_min": mux_wall / (copies * segment_s / 60)}


def prepare_seconds(job: Path) -> tuple[float, int]:
    """Manifest, narration probes, still checks and hashes, segment plan: what render_job does before drawing."""
    from common.manifest import load_manifest
    from render_vm.renderer import pipeline
    from render_vm.renderer.segments import plan_segments

    started = time.perf_counter()
    manifest = load_manifest(job)
    timeline = pipeline.job_timeline(manifest, job)
    pipeline._check_stills(manifest, job)
    plan_segments(manifest, timeline, job, Encoder("libx264", DEFAULT_PRESET, 1))
    return time.perf_counter() - started, len(manifest.scenes)


def measure_transfer(scratch: Path, megabytes: int) -> dict | None:
    """Upload and download `megabytes` through google-cloud-storage to a local fake-gcs-server; None if absent."""
    try:
        from infra.local.emulators import fake_gcs_binary, storage_client
        binary = fake_gcs_binary()
    except Exception as err:  # the stand-in is a dev dependency; its absence is not an error here
        return {"skipped": f"fake-gcs-server not available: {err}"}
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = scratch / "gcs"
    root.mkdir()
    server = subprocess.Popen(
        [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "filesystem",
         "-filesystem-root", str(root), "-external-url", f"http://127.0.0.1:{port}", "-log-level", "error"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return {"skipped": "fake-gcs-server did not start"}
                time.sleep(0.05)
        client = storage_client(f"http://127.0.0.1:{port}", "calibration")
        bucket = client.create_bucket("calibration")
        payload = scratch / "payload.bin"
        payload.write_bytes(os.urandom(megabytes << 20))
        blob = bucket.blob("payload.bin")
        started = time.perf_counter()
        blob.upload_from_filename(str(payload))
        up = time.perf_counter() - started
        started = time.perf_counter()
        blob.download_to_filename(str(scratch / "payload.back"))
        down = time.perf_counter() - started
        return {"upload_mb_per_s": megabytes / up, "download_mb_per_s": megabytes / down, "megabytes": megabytes,
                "where": "google-cloud-storage client to a local fake-gcs-server over loopback (an upper bound)"}
    finally:
        server.kill()
        server.wait()


# --------------------------------------------------------------------------- per size


def calibrate_size(width: int, height: int, scratch: Path, quick: bool) -> dict:
    from common.manifest import load_manifest
    from render_vm.renderer import pipeline
    from render_vm.renderer.segments import plan_segments
    from render_vm.sample_job import make_sample_job

    scenes = 2  # of SCENE_S each: the motion per frame and the share of crossfade frames of a typical job
    job = scratch / f"job-{height}"
    make_sample_job(job, scenes=scenes, width=width, height=height, fps=FPS, seconds_per_scene=SCENE_S,
                    job_id=f"calibrate-{height}")
    prepare_s, scene_count = prepare_seconds(job)
    assets = sum(f.stat().st_size for f in job.rglob("*") if f.is_file())  # what a VM downloads
    manifest = load_manifest(job)
    timeline = pipeline.job_timeline(manifest, job)
    segments = plan_segments(manifest, timeline, job, Encoder("libx264", DEFAULT_PRESET, 1))
    repeats = 1 if quick else 3
    cores = os.cpu_count() or 1
    # The encoders get one whole scene period, the middle of scene 1 to the middle of scene 2: moving
    # frames and one crossfade in a typical job's proportion. (90 frames centred on the crossfade, the
    # earlier window, measured 6.0-7.1 ms a frame at 720p superfast against 5.3-5.7 for this one, 3 runs
    # each, 2026-12-02; the rest of the earlier calibration's excess was a busier host.)
    keep_frames = round(SCENE_S * FPS)
    keep_from = round(SCENE_S / 2 * FPS)
    raw = scratch / f"raw-{height}.yuv"

    compose: dict[int, dict] = {}
    for workers in range(1, cores + 1):
        runs = [measure_compose(segments, workers, raw if (workers == 1 and r == 0) else None, keep_from,
                                keep_frames) for r in range(repeats)]
        compose[workers] = {"wall_s": statistics.median(r["wall_s"] for r in runs),
                            "cpu_s": statistics.median(r["cpu_s"] for r in runs), "frames": runs[0]["frames"]}
        print(f"  {width}x{height} compose on {workers} worker(s): {compose[workers]['wall_s'] * 1000:6.2f} ms wall, "
              f"{compose[workers]['cpu_s'] * 1000:6.2f} ms CPU per frame ({compose[workers]['frames']} frames, "
              f"median of {repeats}), load {load()}")
    one = compose[1]["cpu_s"]
    speedup = {str(n): round(n * one / c["cpu_s"], 3) for n, c in compose.items()}
    wall_speedup = {str(n): round(compose[1]["wall_s"] / c["wall_s"], 3) for n, c in compose.items()}

    frames = keep_frames
    starts = [_encode_once(raw, width, height, 1, DEFAULT_PRESET, 1, scratch / f"one-{height}.mp4")
              for _ in range(repeats + 2)]
    start = (statistics.median(w for w, _ in starts), statistics.median(c for _, c in starts))
    print(f"  {width}x{height} encoder start (one frame): {start[0] * 1000:.0f} ms wall, {start[1] * 1000:.0f} ms CPU")
    encode: dict[str, dict] = {}
    for preset in ((DEFAULT_PRESET,) if quick else PRESETS):
        entry = {}
        for threads in sorted({1, cores}):
            times = repeats if preset == DEFAULT_PRESET else 1  # the default is the one the model uses
            runs = [measure_encode(raw, width, height, frames, preset, threads, scratch / f"enc-{height}.mp4", start)
                    for _ in range(times)]
            entry[f"threads_{threads}"] = {key: round(statistics.median(r[key] for r in runs), 6)
                                           for key in ("wall_s", "cpu_s", "bytes_per_frame")}
        encode[preset] = entry
        one_t = entry["threads_1"]
        print(f"  {width}x{height} libx264 {preset:9} crf {X264_CRF}: {one_t['wall_s'] * 1000:6.2f} ms/frame on 1 thread"
              + (f", {entry[f'threads_{cores}']['wall_s'] * 1000:6.2f} on {cores}" if cores > 1 else "")
              + f" ({one_t['bytes_per_frame'] / 1000:.0f} kB/frame)")
    _encode_once(raw, width, height, frames, DEFAULT_PRESET, 1, scratch / f"seg-{height}.mp4")
    nvenc = measure_nvenc(raw, width, height, frames, scratch / f"nvenc-{height}.mp4")
    extras = measure_audio_and_mux(job, scratch / f"seg-{height}.mp4", frames / FPS, scratch)
    raw.unlink(missing_ok=True)
    return {
        "fps": FPS,
        "compose": {
            "frames": compose[1]["frames"],
            "wall_s_per_frame": {str(n): round(c["wall_s"], 6) for n, c in compose.items()},
            "cpu_s_per_frame": {str(n): round(c["cpu_s"], 6) for n, c in compose.items()},
            "speedup": speedup,
            "wall_speedup": wall_speedup,
        },
        "encoder_start_s": round(start[0], 4),
        "encoder_start_cpu_s": round(start[1], 4),
        "encode_x264": encode,
        "nvenc": nvenc if nvenc is not None else {"wall_s": None, "note": "not measured: no GPU"},
        "audio_mix_s_per_min": round(extras["audio_mix_s_per_min"], 3),
        "audio_mix_cpu_s_per_min": round(extras["audio_mix_cpu_s_per_min"], 3),
        "mux_s_per_min": round(extras["mux_s_per_min"], 3),
        "prepare_s_per_scene": round(prepare_s / scene_count, 4),
        "assets_bytes_per_scene": round(assets / scene_count),
    }


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {"cpu_model": model, "cores": os.cpu_count() or 1, "platform": platform.platform(),
            "ffmpeg": version, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repeats, default preset only")
    parser.add_argument("--out", type=Path, default=ROOT / "catalog" / "calibration.json")
    args = parser.parse_args(argv)
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    load_start = os.getloadavg()
    print(f"calibration on {os.cpu_count()} cores, load average {load()} at start")
    scratch = Path(tempfile.mkdtemp(prefix="calibrate-"))
    try:
        startup = statistics.median(measure_startup() for _ in range(1 if args.quick else 3))
        print(f"  worker start (spawn + import the composer): {startup:.2f} s")
        sizes = {}
        for width, height in SIZES:
            sizes[f"{width}x{height}"] = calibrate_size(width, height, scratch, args.quick)
        transfer_local = measure_transfer(scratch, 16 if args.quick else 64)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    cores, load_end = os.cpu_count() or 1, os.getloadavg()
    warnings = []
    if max(load_start[0], load_end[0]) > cores:
        warnings.append(f"load average {max(load_start[0], load_end[0]):.1f} on {cores} cores while measuring: "
                        f"other work shared the cores; per-frame CPU figures and speed-ups are noisy, re-run "
                        f"in a quiet window")
    for size, entry in sizes.items():
        for workers, speedup in entry["compose"]["speedup"].items():
            if speedup > int(workers) * 1.02:
                warnings.append(f"{size}: measured speed-up {speedup} on {workers} workers is above linear "
                                f"(noise); the model clips it to linear")
    for warning in warnings:
        print(f"  WARNING: {warning}")
    document = {
        "version": 1,
        "machine": machine(),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]},
        "warnings": warnings,
        "quick": args.quick,
        "default_preset": DEFAULT_PRESET,
        "crf": X264_CRF,
        "worker_start_s": round(startup, 3),
        "sizes": sizes,
        "transfer": {**TRANSFER_DEFAULT, "local_stand_in": transfer_local},
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"  transfer (local stand-in): {json.dumps(transfer_local)}")
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(f"wrote {args.out}: {wall:.1f} s wall, {cpu:.1f} CPU-s, load average {load()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
