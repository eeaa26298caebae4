"""Progress for people and for the pipeline: a terminal bar and a heartbeat file.

``render_job`` reports a small dict (``frames_done``, ``frames_total``,
``stage``, ...) through its ``on_progress`` callback; the command line turns it
into a bar on stderr (only when stderr is a terminal, so logs stay clean) and,
with ``--progress-file``, into a JSON file written atomically, so a reader never
sees half of it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

BAR_WIDTH = 30
FILE_EVERY_S = 1.0  # heartbeat file writes at most this often, except on a stage change


class ProgressDisplay:
    """Callable as ``on_progress``: draws the bar and writes the heartbeat file."""

    def __init__(self, progress_file: Path | None, stream: TextIO = sys.stderr) -> None:
        self.progress_file = progress_file
        self.stream = stream
        self.tty = stream.isatty()
        self._last_write = 0.0
        self._stage = ""

    def __call__(self, progress: dict) -> None:
        stage_changed = progress.get("stage") != self._stage
        self._stage = progress.get("stage", "")
        if self.tty:
            self._draw(progress)
        now = time.monotonic()
        if self.progress_file is not None and (stage_changed or now - self._last_write >= FILE_EVERY_S):
            self._last_write = now
            write_json_atomic(self.progress_file, {**progress, "updated_at": time.time()})

    def _draw(self, progress: dict) -> None:
        done, total = progress.get("frames_done", 0), max(1, progress.get("frames_total", 1))
        filled = int(BAR_WIDTH * done / total)
        fps = progress.get("fps") or 0
        eta = f" eta {int((total - done) / fps)}s" if fps and done < total else ""
        line = f"\r{progress.get('stage', ''):>9} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} frames {fps:.0f} fps{eta}"
        self.stream.write(line.ljust(80))
        if progress.get("stage") in ("done", "failed"):
            self.stream.write("\n")
        self.stream.flush()


def write_json_atomic(path: Path, body: dict) -> None:
    """Write to a temporary name beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(body))
    partial.replace(path)
