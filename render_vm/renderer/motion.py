"""Ken Burns motion that cannot shake: a float affine path, linear in screen space.

The still is prepared ``OVERSCAN`` times larger than the frame, so the most
zoomed-in window shows it 1:1. A window is a zoom ``z`` (1 = the whole prepared
still) and a centre ``c`` (in units of the still's size). Interpolating ``z``
and ``a = z * c`` linearly in time, rather than ``z`` and ``c``, makes every
point of the still move on the screen in a straight line at constant speed
(screen x = W * (z * still_x - a) + W / 2): its second difference is zero, so
the only residue is interpolation noise, far below a pixel. The window always
stays inside the still, because the allowed ``a`` at a given ``z`` is an
interval whose ends are linear in ``z``: if both ends of the path are inside,
so is every point between.

Direction, zoom and pan are drawn from a hash of the job id, the scene index
and the image path: varied per scene, identical on every run of the same job.

Because ``z`` and ``a`` are both linear in time, every such path is a zoom
about one fixed point: one point of the still stays at one place on the
screen for the whole scene (see :func:`zoom_about`). Snapped to the pixel grid,
that lets a frame be drawn with ``cv2.resize`` anchored at the fixed point, a
separable filter about three times cheaper than a general affine warp.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import numpy as np

OVERSCAN = 1.15  # the prepared still's size over the frame's; also the largest zoom
MIN_ZOOM = 1.02  # the widest end still leaves a little room to pan


@dataclass(frozen=True)
class KenBurns:
    """A window path from ``(z0, a0)`` to ``(z1, a1)``; ``a`` is ``z * centre`` per axis."""

    z0: float
    z1: float
    a0: tuple[float, float]
    a1: tuple[float, float]

    def window(self, u: float) -> tuple[float, float, float]:
        """``(zoom, centre_x, centre_y)`` at progress ``u`` in [0, 1]."""
        u = min(1.0, max(0.0, u))
        z = self.z0 + (self.z1 - self.z0) * u
        ax = self.a0[0] + (self.a1[0] - self.a0[0]) * u
        ay = self.a0[1] + (self.a1[1] - self.a0[1]) * u
        return z, ax / z, ay / z


STILL = KenBurns(1.0, 1.0, (0.5, 0.5), (0.5, 0.5))  # motion "none": the whole still, centred


def kenburns_for(job_id: str, index: int, image: str) -> KenBurns:
    """This scene's motion: zoom in or out, panning one way, the same on every run."""
    digest = hashlib.sha256(f"{job_id}\0{index}\0{image}".encode()).digest()
    rng = random.Random(digest)
    near = rng.uniform(1.10, OVERSCAN)
    z0, z1 = (MIN_ZOOM, near) if rng.random() < 0.5 else (near, MIN_ZOOM)
    angle = rng.uniform(0, 2 * math.pi)
    reach = rng.uniform(0.5, 1.0)  # how much of the room to pan the path uses
    dx, dy = math.cos(angle) * reach, math.sin(angle) * reach

    def a_at(z: float, fx: float, fy: float) -> tuple[float, float]:
        # Centre offset f in [-1, 1] of the room the window has at zoom z, times z.
        room = 0.5 - 0.5 / z
        return z * (0.5 + fx * room), z * (0.5 + fy * room)

    return KenBurns(z0, z1, a_at(z0, -dx, -dy), a_at(z1, dx, dy))


def plane_matrix(path: KenBurns, u: float, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """The 2x3 inverse map (destination pixel -> source pixel) for one plane.

    Sizes are in that plane's own pixels, so the same call serves the luma plane
    and the half-size chroma planes. OpenCV puts pixel centres on integers; the
    half-pixel terms convert from the continuous frame where centres are at +0.5,
    which keeps luma and chroma exactly registered.
    """
    zoom, cx, cy = path.window(u)
    src_w, src_h = src_size
    dst_w, dst_h = dst_size
    sx = src_w / (dst_w * zoom)
    sy = src_h / (dst_h * zoom)
    tx = src_w * (cx - 0.5 / zoom)
    ty = src_h * (cy - 0.5 / zoom)
    return np.array(
        [[sx, 0.0, 0.5 * sx + tx - 0.5], [0.0, sy, 0.5 * sy + ty - 0.5]],
        dtype=np.float64,
    )


MAX_SPILL = 0.5  # of the frame: a fixed point further off-screen costs more resize work than a warp


@dataclass(frozen=True)
class ZoomAbout:
    """A Ken Burns path seen as a zoom about a fixed point, snapped to the pixel grid.

    ``frame_point`` (on the frame) and ``still_point`` (on the prepared still)
    are the same point of the picture in every frame, in luma pixels from the
    top-left corner, measured to pixel edges. Both are even, so they are pixel
    edges of the half-size chroma planes too. Only the scale changes with time.
    """

    path: KenBurns  # the snapped path (``plane_matrix`` of it gives the same map)
    frame_point: tuple[int, int]
    still_point: tuple[int, int]

    def scale(self, u: float, src_size: tuple[int, int], dst_size: tuple[int, int]) -> tuple[float, float]:
        """Still pixels per frame pixel, per axis, at progress ``u`` (the same for luma and chroma)."""
        zoom = self.path.window(u)[0]
        return src_size[0] / (dst_size[0] * zoom), src_size[1] / (dst_size[1] * zoom)


def zoom_about(path: KenBurns, src_size: tuple[int, int], dst_size: tuple[int, int]) -> ZoomAbout | None:
    """``path`` moved (by at most a pixel) so its fixed point lies on even pixel edges of frame and still.

    Sizes are luma pixels (both even). None when there is no fixed point worth
    using: no zoom (a pure pan's fixed point is at infinity), a fixed point
    more than ``MAX_SPILL`` frames off-screen, or a zoom past 1:1, where
    resizing from the fixed point would need pixels on its far side.
    """
    dz = path.z1 - path.z0
    if abs(dz) < 1e-6 or max(path.z0, path.z1) > min(s / d for s, d in zip(src_size, dst_size)) * 1.001:
        return None
    a0, a1, frame_point, still_point = [], [], [], []
    for axis, (src, dst) in enumerate(zip(src_size, dst_size)):
        # Screen position q/dst = z * still - a + 1/2; with a = a0 + (z - z0) * k, still = k is fixed.
        k = (path.a1[axis] - path.a0[axis]) / dz
        frame_q = dst * (0.5 - path.a0[axis] + path.z0 * k)
        snapped_still, snapped_frame = _even(src * k), _even(frame_q)
        if not -MAX_SPILL * dst <= snapped_frame <= (1 + MAX_SPILL) * dst:
            return None
        k = snapped_still / src
        start = 0.5 - snapped_frame / dst + path.z0 * k
        a0.append(start)
        a1.append(start + dz * k)
        frame_point.append(snapped_frame)
        still_point.append(snapped_still)
    snapped = KenBurns(path.z0, path.z1, (a0[0], a0[1]), (a1[0], a1[1]))
    return ZoomAbout(snapped, (frame_point[0], frame_point[1]), (still_point[0], still_point[1]))


def _even(value: float) -> int:
    return int(round(value / 2)) * 2
