"""Captions: the scene's text drawn once as pixels, then blended onto every frame.

The text is never handed to anything that parses markup (no ASS, no drawtext):
Pillow draws exactly the characters given, so ``{\\b1}``, ``\\N``, quotes,
colons and percent signs appear as written. Layout: word-wrapped (CJK may break
between any two ideographs) inside the title-safe area at the bottom, shrunk
until it fits, white text with a dark outline on a translucent box, so it reads
on any image.

Unicode: Pillow's raqm layout (HarfBuzz + FriBidi) shapes Arabic and orders
right-to-left text. Characters the main font lacks fall back, run by run, to a
font fontconfig says has them (Noto Sans CJK for CJK, Noto Color Emoji for
emoji; colour bitmap fonts only come at one size, so those runs are drawn at
that size and scaled). A character no installed font has shows as a box; it
never raises.
"""

from __future__ import annotations

import functools
import subprocess
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from render_vm.renderer.stills import rgb_to_planes

PRIMARY_FONT = "DejaVu Sans:style=Bold"
BITMAP_FONT_SIZE = 109  # the one size Noto Color Emoji's bitmaps come in
SAFE_MARGIN = 0.05  # title-safe: 5% of each side
MAX_HEIGHT = 0.40  # of the frame height, before the font shrinks
BOX_ALPHA = 150  # of 255: dark enough for white text on white, light enough to see through


# --------------------------------------------------------------------------
# Fonts


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int


@functools.lru_cache(maxsize=None)
def primary_font() -> FontFile:
    found = _fontconfig(["fc-match", "--format", "%{file}|%{index}\n", PRIMARY_FONT])
    if not found:
        raise RuntimeError("no font found: install fontconfig and fonts-dejavu-core")
    return found[0]


@functools.lru_cache(maxsize=None)
def _coverage(font: FontFile) -> frozenset[int]:
    from fontTools.ttLib import TTFont  # only caption rendering needs it

    with TTFont(font.path, fontNumber=font.index, lazy=True) as tt:
        return frozenset(tt.getBestCmap() or ())


@functools.lru_cache(maxsize=4096)
def _fallback_for(codepoint: int) -> FontFile | None:
    """The installed font fontconfig lists for this character, preferring a bold sans."""
    listing = _fontconfig(
        ["fc-list", "--format", "%{file}|%{index}|%{family[0]}|%{style[0]}\n", f":charset={codepoint:x}"],
        with_names=True,
    )

    def score(entry: tuple[FontFile, str]) -> tuple[int, int, int]:
        name = entry[1].lower()
        return ("bold" in name, "sans" in name and "mono" not in name, "oblique" not in name and "italic" not in name)

    return max(listing, key=score)[0] if listing else None


def _fontconfig(command: list[str], with_names: bool = False) -> list:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return []
    entries = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0]:
            font = FontFile(parts[0], int(parts[1] or 0))
            entries.append((font, " ".join(parts[2:])) if with_names else font)
    return entries


def font_for(char: str, fonts: list[FontFile]) -> FontFile:
    """The first font of ``fonts`` with ``char``; else a fallback (appended); else the first."""
    codepoint = ord(char)
    for font in fonts:
        if codepoint in _coverage(font):
            return font
    fallback = _fallback_for(codepoint)
    if fallback is None:
        return fonts[0]  # nobody has it: the primary font's .notdef box
    fonts.append(fallback)
    return fallback


@functools.lru_cache(maxsize=64)
def _load(font: FontFile, size: int) -> tuple[ImageFont.FreeTypeFont, float]:
    """The font at ``size``, and the scale its drawing needs (colour bitmap fonts: one size only)."""
    try:
        return ImageFont.truetype(font.path, size, index=font.index, layout_engine=ImageFont.Layout.RAQM), 1.0
    except OSError:
        bitmap = ImageFont.truetype(font.path, BITMAP_FONT_SIZE, index=font.index, layout_engine=ImageFont.Layout.RAQM)
        return bitmap, size / BITMAP_FONT_SIZE


# --------------------------------------------------------------------------
# Layout: text -> lines of runs (a run is text in one font)


@dataclass(frozen=True)
class Run:
    text: str
    font: FontFile


def split_runs(text: str, fonts: list[FontFile]) -> list[Run]:
    """Consecutive characters sharing a font; marks and joiners stay with what they follow."""
    runs: list[Run] = []
    for char in text:
        attaches = runs and unicodedata.category(char) in ("Mn", "Me", "Cf")
        font = runs[-1].font if attaches else font_for(char, fonts)
        if runs and runs[-1].font == font:
            runs[-1] = Run(runs[-1].text + char, font)
        else:
            runs.append(Run(char, font))
    return runs


def _tokens(paragraph: str) -> list[str]:
    """Break opportunities: after spaces, and around every wide (CJK) character."""
    tokens: list[str] = []
    current = ""
    for char in paragraph:
        if unicodedata.east_asian_width(char) in ("W", "F") and unicodedata.category(char).startswith("L"):
            if current:
                tokens.append(current)
            tokens.append(char)
            current = ""
            continue
        current += char
        if char == " ":
            tokens.append(current)
            current = ""
    if current:
        tokens.append(current)
    return tokens


def _clean(text: str) -> str:
    """Control characters would draw as boxes: newlines break lines, the rest become spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c if c == "\n" or unicodedata.category(c) != "Cc" else " " for c in text)


class _Typesetter:
    def __init__(self, size: int) -> None:
        self.size = size
        self.fonts = [primary_font()]

    def width(self, text: str) -> float:
        total = 0.0
        for run in split_runs(text, self.fonts):
            font, scale = _load(run.font, self.size)
            total += font.getlength(run.text) * scale
        return total

    def wrap(self, text: str, max_width: float) -> list[str]:
        lines: list[str] = []
        for paragraph in _clean(text).split("\n"):
            line = ""
            for token in _tokens(paragraph):
                if self.width(line + token.rstrip()) <= max_width or not line.strip():
                    line += token
                else:
                    lines.append(line.rstrip())
                    line = token
                while self.width(line.rstrip()) > max_width and len(line) > 1:  # one word wider than a line
                    cut = max(1, self._fit(line, max_width))
                    lines.append(line[:cut])
                    line = line[cut:]
            lines.append(line.rstrip())
        return lines

    def _fit(self, text: str, max_width: float) -> int:
        """How many leading characters of ``text`` fit in ``max_width``."""
        count = 0
        while count < len(text) and self.width(text[: count + 1]) <= max_width:
            count += 1
        return count


# --------------------------------------------------------------------------
# Drawing


def _is_rtl(text: str) -> bool:
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def _draw_line(canvas: Image.Image, line: str, centre_x: float, baseline: float, setter: _Typesetter) -> None:
    runs = split_runs(line, setter.fonts)
    direction = "rtl" if _is_rtl(line) else "ltr"  # the paragraph's, from its first strong character
    if direction == "rtl":
        runs.reverse()  # raqm orders the characters inside a run; the runs go right to left
    x = centre_x - setter.width(line) / 2
    outline = max(1, round(setter.size / 12))
    for run in runs:
        font, scale = _load(run.font, setter.size)
        if scale == 1.0:
            ImageDraw.Draw(canvas).text(
                (x, baseline), run.text, font=font, anchor="ls", direction=direction, fill=(255, 255, 255, 255),
                stroke_width=outline, stroke_fill=(0, 0, 0, 255), embedded_color=True,
            )
        else:  # a colour bitmap font: draw at its own size, then scale into the line
            width = max(1, round(font.getlength(run.text)))
            ascent, descent = font.getmetrics()
            sprite = Image.new("RGBA", (width, ascent + descent))
            ImageDraw.Draw(sprite).text((0, ascent), run.text, font=font, anchor="ls", embedded_color=True)
            scaled = sprite.resize((max(1, round(width * scale)), max(1, round((ascent + descent) * scale))), Image.LANCZOS)
            canvas.alpha_composite(scaled, (round(x), round(baseline - ascent * scale)))
        x += font.getlength(run.text) * scale


def caption_image(text: str, width: int, height: int) -> tuple[Image.Image, int, int]:
    """The caption as an RGBA block, and where its top-left goes (even coordinates)."""
    safe_w = width * (1 - 2 * SAFE_MARGIN)
    base = max(10, round(height * 0.045))
    for size in range(base, max(7, round(base * 0.6)) - 1, -1):
        setter = _Typesetter(size)
        pad = max(2, round(size * 0.4))
        lines = setter.wrap(text, safe_w - 2 * pad)
        line_h = round(size * 1.3)
        if len(lines) * line_h + 2 * pad <= height * MAX_HEIGHT:
            break
    max_lines = max(1, int((height * (1 - 2 * SAFE_MARGIN) - 2 * pad) // line_h))
    if len(lines) > max_lines:  # even the smallest size overflows the safe area: end with an ellipsis
        lines = lines[: max_lines - 1] + [lines[max_lines - 1].rstrip() + "…"]
    text_w = max((setter.width(line) for line in lines), default=0)
    box_w = _even(min(width, text_w + 2 * pad + 2))
    box_h = _even(len(lines) * line_h + 2 * pad)
    canvas = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).rounded_rectangle(
        (0, 0, box_w - 1, box_h - 1), radius=pad, fill=(0, 0, 0, BOX_ALPHA)
    )
    ascent = round(size * 0.95)  # baseline inside a 1.3-size line box, near DejaVu's own metrics
    for row, line in enumerate(lines):
        _draw_line(canvas, line, box_w / 2, pad + row * line_h + ascent, setter)
    x = _even((width - box_w) / 2)
    y = _even(height * (1 - SAFE_MARGIN) - box_h)
    return canvas, x, y


def _even(value: float) -> int:
    return max(0, int(round(value / 2)) * 2)


@dataclass(frozen=True)
class CaptionOverlay:
    """A caption in yuv420p with premultiplied 8.8 fixed-point alpha, ready to blend."""

    x: int
    y: int
    luma: np.ndarray  # colour * alpha, uint16
    luma_keep: np.ndarray  # 256 - alpha, uint16
    chroma: tuple[np.ndarray, np.ndarray]
    chroma_keep: np.ndarray

    def blend_into(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Composite onto a frame's planes in place (only the caption's rectangle is touched)."""
        h, w = self.luma.shape
        _blend(y[self.y : self.y + h, self.x : self.x + w], self.luma, self.luma_keep)
        ch, cw = self.chroma_keep.shape
        cy, cx = self.y // 2, self.x // 2
        _blend(u[cy : cy + ch, cx : cx + cw], self.chroma[0], self.chroma_keep)
        _blend(v[cy : cy + ch, cx : cx + cw], self.chroma[1], self.chroma_keep)


def _blend(region: np.ndarray, premultiplied: np.ndarray, keep: np.ndarray) -> None:
    # In place in one uint16 scratch (at most 255 * 256: no overflow), rather than four temporary arrays.
    scratch = np.multiply(region, keep, dtype=np.uint16)
    np.add(scratch, premultiplied, out=scratch)
    np.right_shift(scratch, 8, out=scratch)
    np.copyto(region, scratch, casting="unsafe")


def render_caption(text: str, width: int, height: int) -> CaptionOverlay | None:
    """The overlay for ``text`` on a ``width`` x ``height`` frame; None for blank text."""
    if not text.strip():
        return None
    image, x, y = caption_image(text, width, height)
    rgba = np.asarray(image)
    planes = rgb_to_planes(np.ascontiguousarray(rgba[:, :, :3]))
    alpha = rgba[:, :, 3].astype(np.uint16)
    alpha += alpha >> 7  # 0..255 -> 0..256, so full alpha replaces exactly
    half = cv2.resize(rgba[:, :, 3], (planes.u.shape[1], planes.u.shape[0]), interpolation=cv2.INTER_AREA)
    half_alpha = half.astype(np.uint16) + (half >> 7)
    return CaptionOverlay(
        x=x,
        y=y,
        luma=planes.y * alpha,
        luma_keep=256 - alpha,
        chroma=(planes.u * half_alpha, planes.v * half_alpha),
        chroma_keep=256 - half_alpha,
    )
