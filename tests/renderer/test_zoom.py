"""The resize-based zoom draws the same pixels as the general affine warp of the same path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from render_vm.renderer.motion import kenburns_for, plane_matrix, zoom_about
from render_vm.renderer.zoom import ZoomedPlane

FRAME = (320, 180)
STILL_SIZE = (368, 208)  # the frame times OVERSCAN, even, as compose prepares it


def texture(size: tuple[int, int], seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)  # detail at every scale a bilinear filter passes


def warped(plane: np.ndarray, path, u: float, frame: tuple[int, int]) -> np.ndarray:
    matrix = plane_matrix(path, u, (plane.shape[1], plane.shape[0]), frame)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(plane, matrix, frame, flags=flags, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("scene", range(12))
def test_zoomed_planes_match_the_warp(scene: int) -> None:
    zoom = zoom_about(kenburns_for("zoom-job", scene, "img.png"), STILL_SIZE, FRAME)
    assert zoom is not None
    luma = texture(STILL_SIZE, scene)
    chroma = texture((STILL_SIZE[0] // 2, STILL_SIZE[1] // 2), scene + 100)
    half = (FRAME[0] // 2, FRAME[1] // 2)
    zoomed_luma = ZoomedPlane(luma, zoom.frame_point, zoom.still_point, FRAME)
    halved = [(x // 2, y // 2) for x, y in (zoom.frame_point, zoom.still_point)]  # even: chroma pixel edges
    zoomed_chroma = ZoomedPlane(chroma, halved[0], halved[1], half)
    for u in (0.0, 0.41, 1.0):
        scale = zoom.scale(u, STILL_SIZE, FRAME)
        y, c = np.empty((FRAME[1], FRAME[0]), np.uint8), np.empty((half[1], half[0]), np.uint8)
        zoomed_luma.draw(scale, y)
        zoomed_chroma.draw(scale, c)
        # Both are bilinear; they differ only in rounding (the warp steps positions by 1/32 px).
        assert np.abs(y.astype(int) - warped(luma, zoom.path, u, FRAME)).max() <= 1
        assert np.abs(c.astype(int) - warped(chroma, zoom.path, u, half)).max() <= 1


def test_the_scenes_above_cover_fixed_points_inside_and_outside_the_frame() -> None:
    """Inside: four mirrored quarters; outside: resize output beyond the frame edge, dropped."""
    points = [zoom_about(kenburns_for("zoom-job", s, "img.png"), STILL_SIZE, FRAME).frame_point for s in range(12)]
    inside = [0 < x < FRAME[0] and 0 < y < FRAME[1] for x, y in points]
    assert any(inside) and not all(inside)


def test_a_path_without_a_fixed_point_is_drawn_with_the_warp(tmp_path) -> None:
    """A pure pan (no zoom) has no fixed point to resize about: the scene falls back to cv2.warpAffine."""
    from PIL import Image

    from render_vm.renderer.compose import _draw, _Frame, _load_scene
    from render_vm.renderer.motion import KenBurns
    from render_vm.renderer.segments import SceneSpec

    Image.fromarray(texture(STILL_SIZE, 7)).save(tmp_path / "still.png")
    pan = KenBurns(1.1, 1.1, (0.52, 0.5), (0.58, 0.5))
    spec = SceneSpec(0, str(tmp_path / "still.png"), "", None, 0.0, 1.0, 0.0, 0.0, pan)
    scene = _load_scene(spec, *FRAME)
    frame = _Frame(*FRAME)
    _draw(scene, 0.5, frame)
    assert np.array_equal(frame.y, warped(scene.still.y, pan, 0.5, FRAME))
