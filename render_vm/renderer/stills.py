"""Stills: any file the contract allows, to cover-cropped yuv420p planes, once per scene.

Everything a frame needs from its still is done here, once: decode (JPEG at a
reduced scale when it is much larger than needed), EXIF rotation, any mode to
RGB (alpha over black, 16-bit grey, palette, CMYK), cover crop to the frame's
aspect, resize, and RGB -> BT.709 limited-range Y'CbCr 4:2:0. Per frame, the
composer only warps these planes; it never touches RGB again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# RGB (0..255) -> BT.709 Y'CbCr, limited range (Y 16..235, C 16..240), rows Y, Cb, Cr.
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB
_RGB_TO_YCBCR = np.array(
    [
        [219 / 255 * _KR, 219 / 255 * _KG, 219 / 255 * _KB, 16.0],
        [-224 / 255 * _KR / (2 - 2 * _KB), -224 / 255 * _KG / (2 - 2 * _KB), 224 / 255 * 0.5, 128.0],
        [224 / 255 * 0.5, -224 / 255 * _KG / (2 - 2 * _KR), -224 / 255 * _KB / (2 - 2 * _KR), 128.0],
    ],
    dtype=np.float32,
)

# A still's header may claim any size (a 1 KB PNG can declare 30000 x 30000
# pixels and decode to 2.7 GB). Stills up to this many pixels are fine (a
# 100-megapixel photo is); beyond it the job is invalid, said in one line,
# before anything is decoded. Pillow's own bomb check is then never reached.
MAX_STILL_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = None


class StillError(Exception):
    """A still that cannot be read. Picklable (it crosses from worker processes)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"cannot read image: {self.problem}"


@dataclass(frozen=True)
class Planes:
    """A yuv420p picture as three contiguous uint8 planes."""

    y: np.ndarray  # (h, w)
    u: np.ndarray  # (h/2, w/2)
    v: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.y.shape[1], self.y.shape[0]


def check_still(path: Path) -> None:
    """Cheap up-front check (header only) so a bad still fails before any rendering."""
    try:
        with Image.open(path) as image:
            _check_size(path, image.size)  # opening parses the header only
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise StillError(str(path), _describe(err)) from None


def _check_size(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_STILL_PIXELS:
        raise StillError(str(path), f"{width}x{height} pixels is more than the {MAX_STILL_PIXELS // 1_000_000} megapixels allowed")


def load_still(path: Path, width: int, height: int) -> Planes:
    """Decode ``path`` and return it cover-cropped to exactly ``width`` x ``height`` (both even)."""
    try:
        with Image.open(path) as image:
            _check_size(path, image.size)
            # JPEG can decode at 1/2, 1/4, 1/8 scale for nearly free; keep at least the longer side.
            side = max(width, height)
            image.draft("RGB", (side, side))
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise StillError(str(path), _describe(err)) from None
    return rgb_to_planes(_cover(np.asarray(rgb), width, height))


def rgb_to_planes(rgb: np.ndarray) -> Planes:
    """An (h, w, 3) uint8 RGB array (even sides) -> BT.709 limited-range yuv420p planes."""
    ycc = cv2.transform(rgb, _RGB_TO_YCBCR)  # saturating uint8, one pass
    height, width = rgb.shape[:2]
    half = (width // 2, height // 2)
    # INTER_AREA over 2x2 blocks: centre-sited chroma, the box average of its four pixels.
    u = cv2.resize(ycc[:, :, 1], half, interpolation=cv2.INTER_AREA)
    v = cv2.resize(ycc[:, :, 2], half, interpolation=cv2.INTER_AREA)
    return Planes(np.ascontiguousarray(ycc[:, :, 0]), u, v)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited over black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = np.asarray(image.convert("F") if image.mode != "F" else image, dtype=np.float32)
        peak = float(grey.max()) if grey.size else 0.0
        scale = 255.0 / peak if peak > 255 else 1.0  # 16-bit stills use the full 0..65535 range
        image = Image.fromarray(np.clip(grey * scale, 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    if image.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _cover(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale so the still covers width x height, then crop the centre."""
    src_h, src_w = rgb.shape[:2]
    scale = max(width / src_w, height / src_h)
    crop_w = min(src_w, max(1, round(width / scale)))
    crop_h = min(src_h, max(1, round(height / scale)))
    x0 = (src_w - crop_w) // 2
    y0 = (src_h - crop_h) // 2
    crop = rgb[y0 : y0 + crop_h, x0 : x0 + crop_w]
    shrinking = crop_w > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(crop, (width, height), interpolation=interpolation)


def _describe(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]
