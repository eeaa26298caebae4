"""Memory per render worker as the scene count grows: 5 scenes against 500.

A worker holds only the stills visible in its segment, so its peak memory
should not grow with the job. Prints both renders' peaks.

    python bench/memory.py [--width 640 --height 360]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from render_vm.renderer import render_job
from render_vm.sample_job import make_sample_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()
    peaks = {}
    for scenes in (5, 500):
        with tempfile.TemporaryDirectory() as tmp:
            job = Path(tmp) / "job"
            make_sample_job(job, scenes=scenes, width=args.width, height=args.height, seconds_per_scene=1.0, job_id=f"mem-{scenes}")
            began = time.monotonic()
            report = render_job(job, Path(tmp) / "out.mp4")
            peaks[scenes] = report.worker_peak_rss_mb
            print(f"{scenes:>4} scenes: {report.video_s:6.0f} s of video in {time.monotonic() - began:5.1f} s; "
                  f"peak per worker: {report.worker_peak_rss_mb} MB composer + {report.encoder_peak_rss_mb} MB encoder", flush=True)
    print(f"composer peak, 500 scenes / 5 scenes: {peaks[500] / peaks[5]:.2f}")


if __name__ == "__main__":  # render workers are spawned: the guard is required
    main()
