"""Zoom one plane about a fixed point with ``cv2.resize``: a sub-pixel warp at resize speed.

``cv2.resize`` with a free scale ``fx`` maps output pixel ``j`` (centre) to
input position ``s * (j + 1/2) - 1/2`` (``s = 1 / fx``), measured from the
left edge of its input: a separable bilinear filter, about three times
cheaper than ``cv2.warpAffine``, but always anchored at the input's top-left
pixel edge. A Ken Burns path is a zoom about one fixed point (see
``motion.zoom_about``), snapped to a pixel edge of both still and frame; so
the part of the frame right of and below that point is a resize of the still
from that point on, exact at any scale. The other three quarters are the same
thing mirrored: a resize of a flipped copy of the still, flipped back into
place. Each frame is therefore up to four resizes into a scratch buffer and
up to four copies (or flips) into the frame; no pixel is interpolated twice.

Resize clamps at its input's edges, where the true neighbour would lie outside;
the input is therefore always cut one pixel wider than needed, and the still
is padded (edge pixels repeated) so that the snapped path, which may overshoot
the still by a pixel or two, never needs a pixel that is not there. The fixed
point itself may lie off the still (a pan wider than the zoom): the padding
then reaches out to it, and the resize output between it and the frame's
edge is computed and dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PAD = 4  # pixels repeated around each plane's edges (the snap moves a path by at most 2 luma px)
_FLIP_CODES = {(False, False): None, (True, False): 1, (False, True): 0, (True, True): -1}  # cv2.flip's codes


@dataclass(frozen=True)
class _Span:
    """One side of the fixed point along one axis."""

    flipped: bool  # the side before the fixed point: its still pixels are read backwards
    still: slice  # the padded plane's pixels on this side, starting or ending at the fixed point
    frame: slice  # the frame pixels this side covers
    first: int  # the first of them, counted in resize output pixels from the fixed point
    end: int  # one past the last


def _spans(frame_point: int, anchor: int, frame_size: int, padded_size: int) -> list[_Span]:
    """The sides of the fixed point that the frame shows; ``anchor`` is the fixed point in the padded plane."""
    spans = []
    if frame_point < frame_size:  # after the fixed point: output j is frame pixel frame_point + j
        start = max(frame_point, 0)
        frame = slice(start, frame_size)
        spans.append(_Span(False, slice(anchor, padded_size), frame, start - frame_point, frame_size - frame_point))
    if frame_point > 0:  # before it: output j is frame pixel frame_point - 1 - j
        stop = min(frame_point, frame_size)
        spans.append(_Span(True, slice(0, anchor), slice(0, stop), frame_point - stop, frame_point))
    return spans


@dataclass(frozen=True)
class _Tile:
    """One quarter around the fixed point: its still pixels (mirrored so it starts at the fixed point)."""

    source: np.ndarray
    across: _Span
    down: _Span

    @property
    def flip_code(self) -> int | None:
        return _FLIP_CODES[self.across.flipped, self.down.flipped]


class ZoomedPlane:
    """One plane of a prepared still, zoomed about a fixed point into frames of one size.

    Memory: the padded plane plus mirrored copies of the quarters before the
    fixed point, at most twice the plane.
    """

    def __init__(
        self, plane: np.ndarray, frame_point: tuple[int, int], still_point: tuple[int, int], frame_size: tuple[int, int]
    ) -> None:
        left, top = PAD + max(0, -still_point[0]), PAD + max(0, -still_point[1])
        right = PAD + max(0, still_point[0] - plane.shape[1])
        bottom = PAD + max(0, still_point[1] - plane.shape[0])
        padded = cv2.copyMakeBorder(plane, top, bottom, left, right, cv2.BORDER_REPLICATE)
        height, width = padded.shape
        columns = _spans(frame_point[0], still_point[0] + left, frame_size[0], width)
        rows = _spans(frame_point[1], still_point[1] + top, frame_size[1], height)
        self._tiles = []
        for down in rows:
            for across in columns:
                quarter = padded[down.still, across.still]
                code = _FLIP_CODES[across.flipped, down.flipped]
                self._tiles.append(_Tile(quarter if code is None else cv2.flip(quarter, code), across, down))
        longest = max(s.end for s in columns) + 4, max(s.end for s in rows) + 4  # resize may round up a pixel or two
        self._scratch = np.empty((longest[1], longest[0]), dtype=np.uint8)

    def draw(self, scale: tuple[float, float], dst: np.ndarray) -> None:
        """Draw the plane at ``scale`` (still pixels per frame pixel, each about 1 or more) into ``dst``."""
        sx, sy = scale
        fx, fy = 1.0 / sx, 1.0 / sy
        for tile in self._tiles:
            across, down = tile.across, tile.down
            # Input one pixel wider than the last output pixel reaches, so resize never clamps inside the frame.
            width = min(math.ceil(sx * (across.end - 0.5) + 0.5) + 1, tile.source.shape[1])
            height = min(math.ceil(sy * (down.end - 0.5) + 0.5) + 1, tile.source.shape[0])
            # resize's own output size is cvRound(size * f); given a view of exactly that size it writes there.
            out_w, out_h = round(width * fx), round(height * fy)
            window, scratch = tile.source[:height, :width], self._scratch[:out_h, :out_w]
            if (out_w, out_h) != (width, height) or (fx, fy) == (1.0, 1.0):
                out = cv2.resize(window, None, dst=scratch, fx=fx, fy=fy, interpolation=cv2.INTER_LINEAR)
            else:  # resize copies when the sizes match, whatever the scale: a small tile at a scale near 1
                matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
                out = cv2.warpAffine(
                    window, matrix, (out_w, out_h), dst=scratch,
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
                )
            part = out[down.first : down.end, across.first : across.end]
            region = dst[down.frame, across.frame]
            if tile.flip_code is None:
                np.copyto(region, part)
            else:
                cv2.flip(part, tile.flip_code, dst=region)
