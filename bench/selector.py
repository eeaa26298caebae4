"""Benchmark: GPU selector decisions per second on a generated 200-row catalog.

    python bench/selector.py [--rows 200] [--seconds 2]

The launcher makes one decision per fallback job, so this only has to show the
selector is never the slow part; it prints one figure per scenario (the catalog's
default pricing, the runtime model from catalog/calibration.json, and the design
note's speed factors).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from catalog import Block, LearnedSpeeds, parse_catalog, select  # noqa: E402

REGIONS = ["us-central1", "us-east1", "us-east4", "us-west1", "europe-west4", "asia-east1", "asia-southeast1"]


def generated_catalog(rows: int, seed: int = 7) -> dict[str, Any]:
    """A catalog document with `rows` GPU options of random price, speed and zones."""
    rng = random.Random(seed)
    zones = [f"{region}-{letter}" for region in REGIONS for letter in "abcf"]
    gpus = {}
    for i in range(rows):
        speed = rng.uniform(0.5, 15)
        gpus[f"gpu{i:03d}"] = {
            "accelerator": "nvidia-bench",
            "machine_type": "n1-standard-8",
            "cost_per_hour": round(speed * rng.uniform(0.2, 0.6), 2),
            "spot_cost_per_hour": round(speed * rng.uniform(0.08, 0.2), 2),
            "preemption_rate_per_hour": rng.uniform(0, 0.2),
            "speed_factor": speed,
            "boot_overhead_s": rng.uniform(60, 300),
            "zones": rng.sample(zones, rng.randint(2, 8)),
        }
    return {"gpus": gpus}


def decisions_per_second(run: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    start = time.perf_counter()
    catalog = parse_catalog(generated_catalog(args.rows))
    load_ms = (time.perf_counter() - start) * 1000
    learned = LearnedSpeeds()
    for i in range(0, args.rows, 2):  # half the GPUs have learned speeds
        for _ in range(5):
            learned.add(f"gpu{i:03d}", render_s=600, video_s=60)
    blocks = [Block(location="us-central1"), Block(gpu="gpu001"), Block(provisioning="spot", location="europe-west4-a")]

    scenarios = {
        "on-demand": lambda: select(catalog, 180),
        "on-demand + deadline": lambda: select(catalog, 180, deadline_s=900),
        "spot + blocks + learned": lambda: select(
            catalog, 180, deadline_s=900, spot=True, blocked=blocks, learned=learned
        ),
        "speed_factor pricing": lambda: select(catalog, 180, pricing="speed_factor"),
    }
    print(f"catalog: {args.rows} GPU rows, validated in {load_ms:.1f} ms")
    for name, run in scenarios.items():
        rate = decisions_per_second(run, args.seconds)
        print(f"{name:<26} {rate:10,.0f} decisions/s  ({1000 / rate:.2f} ms each)")


if __name__ == "__main__":
    main()
