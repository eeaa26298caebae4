"""Captions: text shown as written (never markup), wrapped in the safe area, any Unicode."""

from __future__ import annotations

import numpy as np
import pytest

from render_vm.renderer.captions import (
    SAFE_MARGIN, _coverage, _Typesetter, caption_image, font_for, primary_font, render_caption,
)
from render_vm.sample_job import CAPTIONS

MARKUP = [
    "{\\b1}bold?{\\b0}",
    "line\\Nbreak? \\n \\h",
    "{\\an8}{\\pos(10,10)}{\\fs200}top?",
    "100% \"quoted\" 'single' a:b; c=d, %s %d %%",
    "back\\\\slash {} {{}} }{ ${HOME} `tick` <b>tag</b> &amp;",
]


@pytest.mark.parametrize("text", MARKUP)
def test_markup_characters_are_drawn_not_interpreted(text: str) -> None:
    """Every character takes room: the override blocks and escapes were not swallowed."""
    setter = _Typesetter(20)
    assert setter.width(text) == pytest.approx(sum(setter.width(c) for c in text), rel=0.1)
    image, _, _ = caption_image(text, 640, 360)
    ink = np.asarray(image)[:, :, 3] == 255  # opaque pixels: glyphs and their outline
    assert ink.sum() > 20 * len(text.replace(" ", ""))
    assert image.height < 360 * 0.3  # {\fs200} did not make it huge


@pytest.mark.parametrize("text", CAPTIONS + ("", "   ", "\x00\x07\t\r\n", "\u200f\u202e reversed?", "a\u0301\u0302\u0303"))
@pytest.mark.parametrize("size", [(320, 180), (1920, 1080)])
def test_any_text_renders_inside_the_frame(text: str, size: tuple[int, int]) -> None:
    width, height = size
    overlay = render_caption(text, width, height)
    if not text.strip():
        assert overlay is None
        return
    h, w = overlay.luma.shape
    assert overlay.x >= 0 and overlay.y >= 0 and overlay.x + w <= width and overlay.y + h <= height
    assert overlay.y + h <= height * (1 - SAFE_MARGIN) + 1
    assert overlay.x % 2 == overlay.y % 2 == w % 2 == h % 2 == 0


def test_long_captions_wrap_and_shrink_to_fit() -> None:
    text = ("A long caption that goes on and on, " * 14)[:500]
    image, x, y = caption_image(text, 640, 360)
    assert x >= 640 * SAFE_MARGIN - 2 and x + image.width <= 640 * (1 - SAFE_MARGIN) + 2
    assert image.height <= 360 * 0.45


def test_one_endless_word_is_broken() -> None:
    setter = _Typesetter(16)
    lines = setter.wrap("x" * 300, 200)
    assert len(lines) > 1 and all(setter.width(line) <= 200 for line in lines)
    assert "".join(lines) == "x" * 300


def test_cjk_breaks_between_ideographs() -> None:
    setter = _Typesetter(16)
    lines = setter.wrap("灯台守は毎晩海を見ていた" * 4, 150)
    assert len(lines) > 2 and all(setter.width(line) <= 150 for line in lines)


def test_missing_glyphs_fall_back_to_a_font_that_has_them() -> None:
    fonts = [primary_font()]
    font = font_for("灯", fonts)
    if font == primary_font():
        pytest.skip("no CJK font installed (Debian: fonts-noto-cjk)")
    assert ord("灯") in _coverage(font)


def test_emoji_sequences_do_not_crash() -> None:
    for text in ("👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇫🇷🇯🇵", "1️⃣", "🫠" * 30):
        assert render_caption(text, 320, 180) is not None


def test_caption_blend_is_exact_where_opaque_and_untouched_where_clear() -> None:
    overlay = render_caption("Hello", 320, 180)
    y = np.full((180, 320), 100, np.uint8)
    u = np.full((90, 160), 128, np.uint8)
    v = u.copy()
    overlay.blend_into(y, u, v)
    h, w = overlay.luma.shape
    assert (y[: overlay.y] == 100).all()  # above the caption: untouched
    region = y[overlay.y : overlay.y + h, overlay.x : overlay.x + w]
    assert region.max() >= 230  # white text
    assert region.min() <= 20  # its black outline
