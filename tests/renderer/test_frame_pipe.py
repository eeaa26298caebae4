"""Frames handed to the encoder by reference arrive as drawn, even while drawing reuses the buffers."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from render_vm.renderer.frame_pipe import FramePipe

# A reader slower than the writer, so the pipe is full (holding the writer's pages) most of the time.
SLOW_READER = (
    "import sys, time, hashlib\n"
    "digest = hashlib.sha256()\n"
    "while chunk := sys.stdin.buffer.read(65536):\n"
    "    digest.update(chunk)\n"
    "    time.sleep(0.0005)\n"
    "print(digest.hexdigest())\n"
)


@pytest.mark.parametrize("frame_bytes", [1920 * 1080 * 3 // 2, 320 * 180 * 3 // 2])
def test_rotating_through_its_buffers_never_changes_a_frame_the_pipe_still_holds(frame_bytes):
    reader = subprocess.Popen([sys.executable, "-c", SLOW_READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pipe = FramePipe(reader.stdin.fileno())
    ring = [np.empty(frame_bytes, np.uint8) for _ in range(pipe.buffers(frame_bytes))]
    expected = hashlib.sha256()
    for n in range(40):
        buffer = ring[n % len(ring)]
        buffer[:] = n  # drawing the next frame over a buffer handed over len(ring) frames ago
        buffer[n] = 255
        expected.update(buffer.tobytes())
        pipe.write(buffer)
    reader.stdin.close()
    assert reader.stdout.read().decode().strip() == expected.hexdigest()
    assert reader.wait() == 0


def test_by_reference_needs_more_than_one_buffer_and_a_file_needs_one(tmp_path):
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    pipe = FramePipe(reader.stdin.fileno())
    if pipe.by_reference:  # Linux with vmsplice: the pipe's capacity decides
        assert pipe.buffers(3_110_400) == 2 + -(-pipe.capacity // 3_110_400)
    reader.stdin.close()
    reader.wait()
    with open(tmp_path / "frames.raw", "wb") as file:
        to_file = FramePipe(file.fileno())
        assert not to_file.by_reference and to_file.buffers(3_110_400) == 1
        to_file.write(np.arange(10, dtype=np.uint8))
    assert (tmp_path / "frames.raw").read_bytes() == bytes(range(10))


def test_an_encoder_that_has_gone_is_a_broken_pipe():
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader.wait()
    pipe = FramePipe(reader.stdin.fileno())
    with pytest.raises(BrokenPipeError):
        pipe.write(np.zeros(1 << 20, np.uint8))


def test_a_buffer_dropped_after_its_hand_over_is_kept_until_release():
    # Small frames come from the heap: freed while the pipe still referenced them, they would be
    # reused (here, by the allocations that follow) before the reader got to them.
    reader = subprocess.Popen([sys.executable, "-c", SLOW_READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pipe = FramePipe(reader.stdin.fileno())
    expected = hashlib.sha256()
    for n in range(8):
        buffer = np.full(50_000, n, np.uint8)
        expected.update(buffer.tobytes())
        pipe.write(buffer)
        del buffer
        scribble = [np.full(50_000, 77, np.uint8) for _ in range(20)]
        del scribble
    reader.stdin.close()
    assert reader.stdout.read().decode().strip() == expected.hexdigest()
    reader.wait()
    pipe.release()
