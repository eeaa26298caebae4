"""Ken Burns: deterministic per job and scene, varied across scenes, inside the still, straight on screen."""

from __future__ import annotations

import numpy as np
import pytest

from render_vm.renderer.motion import OVERSCAN, STILL, KenBurns, kenburns_for, plane_matrix, zoom_about


def test_same_job_same_motion_other_scene_other_motion() -> None:
    assert kenburns_for("job-a", 3, "images/004.png") == kenburns_for("job-a", 3, "images/004.png")
    paths = {kenburns_for("job-a", i, "images/x.png") for i in range(12)}
    assert len(paths) == 12
    zooming_in = sum(p.z1 > p.z0 for p in paths)
    assert 0 < zooming_in < 12  # both directions occur


@pytest.mark.parametrize("scene", range(40))
def test_window_stays_inside_the_still(scene: int) -> None:
    path = kenburns_for("job-b", scene, "img.png")
    for u in np.linspace(0, 1, 101):
        zoom, cx, cy = path.window(u)
        assert 1.0 <= zoom <= OVERSCAN + 1e-9
        half = 0.5 / zoom
        assert half - 1e-9 <= cx <= 1 - half + 1e-9 and half - 1e-9 <= cy <= 1 - half + 1e-9


@pytest.mark.parametrize("scene", range(10))
def test_every_point_moves_in_a_straight_line_at_constant_speed(scene: int) -> None:
    """Screen position of a fixed still point, frame by frame: second difference ~ 0."""
    path = kenburns_for("job-c", scene, "img.png")
    src, dst = (2208, 1242), (1920, 1080)
    point = np.array([700.0, 400.0])
    screen = []
    for u in np.linspace(0, 1, 150):
        m = plane_matrix(path, u, src, dst)
        # inverse of the destination->source map at this point
        screen.append(np.linalg.solve(m[:, :2], point - m[:, 2]))
    second = np.diff(np.array(screen), n=2, axis=0)
    assert np.abs(second).max() < 1e-6
    assert np.abs(np.array(screen[-1]) - screen[0]).max() > 5  # and it does move


def test_luma_and_chroma_stay_registered() -> None:
    """The same continuous point maps through the luma and the half-size chroma matrices alike."""
    path = kenburns_for("job-d", 0, "img.png")
    luma = plane_matrix(path, 0.37, (2208, 1242), (1920, 1080))
    chroma = plane_matrix(path, 0.37, (1104, 621), (960, 540))
    dst = np.array([123.25, 456.75])  # continuous coordinates, pixel centres at +0.5
    src_luma = luma[:, :2] @ (dst - 0.5) + luma[:, 2] + 0.5
    src_chroma = chroma[:, :2] @ (dst / 2 - 0.5) + chroma[:, 2] + 0.5
    assert src_chroma * 2 == pytest.approx(src_luma)


def test_no_motion_is_the_identity() -> None:
    assert plane_matrix(STILL, 0.5, (320, 180), (320, 180)) == pytest.approx(np.array([[1, 0, 0], [0, 1, 0]]))


@pytest.mark.parametrize("scene", range(40))
def test_zoom_about_keeps_one_point_still_on_even_pixel_edges(scene: int) -> None:
    """The snapped path maps its frame point to its still point at every moment, and barely moves."""
    path = kenburns_for("job-e", scene, "img.png")
    src, dst = (2208, 1242), (1920, 1080)
    zoom = zoom_about(path, src, dst)
    assert zoom is not None
    assert all(v % 2 == 0 for v in zoom.frame_point + zoom.still_point)
    for u in (0.0, 0.3, 1.0):
        m = plane_matrix(zoom.path, u, src, dst)
        point = m[:, :2] @ (np.array(zoom.frame_point) - 0.5) + m[:, 2] + 0.5  # pixel edges, not centres
        assert point == pytest.approx(zoom.still_point, abs=1e-6)
        sx, sy = zoom.scale(u, src, dst)
        assert (m[0, 0], m[1, 1]) == pytest.approx((sx, sy))
        original = plane_matrix(path, u, src, dst)
        for corner in ((0.0, 0.0), dst):
            shift = (m - original)[:, :2] @ np.array(corner) + (m - original)[:, 2]
            assert np.abs(shift).max() <= 2.0  # snapping moves the picture by at most two pixels


def test_zoom_about_declines_paths_without_a_usable_fixed_point() -> None:
    src, dst = (2208, 1242), (1920, 1080)
    assert zoom_about(STILL, src, dst) is None  # no zoom at all
    assert zoom_about(KenBurns(1.1, 1.1, (0.5, 0.5), (0.6, 0.5)), src, dst) is None  # a pure pan
    assert zoom_about(KenBurns(1.02, 1.021, (0.51, 0.51), (0.56, 0.51)), src, dst) is None  # far off-screen
    assert zoom_about(KenBurns(1.0, 1.3, (0.5, 0.5), (0.65, 0.65)), src, dst) is None  # past 1:1
