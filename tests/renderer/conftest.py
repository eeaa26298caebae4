"""Shared fixtures: tiny synthetic jobs (320x180, short scenes) and one render of them.

The job generator is ``render_vm.sample_job`` (the demo and the benchmark use it
too): stills of every odd kind, narration in every audio format, music, and
captions full of markup characters and non-Latin scripts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from render_vm.renderer import RenderReport, render_job
from render_vm.sample_job import make_sample_job

TINY = {"width": 320, "height": 180, "seconds_per_scene": 1.2, "fps": 30}


@pytest.fixture(scope="session")
def tiny_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve scenes: every still kind and audio kind once, music, captions. Do not modify."""
    job_dir = tmp_path_factory.mktemp("tiny-job")
    make_sample_job(job_dir, scenes=12, **TINY)
    return job_dir


@pytest.fixture(scope="session")
def tiny_render(tiny_job: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderReport, Path]:
    """The tiny job rendered once with default settings: (report, video path)."""
    out = tmp_path_factory.mktemp("tiny-render") / "video.mp4"
    return render_job(tiny_job, out, workers=2), out


@pytest.fixture
def small_job(tmp_path: Path) -> Path:
    """A four-scene job of its own, free to break or change."""
    job_dir = tmp_path / "job"
    make_sample_job(job_dir, scenes=4, with_music=False, **TINY)
    return job_dir
