"""The encoder defaults are the ones docs/renderer.md decides, with its VMAF figures."""

from __future__ import annotations

import re
from pathlib import Path

from render_vm.renderer.encoder import DEFAULT_PRESET, X264_CRF, Encoder, choose_encoder, nvenc_available

DOC = Path(__file__).resolve().parents[2] / "docs" / "renderer.md"


def test_the_default_preset_and_crf_are_the_documented_decision() -> None:
    decided = re.search(r"^\*\*Default: x264 preset `(\w+)`, CRF (\d+)\.\*\*", DOC.read_text(), re.MULTILINE)
    assert decided, "docs/renderer.md states the decision as **Default: x264 preset `NAME`, CRF N.**"
    assert (DEFAULT_PRESET, X264_CRF) == (decided.group(1), int(decided.group(2)))


def test_a_render_without_a_preset_encodes_at_the_default() -> None:
    encoder = choose_encoder(None, 1)
    if nvenc_available():  # a GPU machine: NVENC at its own default, x264's decision does not apply
        assert encoder.name == "h264_nvenc"
        return
    assert encoder == Encoder("libx264", DEFAULT_PRESET, 1)
    args = encoder.args
    assert args[args.index("-preset") + 1] == DEFAULT_PRESET and args[args.index("-crf") + 1] == str(X264_CRF)
