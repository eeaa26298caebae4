"""A small hand-made calibration document, for the model's and the selector's tests."""

from __future__ import annotations


def hand_made(**size_overrides):
    """A small calibration with round numbers: 10 ms compose, 30 ms encode a frame, 1.8x on 2 workers."""
    size = {
        "fps": 30,
        "compose": {"cpu_s_per_frame": {"1": 0.010, "2": 0.0111}, "speedup": {"1": 1.0, "2": 1.8}},
        "encode_x264": {"veryfast": {"threads_1": {"cpu_s": 0.030, "wall_s": 0.031, "bytes_per_frame": 10000}}},
        "nvenc": {"wall_s": None, "note": "not measured: no GPU"},
        "audio_mix_cpu_s_per_min": 4.5,
        "mux_s_per_min": 2.0,
        "prepare_s_per_scene": 0.1,
        "assets_bytes_per_scene": 1_000_000,
        "encoder_start_cpu_s": 0.09,
        **size_overrides,
    }
    return {
        "version": 1,
        "machine": {"cpu_model": "test CPU", "cores": 2, "date": "2026-12-02T00:00Z", "ffmpeg": "ffmpeg test"},
        "default_preset": "veryfast",
        "worker_start_s": 1.0,
        "sizes": {"1920x1080": size},
        "transfer": {"mb_per_s": 100.0, "fixed_s": 2.0, "source": "test"},
    }
