"""What a render is expected to take, on a catalog option and on Vertex AI, under the catalog's pricing.

``avmonitor cost`` compares what each job cost with what Vertex AI would have
cost, and the catalog's speeds with the learned ones. Both need "how long does
this render take on that machine", and the answer follows the catalog's
``pricing`` (catalog/model.py), as the selector's estimates do:

* ``model`` (the default): the runtime model (catalog/runtime_model.py) from the
  machine's vCPUs and whether it has NVENC, at the selector's output size. This
  renderer composes on the CPU, so a CPU-only machine (c3-highcpu-8) has an
  estimate like any GPU's. Vertex AI's machine is the primary's machine type
  (n1-standard-8 + a T4 by default), with that machine type's vCPUs: not the
  catalog's t4 option (n1-standard-4), which would price Vertex on half the cores
  and overstate every saving.
* ``speed_factor``: the design note's ``baseline_s_per_s / speed_factor``; a
  CPU-only machine has no speed factor, so its renders cannot be scaled (the
  report falls back to the Vertex estimate and says so).
"""

from __future__ import annotations

import statistics
from typing import Any

from catalog.learned import LearnedSpeeds
from catalog.model import PRICING_SPEED_FACTOR, Catalog
from catalog.primary import model_estimate, primary_estimate, vertex_gpu, vertex_model
from catalog.runtime_model import DEFAULT_SIZE
from catalog.select import scaled_render_s
from functions.state import JobState

# speeds() has no job to price, so it prices one of this length: the standard benchmark job's
# 3 minutes (catalog/runtime_model.py's SCENE_S) and `python -m catalog estimate --length 180`'s
# example. Under the model a render's seconds per video second depend on its length (fixed start and
# mux costs, the last round of segments), so the figure is for this length, and says so.
SPEEDS_VIDEO_S = 180.0


def vertex_price(catalog: Catalog, machine: str, accelerator: str) -> float | None:
    return catalog.vertex.price_per_hour(machine, accelerator) if catalog.vertex else None


def option_render_s(catalog: Catalog, name: str, video_s: float) -> float | None:
    """An option's expected render of `video_s` seconds (no boot, no transfer), as the selector plans it
    before anything is learned; None when it cannot be priced (not in the catalog, vCPUs unknown, or a
    CPU-only machine under speed_factor pricing)."""
    spec = catalog.options.get(name)
    if spec is None:
        return None
    if catalog.pricing == PRICING_SPEED_FACTOR:
        return video_s * catalog.baseline_s_per_s / spec.speed_factor if spec.speed_factor else None
    found = model_estimate(spec.vcpus, spec.has_nvenc, video_s)
    return found.render_s if found else None


def vertex_estimate_usd(state: JobState, catalog: Catalog, machine: str, accelerator: str) -> float | None:
    """What rendering the job on Vertex AI is expected to cost: its render on Vertex's machine, plus transfer."""
    price = vertex_price(catalog, machine, accelerator)
    expected = primary_estimate(catalog, state.video_length_s or 0.0, machine, accelerator)
    if price is None or expected is None:
        return None
    return (expected.render_s + expected.transfer_s) / 3600 * price


def vertex_equivalent(state: JobState, catalog: Catalog, machine: str, accelerator: str, vertex_usd: float | None,
                      vertex_estimate: float | None) -> tuple[float | None, str | None]:
    """(what the job's render would have cost on Vertex AI, how that was found)."""
    result = state.result
    if result.rendered_by == "vertex":
        return vertex_usd, "its Vertex runs"
    price, theirs = vertex_price(catalog, machine, accelerator), vertex_gpu(catalog, accelerator)
    scaled, how = None, ""
    if price is not None and theirs and result.gpu and result.wall_s:
        video_s = result.video_s or state.video_length_s or 0.0
        if catalog.pricing == PRICING_SPEED_FACTOR:
            scaled, how = scaled_render_s(catalog, result.wall_s, video_s, result.gpu, theirs.name), "speed factors"
        else:  # the model's ratio, as scaled_render_s's, but to Vertex's own machine type (see the module's note)
            ours, vertex = option_render_s(catalog, result.gpu, video_s), vertex_model(catalog, machine, accelerator,
                                                                                        video_s)
            if ours and vertex:
                scaled, how = result.wall_s * vertex.render_s / ours, f"runtime model, {machine}"
    if scaled is not None:
        transfer = max(0.0, (result.worker_wall_s or result.wall_s) - result.wall_s)
        return (scaled + transfer) / 3600 * price, f"measured on {result.gpu}, scaled to {theirs.name} ({how})"
    return vertex_estimate, "Vertex estimate" if vertex_estimate is not None else None


def speeds(catalog: Catalog, learned: LearnedSpeeds) -> list[dict[str, Any]]:
    """Per option (GPUs, then CPU-only machines, then names only learned): the catalog's render seconds per
    video second against what renders measured."""
    options = catalog.options
    basis = (f"speed factor, {catalog.baseline_s_per_s:g} s/s on a T4" if catalog.pricing == PRICING_SPEED_FACTOR
             else f"runtime model, a {SPEEDS_VIDEO_S:g} s video at {DEFAULT_SIZE}")
    rows = []
    for name in [*options, *(g for g in learned.samples if g not in options)]:
        spec, samples = options.get(name), learned.samples.get(name, [])
        render_s = option_render_s(catalog, name, SPEEDS_VIDEO_S)
        expected = render_s / SPEEDS_VIDEO_S if render_s is not None else None
        measured = statistics.median(samples) if samples else None
        rows.append({"gpu": name, "in_catalog": spec is not None,
                     "cpu_only": spec.accelerator_count == 0 if spec is not None else None,
                     "catalog_s_per_s": _round(expected, 3), "catalog_basis": basis if expected is not None else None,
                     "samples": len(samples), "learned_s_per_s": _round(measured, 3),
                     "used_by_selector": learned.s_per_s(name) is not None,
                     "learned_vs_catalog": _round(measured / expected - 1, 4) if measured and expected else None})
    return rows


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)
