"""Render speeds learned from finished renders, to replace the catalog's guesses.

A sample is one finished render on one GPU type: seconds spent rendering per
second of video. Once a GPU type has `min_samples` of them, the selector plans
with their median instead of `baseline_s_per_s / speed_factor`; the median,
because one render slowed by a noisy neighbour should not move the estimate.

This is plain data: the launcher keeps it in a GCS object (``to_json`` /
``from_json``) and updates it with a generation precondition. Record the render
step only (the worker's render time, not the VM's lifetime): boot and transfer
overheads are added separately by the selector.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

FORMAT_VERSION = 1
DEFAULT_MIN_SAMPLES = 5
DEFAULT_MAX_SAMPLES = 50  # per GPU; the oldest go first, so the figure follows renderer changes


@dataclass
class LearnedSpeeds:
    """Samples of render seconds per video second, per GPU name (oldest first)."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_samples: int = DEFAULT_MAX_SAMPLES

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            raise ValueError(
                f"learned: need 1 <= min_samples <= max_samples, got {self.min_samples} and {self.max_samples}"
            )

    def add(self, gpu: str, render_s: float, video_s: float) -> None:
        """Record one render of `video_s` seconds of video that took `render_s` seconds on `gpu`."""
        if not gpu:
            raise ValueError("learned: gpu: must be a GPU name")
        for name, value in (("render_s", render_s), ("video_s", video_s)):
            if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"learned: {name}: must be a positive number, got {value!r}")
        kept = self.samples.setdefault(gpu, [])
        kept.append(render_s / video_s)
        del kept[: -self.max_samples]

    def count(self, gpu: str) -> int:
        return len(self.samples.get(gpu, ()))

    def s_per_s(self, gpu: str) -> float | None:
        """The learned render seconds per video second, or None until `min_samples` renders are known."""
        kept = self.samples.get(gpu, [])
        return statistics.median(kept) if len(kept) >= self.min_samples else None

    def to_json(self) -> str:
        return json.dumps({"version": FORMAT_VERSION, "samples": self.samples}, sort_keys=True)

    @classmethod
    def from_json(
        cls,
        text: str | bytes,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> LearnedSpeeds:
        """Parse what `to_json` wrote; a malformed document raises ValueError with one line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"learned: not valid JSON: {err}") from None
        if not isinstance(data, dict) or set(data) != {"version", "samples"}:
            raise ValueError("learned: must be an object with exactly 'version' and 'samples'")
        if data["version"] != FORMAT_VERSION:
            raise ValueError(f"learned: version: must be {FORMAT_VERSION}, got {data['version']!r}")
        samples = data["samples"]
        if not isinstance(samples, dict):
            raise ValueError("learned: samples: must be an object of GPU name to a list of numbers")
        speeds = cls(min_samples=min_samples, max_samples=max_samples)
        for gpu, values in samples.items():
            speeds.samples[gpu] = _checked_samples(gpu, values)[-max_samples:]
        return speeds


def _checked_samples(gpu: str, values: object) -> list[float]:
    if not isinstance(values, list):
        raise ValueError(f"learned: samples.{gpu}: must be a list of numbers")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"learned: samples.{gpu}[{i}]: must be a positive number, got {value!r}")
    return [float(value) for value in values]
