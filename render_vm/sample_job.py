"""A synthetic story job: stills of every odd kind, narration clips, music, captions.

The demo, the renderer's tests and the benchmark all render jobs made here, so
they exercise the same inputs the contract allows: PNG / JPEG / WebP stills of
many sizes and aspects in RGB, RGBA, greyscale (8 and 16 bit), palette, CMYK and
EXIF-rotated; narration as WAV, MP3, OGG, FLAC and M4A at assorted sample rates
and channel counts; captions full of markup characters and non-Latin scripts.

    python -m render_vm.sample_job OUT_DIR --scenes 24 --width 1920 --height 1080
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import wave
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from render_vm.renderer.encoder import ffmpeg_exe

# (pillow mode, extension, how) per still; scene i uses kind i % len(STILL_KINDS).
STILL_KINDS = (
    ("RGB", "png", "plain"),
    ("RGB", "jpg", "plain"),
    ("RGB", "webp", "plain"),
    ("RGBA", "png", "transparent"),
    ("L", "png", "plain"),
    ("P", "png", "plain"),
    ("CMYK", "jpg", "plain"),
    ("RGB", "jpg", "exif-rotated"),
    ("I;16", "png", "plain"),
    ("RGB", "png", "portrait"),
    ("LA", "png", "transparent"),
    ("RGB", "webp", "panorama"),
)
# (extension, sample rate, channels) per narration; scene i uses i % len(AUDIO_KINDS).
AUDIO_KINDS = (("wav", 44100, 1), ("mp3", 48000, 2), ("ogg", 22050, 1), ("flac", 32000, 2), ("m4a", 44100, 2))
CAPTIONS = (
    "Once, on a rock in the sea, there lived a keeper of the light.",
    "{\\b1}Not bold{\\b0} \\N not a newline, \\h not a space: 100% \"quoted\", 'single', a:b; c=d",
    "Crème brûlée, naïve façade, Ærøskøbing, Straße, ñandú.",
    "灯台守は毎晩、海を見ていた。 등대지기는 바다를 보았다.",
    "שלום עולם — مرحبا بالعالم",
    "Emoji 🌊🗼✨👩‍👧 and symbols ← → ★ ♫",
    "Silence.",
    "Backslashes \\\\ and braces {} and ${HOME} and %s %d %% and <b>tags</b> & entities &amp;",
)
NARRATION_TAIL_S = 0.5  # the contract: a scene without duration_s lasts its narration + 0.5 s


def make_sample_job(
    job_dir: Path,
    scenes: int = 6,
    width: int = 320,
    height: int = 180,
    seconds_per_scene: float = 2.0,
    with_music: bool = True,
    captions: bool = True,
    seed: int = 0,
    fps: int = 30,
    job_id: str = "sample-job",
    transition: str = "crossfade",
) -> dict:
    """Write a job folder to ``job_dir`` and return its manifest (also written as ``job.json``).

    Every fifth scene has no narration and an explicit ``duration_s``; the others
    last their narration (``seconds_per_scene`` - 0.5 s) plus the contract's 0.5 s.
    """
    job_dir = Path(job_dir)
    (job_dir / "images").mkdir(parents=True, exist_ok=True)
    (job_dir / "audio").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    manifest_scenes = []
    for i in range(scenes):
        mode, ext, how = STILL_KINDS[i % len(STILL_KINDS)]
        image = f"images/{i + 1:03d}.{ext}"
        write_still(job_dir / image, mode, how, _still_size(width, height, how, rng), rng)
        scene: dict = {"image": image}
        if i % 5 == 4:
            scene["duration_s"] = seconds_per_scene
        else:
            audio_ext, rate, channels = AUDIO_KINDS[i % len(AUDIO_KINDS)]
            scene["narration"] = f"audio/{i + 1:03d}.{audio_ext}"
            write_tone(job_dir / scene["narration"], max(0.1, seconds_per_scene - NARRATION_TAIL_S), rate, channels, rng, speech=True)
        if captions:
            scene["caption"] = CAPTIONS[i % len(CAPTIONS)]
        manifest_scenes.append(scene)
    manifest: dict = {
        "version": 1,
        "job_id": job_id,
        "title": "A synthetic story",
        "output": {"width": width, "height": height, "fps": fps},
        "transition": {"type": transition, "duration_s": 0.5},
        "motion": "kenburns",
        "scenes": manifest_scenes,
    }
    if with_music:
        write_tone(job_dir / "audio/music.mp3", 20.0, 44100, 2, rng, speech=False)
        manifest["music"] = {"src": "audio/music.mp3", "volume": 0.2, "duck": True}
    (job_dir / "job.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


def _still_size(width: int, height: int, how: str, rng: random.Random) -> tuple[int, int]:
    scale = rng.uniform(0.8, 1.6)
    w, h = int(width * scale), int(height * scale)
    if how == "portrait":
        return h, w
    if how == "panorama":
        return w * 2, h // 2 + 1
    if how == "exif-rotated":  # stored sideways; EXIF orientation 6 turns it upright
        return h, w
    return w, h


def picture(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A busy RGB still: gradient sky, shapes, fine grain (so the encoder has real work)."""
    w, h = size
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    bottom = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    sky = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (h, w, 3)).copy()
    texture = _texture(w, h, np.random.default_rng(rng.randrange(1 << 30)))[:, :, None]
    image = Image.fromarray(np.clip(sky + texture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(max(2, min(w, h) // 20), max(3, min(w, h) // 4))
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(0, 0, 0), width=max(1, r // 10))
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    return image


def _texture(w: int, h: int, noise: np.random.Generator) -> np.ndarray:
    """Detail at every scale, as in a photograph or a generated image: octaves of smooth
    noise with amplitude falling as 1/f, down to features a few pixels wide. Flat shapes
    alone would make the encoder's job unrealistically easy."""
    total = np.zeros((h, w), np.float32)
    octave = 1
    while 2**octave * 4 <= w:
        cells = 2**octave
        coarse = noise.normal(0, 1, (max(2, cells * h // w), cells)).astype(np.float32)
        total += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * (40 / octave)
        octave += 1
    return total


def write_still(path: Path, mode: str, how: str, size: tuple[int, int], rng: random.Random) -> None:
    image = picture(size, rng)
    exif = None
    if how == "transparent":  # a transparent border around an opaque middle
        alpha = Image.new("L", size, 0)
        ImageDraw.Draw(alpha).rectangle((size[0] // 8, size[1] // 8, size[0] * 7 // 8, size[1] * 7 // 8), fill=255)
        image.putalpha(alpha)
        image = image.convert(mode)
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey.astype("<u2"))  # uint16 -> mode I;16
    elif mode != "RGB":
        image = image.convert(mode)
    if how == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    kwargs = {"exif": exif} if exif is not None else {}
    if path.suffix == ".jpg":
        kwargs["quality"] = 90
    image.save(path, **kwargs)


def write_tone(path: Path, seconds: float, rate: int, channels: int, rng: random.Random, speech: bool) -> None:
    """Synthetic narration (voiced syllables, 4 a second) or music (slow chords), in any format."""
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    if speech:
        pitch = rng.uniform(110, 220)
        voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6))
        envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
        signal = 0.3 * voice * envelope + 0.01 * np.random.default_rng(rng.randrange(1 << 30)).normal(size=t.size)
    else:
        chord = [220.0, 277.2, 329.6]
        signal = sum(np.sin(2 * np.pi * f * t) for f in chord) * 0.15
    samples = np.repeat((np.clip(signal, -1, 1) * 32767).astype("<i2")[:, None], channels, axis=1)
    wav = path.with_suffix(".wav")
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    if path.suffix == ".wav":
        return
    codec = {".mp3": "libmp3lame", ".ogg": "libvorbis", ".flac": "flac", ".m4a": "aac"}[path.suffix]
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", codec, str(path)],
        check=True,
    )
    wav.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m render_vm.sample_job", description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--seconds-per-scene", type=float, default=4.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--job-id", default="sample-job")
    parser.add_argument("--no-music", action="store_true")
    parser.add_argument("--no-captions", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_sample_job(
        args.job_dir, scenes=args.scenes, width=args.width, height=args.height,
        seconds_per_scene=args.seconds_per_scene, with_music=not args.no_music,
        captions=not args.no_captions, seed=args.seed, fps=args.fps, job_id=args.job_id,
    )
    print(args.job_dir / "job.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
