"""What the primary renderer, a Vertex AI custom job, is expected to take, by the catalog's pricing.

The watchdog hedges a primary that runs well past this (``functions/watchdog.py``), and ``avmonitor
cost`` prices Vertex AI with it (``operators/cost_basis.py``), so both read it here:

* ``model`` (the default): the runtime model for the primary's own machine type (n1-standard-8 with a
  T4 by default: that machine type's vCPUs, not the catalog's t4 option's n1-standard-4) and whether
  its GPU has NVENC, at the selector's output size, plus the job's transfer.
* ``speed_factor``: the design note's ``baseline_s_per_s / speed_factor`` of the accelerator's GPU,
  plus the catalog's transfer overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.machines import default_vcpus
from catalog.model import PRICING_SPEED_FACTOR, Catalog, GpuSpec
from catalog.runtime_model import DEFAULT_SIZE, Estimate, estimate, load_calibration


@dataclass(frozen=True)
class PrimaryEstimate:
    render_s: float  # the render alone
    transfer_s: float  # the job's inputs and output through Cloud Storage
    start_s: float  # an allowance for the container's start once the job runs: its GPU's boot overhead
    basis: str  # "runtime model, n1-standard-8" or "speed factor"

    @property
    def total_s(self) -> float:
        return self.render_s + self.transfer_s + self.start_s


def vertex_gpu(catalog: Catalog, accelerator: str) -> GpuSpec | None:
    """The catalog GPU the Vertex accelerator is (its speed factor, its NVENC), None if the catalog does not say."""
    return catalog.gpus.get(catalog.vertex.gpu(accelerator) or "") if catalog.vertex else None


def model_estimate(vcpus: int | None, has_nvenc: bool, video_s: float) -> Estimate | None:
    if vcpus is None or not video_s:
        return None
    return estimate(load_calibration(), video_s, vcpus=vcpus, has_nvenc=has_nvenc, size=DEFAULT_SIZE)


def vertex_model(catalog: Catalog, machine: str, accelerator: str, video_s: float) -> Estimate | None:
    """The runtime model's estimate on Vertex's own machine type; None if the accelerator or vCPUs are unknown."""
    gpu = vertex_gpu(catalog, accelerator)
    return model_estimate(default_vcpus(machine), gpu.has_nvenc, video_s) if gpu else None


def primary_estimate(catalog: Catalog, video_s: float, machine: str, accelerator: str) -> PrimaryEstimate | None:
    """The primary's expected run for a `video_s` video, None when the catalog cannot price it."""
    gpu = vertex_gpu(catalog, accelerator)
    if gpu is None or not video_s:
        return None
    if catalog.pricing == PRICING_SPEED_FACTOR:
        return PrimaryEstimate(video_s * catalog.baseline_s_per_s / gpu.speed_factor, catalog.transfer_overhead_s,
                               gpu.boot_overhead_s, "speed factor")
    model = vertex_model(catalog, machine, accelerator, video_s)
    if model is None:
        return None
    return PrimaryEstimate(model.render_s, model.transfer_s, gpu.boot_overhead_s, f"runtime model, {machine}")
