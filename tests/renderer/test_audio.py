"""The sound track: placement on the timeline, music, loudness, formats, errors.

Clips are made here: numpy tones written as WAV, then encoded by the ffmpeg
binary to MP3, OGG (Vorbis and Opus), FLAC and M4A at odd rates and channel
counts. Each narration is a tone of its own frequency, and the music another,
so the decoded output tells which clip plays where.
"""

from __future__ import annotations

import json
import re
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from common.manifest import Manifest, parse_manifest
from common.timeline import Timeline, build_timeline
from render_vm.renderer import audio
from render_vm.renderer.audio import AudioError, mix_audio, probe_duration
from render_vm.renderer.encoder import ffmpeg_exe

RATE = audio.SAMPLE_RATE
MUSIC_HZ = 200.0


# --------------------------------------------------------------------------
# Making clips and jobs.


def write_tone(path: Path, seconds: float, hz: float, rate: int = 44_100, channels: int = 1, amplitude: float = 0.3,
               clicks_every_s: float | None = None) -> Path:
    """A sine as 16-bit WAV, or in the format of ``path``'s suffix (encoded by ffmpeg)."""
    t = np.arange(round(seconds * rate)) / rate
    signal = amplitude * np.sin(2 * np.pi * hz * t)
    if clicks_every_s:
        signal[:: round(clicks_every_s * rate)] = 0.9
    pcm = np.repeat((signal * 32767).astype("<i2")[:, None], channels, axis=1)
    wav = path if path.suffix == ".wav" else path.with_suffix(".src.wav")
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    if wav != path:
        codecs = {".mp3": "libmp3lame", ".ogg": "libvorbis", ".opus": "libopus", ".flac": "flac", ".m4a": "aac"}
        codec = codecs[path.suffix]
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", codec,
                        *(["-f", "ogg"] if codec == "libopus" else []), str(path)], check=True)
        wav.unlink()
    return path


def make_job(job_dir: Path, scenes: list[dict], music: dict | None = None) -> tuple[Manifest, Timeline]:
    """The manifest and timeline of a job whose clips are already in ``job_dir``."""
    raw = {"version": 1, "job_id": "audio-test", "scenes": [{"image": "images/x.png", **s} for s in scenes]}
    if music is not None:
        raw["music"] = music
    manifest = parse_manifest(json.dumps(raw))
    lengths = {s.narration: probe_duration(job_dir / s.narration) for s in manifest.scenes if s.narration}
    return manifest, build_timeline(manifest, lengths)


def mix(job_dir: Path, manifest: Manifest, timeline: Timeline, name: str = "audio.m4a") -> Path:
    out = job_dir / name
    mix_audio(manifest, timeline, job_dir, out)
    return out


# --------------------------------------------------------------------------
# Reading the result.


def decode(path: Path) -> np.ndarray:
    """The file's audio as float32 (frames, channels), as it is in the file."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
    return np.concatenate(frames, axis=1).T  # the AAC decoder gives planar float: (channels, frames)


def window(samples: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return samples[max(0, round(t0 * RATE)) : round(t1 * RATE)]


def rms_db(samples: np.ndarray, t0: float, t1: float) -> float:
    part = window(samples, t0, t1)
    return 20 * np.log10(np.sqrt(np.mean(part.astype(np.float64) ** 2)) + 1e-9)


def first_loud_s(samples: np.ndarray, t0: float, threshold: float) -> float:
    """The time of the first sample after ``t0`` louder than ``threshold``."""
    first = max(0, round(t0 * RATE))
    return (first + int(np.argmax(np.abs(samples[first:]).max(axis=1) > threshold))) / RATE


def tone_db(samples: np.ndarray, t0: float, t1: float, hz: float) -> float:
    """The level of one frequency in a window (projection onto it), in dB."""
    part = window(samples, t0, t1).mean(axis=1)
    t = np.arange(len(part)) / RATE
    amplitude = 2 * abs(np.sum(part * np.exp(-2j * np.pi * hz * t))) / len(part)
    return 20 * np.log10(amplitude + 1e-9)


def dominant_hz(samples: np.ndarray, t0: float, t1: float) -> float:
    part = window(samples, t0, t1).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    return float(np.fft.rfftfreq(len(part), 1 / RATE)[spectrum.argmax()])


def integrated_lufs(path: Path) -> float:
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=framelog=quiet",
                             "-f", "null", "-"], capture_output=True, text=True, check=True)
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", result.stderr)[-1])


# --------------------------------------------------------------------------
# A narrated story: every format, rate and channel count, a cut, silent scenes.

STORY = [  # file, seconds, Hz, sample rate, channels, explicit duration
    ("audio/a.wav", 1.0, 600, 8_000, 1, None),
    ("audio/b.mp3", 1.0, 800, 22_050, 2, None),
    ("audio/c.ogg", 0.8, 1000, 44_100, 1, 1.2),
    ("audio/d.flac", 1.0, 1200, 96_000, 6, None),
    ("audio/e.m4a", 1.0, 1400, 44_100, 2, None),
    ("audio/f.opus", 0.8, 1600, 48_000, 1, None),
    (None, 0, 0, 0, 0, 1.0),  # silence
    ("audio/g.wav", 2.0, 1800, 22_050, 1, 1.0),  # cut at 1.0 s
    (None, 0, 0, 0, 0, 1.0),  # silence: the cut narration must not reach it
]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    job_dir = tmp_path_factory.mktemp("story")
    (job_dir / "audio").mkdir()
    scenes = []
    for path, seconds, hz, rate, channels, duration in STORY:
        scene = {} if duration is None else {"duration_s": duration}
        if path:
            write_tone(job_dir / path, seconds, hz, rate, channels)
            scene["narration"] = path
        scenes.append(scene)
    manifest, timeline = make_job(job_dir, scenes)
    out = mix(job_dir, manifest, timeline)
    return job_dir, manifest, timeline, out, decode(out)


def test_output_is_aac_lc_48k_stereo_of_the_timelines_length(story):
    """Exact to the sample in the MP4's edit list; decoders add the encoder's padding (< 1024 frames)."""
    _, _, timeline, out, samples = story
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.codec_context.profile) == ("aac", "LC")
        assert (stream.rate, stream.channels) == (48_000, 2)
        assert stream.duration * stream.time_base * RATE == round(timeline.total_s * RATE)  # to the sample
    assert samples.shape[1] == 2
    assert abs(len(samples) / RATE - timeline.total_s) < 0.1
    assert not out.with_name(out.name + ".part").exists()


def test_each_narration_starts_at_its_scene_and_not_before(story):
    _, _, timeline, _, samples = story
    narrated = [(slot, hz) for slot, (_, _, hz, *_) in zip(timeline.scenes, STORY) if slot.narration]
    for slot, hz in narrated:
        start = slot.start_s
        if slot.index > 0:  # the previous scene ends in silence (a tail or a silent scene)
            assert rms_db(samples, start - 0.1, start - 0.03) < -60, f"sound before scene {slot.index}"
        assert rms_db(samples, start + 0.03, start + 0.2) > -30, f"no narration in scene {slot.index}"
        assert abs(dominant_hz(samples, start + 0.05, start + 0.45) - hz) < 5, f"wrong clip in scene {slot.index}"
        onset = first_loud_s(samples, start - 0.05, 0.05)
        assert abs(onset - start) < 0.005, f"scene {slot.index} narration starts {(onset - start) * 1000:.1f} ms off"


def test_a_scene_without_narration_is_silent_and_a_long_narration_is_cut(story):
    _, _, timeline, _, samples = story
    silent, cut, after_cut = timeline.scenes[6], timeline.scenes[7], timeline.scenes[8]
    assert rms_db(samples, silent.start_s + 0.03, silent.end_s - 0.03) < -70
    assert cut.narration_s == 1.0
    speaking = rms_db(samples, cut.end_s - 0.2, cut.end_s - 0.03)
    assert speaking > -30  # still speaking until the cut ...
    assert rms_db(samples, cut.end_s - 0.004, cut.end_s) < speaking - 6  # ... where it fades out in 10 ms, no click
    assert rms_db(samples, after_cut.start_s + 0.03, after_cut.end_s) < -70


def test_the_mix_is_normalised_to_minus_16_lufs(story):
    assert integrated_lufs(story[3]) == pytest.approx(-16, abs=1.5)


def test_the_mix_does_not_depend_on_the_block_size(story, monkeypatch):
    job_dir, manifest, timeline, _, samples = story
    monkeypatch.setattr(audio, "BLOCK_FRAMES", audio.HOP_FRAMES * 7)  # blocks of 70 ms: every clip spans several
    small_blocks = decode(mix(job_dir, manifest, timeline, "small-blocks.m4a"))
    assert np.array_equal(small_blocks, samples)


# --------------------------------------------------------------------------
# Music: loops, ducks, fades.


def music_job(job_dir: Path, duck: bool) -> tuple[Path, Timeline]:
    """7 s: music alone (0-2 s), narration at 1 kHz (2-3.5 s, tail to 4 s), music alone (4-7 s).

    The music clip is 1 s long, so everything after 1 s is a loop.
    """
    (job_dir / "audio").mkdir(exist_ok=True)
    write_tone(job_dir / "audio/music.mp3", 1.0, MUSIC_HZ, 44_100, 2, amplitude=0.5)
    write_tone(job_dir / "audio/n.wav", 1.5, 1000, 44_100, 1)
    manifest, timeline = make_job(
        job_dir,
        [{"duration_s": 2.0}, {"narration": "audio/n.wav"}, {"duration_s": 3.0}],
        music={"src": "audio/music.mp3", "volume": 0.5, "duck": duck},
    )
    return mix(job_dir, manifest, timeline), timeline


def test_music_loops_ducks_under_narration_and_fades_out(tmp_path):
    out, timeline = music_job(tmp_path, duck=True)
    samples = decode(out)
    assert timeline.total_s == 7.0 and abs(len(samples) / RATE - 7.0) < 0.1
    full, ducked = tone_db(samples, 0.5, 1.5, MUSIC_HZ), tone_db(samples, 2.2, 3.3, MUSIC_HZ)
    assert -15 < ducked - full < -9  # about -12 dB
    assert tone_db(samples, 2.2, 3.3, 1000) > ducked + 6  # the narration is there, well above the music
    assert tone_db(samples, 4.8, 5.8, MUSIC_HZ) == pytest.approx(full, abs=1)  # back up, and still looping
    assert tone_db(samples, 6.7, 7.0, MUSIC_HZ) < full - 10  # fading out
    assert rms_db(samples, 6.98, 7.0) < full - 30  # and gone at the end
    assert integrated_lufs(out) == pytest.approx(-16, abs=1.5)


def test_music_without_duck_keeps_its_level_under_narration(tmp_path):
    samples = decode(music_job(tmp_path, duck=False)[0])
    assert tone_db(samples, 2.2, 3.3, MUSIC_HZ) == pytest.approx(tone_db(samples, 0.5, 1.5, MUSIC_HZ), abs=1)


# --------------------------------------------------------------------------
# Edge cases: silence, peaks, unreadable files.


def test_a_silent_job_gets_a_silent_stereo_track_of_the_right_length(tmp_path):
    manifest, timeline = make_job(tmp_path, [{"duration_s": 0.7}, {"duration_s": 0.55}])
    samples = decode(mix(tmp_path, manifest, timeline))
    assert samples.shape[1] == 2
    assert abs(len(samples) / RATE - 1.25) < 0.1
    assert np.abs(samples).max() < 1e-4


def test_peaks_are_limited_when_normalising_raises_the_level(tmp_path):
    (tmp_path / "audio").mkdir()
    write_tone(tmp_path / "audio/quiet.wav", 2.0, 500, amplitude=0.03, clicks_every_s=1.0)  # -30 dBFS, 0.9 clicks
    manifest, timeline = make_job(tmp_path, [{"narration": "audio/quiet.wav"}])
    out = mix(tmp_path, manifest, timeline)
    assert np.abs(decode(out)).max() < 1.0  # the +14 dB gain would put the clicks at 4.5 without the limiter
    assert integrated_lufs(out) == pytest.approx(-16, abs=1.5)


@pytest.mark.parametrize(
    "name, seconds, rate, channels",
    [("a.wav", 0.5, 8_000, 1), ("b.mp3", 0.7, 22_050, 2), ("c.ogg", 0.6, 44_100, 1), ("d.opus", 0.5, 48_000, 2),
     ("e.flac", 0.4, 96_000, 6), ("f.m4a", 0.9, 44_100, 2)],
)
def test_probe_duration_of_every_format(tmp_path, name, seconds, rate, channels):
    assert probe_duration(write_tone(tmp_path / name, seconds, 440, rate, channels)) == pytest.approx(seconds, abs=0.01)


def test_unreadable_audio_is_an_audio_error(tmp_path):
    (tmp_path / "text.mp3").write_text("not audio at all\n" * 100)
    (tmp_path / "empty.wav").write_bytes(b"")
    write_tone(tmp_path / "no-samples.wav", 0.0, 440)
    for name in ("text.mp3", "empty.wav", "no-samples.wav", "missing.wav"):
        with pytest.raises(AudioError, match=f"not a readable audio file: .*{name}"):
            probe_duration(tmp_path / name)


def test_unreadable_music_fails_the_mix_and_leaves_no_file(tmp_path):
    (tmp_path / "audio").mkdir()
    write_tone(tmp_path / "audio/n.wav", 0.5, 440)
    (tmp_path / "audio/music.mp3").write_bytes(b"\xff\xfb" + bytes(range(256)) * 4)
    manifest, timeline = make_job(tmp_path, [{"narration": "audio/n.wav"}], music={"src": "audio/music.mp3"})
    with pytest.raises(AudioError, match=r"^music\.src: not a readable audio file: audio/music\.mp3: "):
        mix_audio(manifest, timeline, tmp_path, tmp_path / "audio.m4a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]
