"""Any still the contract allows becomes cover-cropped yuv420p planes of exactly the frame's size."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from render_vm.renderer.stills import StillError, check_still, load_still, rgb_to_planes
from render_vm.sample_job import STILL_KINDS, _still_size, write_still


@pytest.mark.parametrize("kind", STILL_KINDS, ids=lambda k: f"{k[0]}-{k[1]}-{k[2]}")
def test_every_kind_of_still_loads_at_the_frame_size(tmp_path: Path, kind: tuple[str, str, str]) -> None:
    mode, ext, how = kind
    path = tmp_path / f"still.{ext}"
    write_still(path, mode, how, _still_size(320, 180, how, random.Random(1)), random.Random(1))
    check_still(path)
    planes = load_still(path, 320, 180)
    assert planes.y.shape == (180, 320) and planes.u.shape == planes.v.shape == (90, 160)
    assert planes.y.dtype == np.uint8 and 16 <= planes.y.mean() <= 235


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    """Stored sideways with a white top half (as stored); orientation 6 turns it so white is on the right."""
    stored = np.zeros((200, 100, 3), np.uint8)
    stored[:100] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif)
    y = load_still(tmp_path / "r.jpg", 200, 100).y
    assert y[:, 150:].mean() > 200 and y[:, :50].mean() < 40


def test_transparency_is_composited_over_black(tmp_path: Path) -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 255  # white, but fully transparent on the left half
    rgba[:, 32:, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")  # (h, w, 4) uint8: mode RGBA
    y = load_still(tmp_path / "a.png", 64, 64).y
    assert y[:, :28].max() == 16 and y[:, 36:].min() == 235


def test_cover_crop_keeps_the_centre_of_a_panorama(tmp_path: Path) -> None:
    wide = np.zeros((50, 400, 3), np.uint8)
    wide[:, 190:210] = 255  # a white band in the middle of the centre square (175..225)
    Image.fromarray(wide).save(tmp_path / "p.png")
    y = load_still(tmp_path / "p.png", 64, 64).y  # 50x50 of the centre, scaled up
    assert y[:, 32].min() > 200 and y[:, 2].max() < 40


def test_sixteen_bit_grey_uses_its_whole_range(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype("<u2"), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "g.png")
    y = load_still(tmp_path / "g.png", 64, 64).y
    assert y[:, 0].mean() < 20 and y[:, -1].mean() > 230


def test_bt709_limited_range() -> None:
    planes = rgb_to_planes(np.array([[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], np.uint8))
    assert planes.y.tolist() == [[16, 235], [63, 32]]


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_unreadable_stills_raise_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(StillError) as err:
        check_still(path)
        load_still(path, 64, 64)
    assert str(err.value).startswith("cannot read image: ") and "\n" not in str(err.value)


def test_truncated_still_fails_on_decode(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    check_still(tmp_path / "t.png")  # the header is fine ...
    with pytest.raises(StillError):  # ... the pixels are not
        load_still(tmp_path / "t.png", 64, 64)
