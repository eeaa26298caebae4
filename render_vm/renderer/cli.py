"""``python -m render_vm render JOB_DIR -o OUT.mp4 [--workers N] [--preset NAME]``.

Exit codes (the contract): 0 the video is complete; 2 the job is invalid, with
one line on stderr naming the field (``error: scenes[3].image: file not
found: images/004.png``); 1 anything else, also one line. No traceback, and no
output file on any failure.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from common.manifest import ManifestError
from render_vm.renderer.encoder import DEFAULT_PRESET, valid_presets
from render_vm.renderer.pipeline import RenderError, default_workers, render_job
from render_vm.renderer.progress import ProgressDisplay


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m render_vm render", description="Render a job folder (job.json + assets) to an MP4."
    )
    parser.add_argument("job_dir", type=Path, help="folder holding job.json and the files it names")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    parser.add_argument("--workers", type=_positive, default=None, help=f"parallel segments (default {default_workers()})")
    parser.add_argument("--preset", choices=valid_presets(), default=None, metavar="NAME",
                        help=f"encoder speed: x264 names (default {DEFAULT_PRESET}); NVENC gets the nearest p1..p7")
    parser.add_argument("--segments-dir", type=Path, default=None,
                        help="keep finished segments here; a rerun reuses them (default: a temporary folder)")
    parser.add_argument("--progress-file", type=Path, default=None,
                        help="heartbeat JSON (frames_done, frames_total, stage, updated_at), rewritten about every second")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM (a preemption, a kill) unwinds like Ctrl-C, so temporary files are removed."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _render(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _render(args: argparse.Namespace) -> int:
    display = ProgressDisplay(args.progress_file)
    try:
        report = render_job(
            args.job_dir,
            args.output,
            workers=args.workers,
            preset=args.preset,
            segments_dir=args.segments_dir,
            on_progress=display,
        )
    except ManifestError as err:
        display({"stage": "failed", "invalid": True, "error": str(err)})
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (RenderError, OSError) as err:
        display({"stage": "failed", "error": str(err)})
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report.__dict__))
    return 0
