"""The ffmpeg binary and the H.264 encoder settings every segment shares.

h264_nvenc when the machine has a GPU whose NVENC answers, else libx264. Both
write H.264 High, yuv420p, tagged BT.709 limited range (the frames are made in
exactly that colour space, see ``stills.py``). Presets are given in x264's names
(``veryfast`` ...); NVENC gets the nearest of its ``p1``..``p7``, so callers can
ask for a speed without knowing which encoder the machine has.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
_X264_TO_NVENC = {
    "ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
    "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7",
}
# The fastest x264 preset, at its highest CRF, whose output scores VMAF >= 95 (mean) with its worst 1%
# of frames >= 93 against a lossless render of the same job, and stays H.264 High (ultrafast, faster
# still, drops CABAC, 8x8 transforms and B-frames: its stream is Constrained Baseline). The figures
# are in docs/renderer.md (``bench/render.py --sections vmaf``): 96.5, 3.5 Mb/s at 1080p30 on the
# sample job, a third less encoding CPU than veryfast at the same CRF, which only just reached 95.0.
DEFAULT_PRESET = "superfast"
X264_CRF = 20
# NVENC's presets were not measured (no GPU here): without a preset asked for it keeps p3, the one the
# previous default (veryfast) maps to; NVENC leaves the CPU to composing either way.
NVENC_DEFAULT_PRESET = "p3"
NVENC_CQ = 23
# BT.709, limited range. Give these on the raw input too: ffmpeg converts an untagged
# input to a tagged output's colour space (it took raw frames for BT.601).
COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]  # NVENC's constant-quality scale runs a little above x264's CRF


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The static ffmpeg shipped with imageio-ffmpeg (libx264, NVENC, no ffprobe)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=1)
def nvenc_available() -> bool:
    """Whether h264_nvenc can encode here: the binary has it, but only a GPU makes it work."""
    probe = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=black:s=256x256:d=0.1",
        "-frames:v", "1", "-c:v", "h264_nvenc", "-f", "null", "-",
    ]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def valid_presets() -> tuple[str, ...]:
    """Preset names the command line accepts (x264's, plus NVENC's own p1..p7)."""
    return X264_PRESETS + NVENC_PRESETS


@dataclass(frozen=True)
class Encoder:
    """One encoder configuration; ``args`` go after ffmpeg's input options."""

    name: str  # "libx264" or "h264_nvenc"
    preset: str  # as the encoder itself spells it
    threads: int  # libx264 threads per segment (0 = x264's own choice)

    @property
    def quality(self) -> int:
        """The constant-quality setting: x264's CRF or NVENC's CQ."""
        return NVENC_CQ if self.name == "h264_nvenc" else X264_CRF

    @property
    def args(self) -> list[str]:
        if self.name == "h264_nvenc":
            quality = ["-preset", self.preset, "-rc", "vbr", "-cq", str(self.quality), "-b:v", "0"]
        else:
            quality = ["-preset", self.preset, "-crf", str(self.quality), "-threads", str(self.threads)]
        return ["-c:v", self.name, *quality, "-profile:v", "high", "-pix_fmt", "yuv420p", *COLOUR_TAGS]


def choose_encoder(preset: str | None, threads: int) -> Encoder:
    """NVENC if it works here, else libx264, at ``preset`` (x264 or NVENC names)."""
    if preset is not None and preset not in valid_presets():
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(valid_presets())})")
    if nvenc_available():
        return Encoder("h264_nvenc", _X264_TO_NVENC.get(preset, preset) if preset else NVENC_DEFAULT_PRESET, threads)
    preset = preset or DEFAULT_PRESET
    if preset in NVENC_PRESETS:  # asked for an NVENC speed on a CPU machine: the nearest x264 one
        preset = {"p1": "ultrafast", "p2": "superfast", "p3": "veryfast", "p4": "fast"}.get(preset, "medium")
    return Encoder("libx264", preset, threads)
