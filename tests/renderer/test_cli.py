"""The command line's contract: exit 2 and one line naming the field for any invalid job; no output file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from render_vm.renderer.cli import main
from render_vm.sample_job import make_sample_job

REPO = Path(__file__).resolve().parents[2]


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def edit(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(job: Path) -> None:
        manifest = json.loads((job / "job.json").read_text())
        change(manifest)
        (job / "job.json").write_text(json.dumps(manifest))
    return apply


def write(rel: str, content: bytes) -> Callable[[Path], None]:
    return lambda job: (job / rel).write_bytes(content)


INVALID = {
    "version": (edit(lambda m: m.update(version=2)), "version: "),
    "job_id": (edit(lambda m: m.update(job_id="Bad_ID")), "job_id: "),
    "unknown field": (edit(lambda m: m.update(colour="red")), "colour: unknown field"),
    "odd width": (edit(lambda m: m["output"].update(width=321)), "output.width: must be even"),
    "fps": (edit(lambda m: m["output"].update(fps=0)), "output.fps: "),
    "transition type": (edit(lambda m: m["transition"].update(type="wipe")), "transition.type: "),
    "transition length": (edit(lambda m: m["transition"].update(duration_s=3)), "transition.duration_s: "),
    "motion": (edit(lambda m: m.update(motion="shake")), "motion: "),
    "music volume": (edit(lambda m: m.update(music={"src": "audio/001.wav", "volume": 2})), "music.volume: "),
    "no scenes": (edit(lambda m: m.update(scenes=[])), "scenes: "),
    "missing image": (edit(lambda m: m["scenes"][3].update(image="images/404.png")), "scenes[3].image: file not found: images/404.png"),
    "absolute path": (edit(lambda m: m["scenes"][0].update(image="/etc/passwd")), "scenes[0].image: "),
    "dot-dot path": (edit(lambda m: m["scenes"][1].update(image="../job.json")), "scenes[1].image: "),
    "missing narration": (edit(lambda m: m["scenes"][0].update(narration="audio/none.mp3")), "scenes[0].narration: file not found"),
    "caption too long": (edit(lambda m: m["scenes"][2].update(caption="x" * 501)), "scenes[2].caption: "),
    "caption not text": (edit(lambda m: m["scenes"][2].update(caption=["a"])), "scenes[2].caption: "),
    "duration too short": (edit(lambda m: m["scenes"][1].update(duration_s=0.1)), "scenes[1].duration_s: "),
    "neither duration nor narration": (edit(lambda m: m["scenes"][4].pop("duration_s")), "scenes[4].duration_s: required"),
    "not an image": (write("images/002.jpg", b"this is not a JPEG"), "scenes[1].image: cannot read image"),
    "empty image": (write("images/003.webp", b""), "scenes[2].image: cannot read image"),
    "huge declared image": (write("images/002.jpg", _png_header_only(30000, 30000)),
                            "scenes[1].image: cannot read image: 30000x30000 pixels is more than"),
    "not audio": (write("audio/002.mp3", b"ID3 but nothing else"), "scenes[1].narration: cannot read audio"),
    "not JSON": (write("job.json", b"{\"version\": 1,"), "job.json: not valid JSON"),
}


@pytest.fixture(scope="module")
def job_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    job_dir = tmp_path_factory.mktemp("cli") / "job"
    make_sample_job(job_dir, scenes=5, width=320, height=180, seconds_per_scene=1.0, with_music=False)
    return job_dir


@pytest.fixture
def job(job_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a five-scene job, free to spoil."""
    return Path(shutil.copytree(job_template, tmp_path / "job"))


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_job_exits_2_with_one_line(job: Path, tmp_path: Path, capsys, case: str) -> None:
    spoil, expected = INVALID[case]
    spoil(job)
    out = tmp_path / "out.mp4"
    assert main([str(job), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: " + expected), err
    assert list(tmp_path.glob("*.mp4")) == []


def test_undecodable_still_found_while_rendering_exits_2_and_leaves_nothing(job: Path, tmp_path: Path, capsys) -> None:
    """A PNG whose header is fine but whose pixels are cut off: found by a worker, still an input error."""
    still = job / "images/005.png"
    data = still.read_bytes()
    still.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "video.mp4"
    assert main([str(job), "-o", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: scenes[4].image: cannot read image"), err
    assert not any(out.parent.iterdir())


def test_command_line_end_to_end(job: Path, tmp_path: Path) -> None:
    """The real entry point: a good job gives exit 0 and a heartbeat; a bad one exit 2, one line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out, heartbeat = tmp_path / "video.mp4", tmp_path / "progress.json"
    command = [sys.executable, "-m", "render_vm", "render", str(job), "-o", str(out), "--progress-file", str(heartbeat)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0 and json.loads(done.stdout.strip().splitlines()[-1])["frames"] > 0
    progress = json.loads(heartbeat.read_text())
    assert progress["stage"] == "done" and progress["frames_done"] == progress["frames_total"] > 0
    assert {"updated_at", "segments_total"} <= set(progress)

    out.unlink()
    shutil.rmtree(job / "images")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: scenes[0].image: file not found: images/001.png"
    assert not out.exists()


def test_dispatcher_usage() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "render_vm", "paint"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "unknown command 'paint'" in done.stderr
