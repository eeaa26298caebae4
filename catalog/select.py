"""Pick the machine for a fallback render: the cheapest option that meets the deadline.

For each option in the catalog (its GPUs, then its CPU-only machines), and each
way to buy it (on-demand, and Spot when asked for), the selector estimates

    pricing "model" (the default; catalog/runtime_model.py):
    render_s  = frames x (compose_s / usable_cores(vcpus) + encode_s) + start, audio, mux
                (encode_s: NVENC's where the GPU has it, else libx264 on the vCPUs)
    runtime_s = render_s + boot_overhead_s + transfer_s (inputs and output at the calibrated rate)

    pricing "speed_factor" (the design note's; also whenever a baseline is given):
    render_s  = video_length_s x baseline_s_per_s / speed_factor
    runtime_s = render_s + boot_overhead_s + transfer_overhead_s
    (a CPU-only machine has no speed factor: excluded, unless learned)

    either way: render_s = video_length_s x the learned median, once learned;
    cost_usd  = runtime_s / 3600 x price_per_hour

Spot runtime is an expectation that includes rework (see `_spot_runtime`).
It then picks the cheapest option whose runtime meets the deadline, ties broken
by runtime; if none meets it, the fastest. Options that are blocked (stockouts,
quotas), over the per-job budget, Spot after too many preemptions, or CPU-only
while $FALLBACK_GPU_ONLY is true stay in the decision, marked `excluded` with
the reason, so logs show what was weighed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from catalog.learned import LearnedSpeeds
from catalog.machines import CpuSpec
from catalog.model import (
    ENV_GPU_ONLY,
    ON_DEMAND,
    PRICING_MODEL,
    PRICING_SPEED_FACTOR,
    PRICINGS,
    PROVISIONINGS,
    SPOT,
    Catalog,
    GpuSpec,
    load_catalog,
)
from catalog.options import Block, BudgetCheck, Decision, Option, format_usd
from catalog.runtime_model import DEFAULT_SIZE, Calibration, estimate, load_calibration


def select(
    catalog: Catalog,
    video_length_s: float,
    *,
    deadline_s: float | None = None,
    spot: bool = False,
    preemptions_so_far: int = 0,
    blocked: Iterable[Block] = (),
    learned: LearnedSpeeds | None = None,
    baseline_s_per_s: float | None = None,
    overhead_s: float | None = None,
    segment_s: float | None = None,
    per_job_budget_usd: float | None = None,
    pricing: str | None = None,
    size: str = DEFAULT_SIZE,
    calibration: Calibration | None = None,
    gpu_only: bool | None = None,
) -> Decision:
    """Weigh every option of `catalog` for a video of `video_length_s` seconds and pick one.

    deadline_s: seconds from now by which the render should be done (None: no deadline).
    spot: also weigh Spot options; they are dropped once the job has been
        preempted `catalog.spot.max_preemptions` times (`preemptions_so_far`).
    blocked: what the caller cannot use (stockouts, quotas); see `Block`.
    learned: measured speeds; a GPU with enough samples is planned with them.
    baseline_s_per_s, segment_s, per_job_budget_usd: override the catalog's values.
    overhead_s: a fixed per-VM overhead replacing boot + transfer (0: none at all).
    pricing: "model" or "speed_factor" (default: the catalog's; "speed_factor" whenever
        `baseline_s_per_s` is given, as the design note's formula is the one with a baseline).
    size: the output size the model prices (a size in the calibration, e.g. "1280x720").
    calibration: the runtime model's figures (default: load_calibration()).
    gpu_only: exclude CPU-only options (default: the catalog's, i.e. $FALLBACK_GPU_ONLY).
    """
    for name, value, minimum in (
        ("video_length_s", video_length_s, "positive"),
        ("deadline_s", deadline_s, "positive"),
        ("baseline_s_per_s", baseline_s_per_s, "positive"),
        ("per_job_budget_usd", per_job_budget_usd, "positive"),
        ("overhead_s", overhead_s, "non-negative"),
        ("segment_s", segment_s, "non-negative"),
        ("preemptions_so_far", preemptions_so_far, "non-negative"),
    ):
        _check_argument(name, value, minimum)
    if pricing is not None and pricing not in PRICINGS:
        raise ValueError(f"pricing: must be one of {', '.join(PRICINGS)}, got {pricing!r}")
    chosen = PRICING_SPEED_FACTOR if baseline_s_per_s is not None else (pricing or catalog.pricing)
    settings = _Settings(
        catalog=catalog,
        video_length_s=float(video_length_s),
        baseline_s_per_s=catalog.baseline_s_per_s if baseline_s_per_s is None else baseline_s_per_s,
        overhead_s=overhead_s,
        segment_s=catalog.spot.segment_s if segment_s is None else segment_s,
        budget_usd=catalog.budget.per_job_usd if per_job_budget_usd is None else per_job_budget_usd,
        deadline_s=deadline_s,
        spot_refused=_spot_refusal(catalog, spot, preemptions_so_far),
        blocks=tuple(blocked),
        learned=learned,
        pricing=chosen,
        size=size,
        calibration=(calibration or load_calibration()) if chosen == PRICING_MODEL else None,
        gpu_only=catalog.gpu_only if gpu_only is None else gpu_only,
    )
    options = tuple(
        _option(settings, spec, provisioning)
        for spec in catalog.options.values()
        for provisioning in (PROVISIONINGS if spot else (ON_DEMAND,))
        if spec.price(provisioning) is not None
    )
    selected, missed = _pick(options, deadline_s)
    return Decision(
        video_length_s=settings.video_length_s,
        baseline_s_per_s=settings.baseline_s_per_s,
        deadline_s=deadline_s,
        options=options,
        selected=selected,
        deadline_missed=missed,
        reasons=_reasons(options, selected, missed, deadline_s),
        pricing=chosen,
        size=size,
    )


def check_daily_budget(spent_today_usd: float, cost_usd: float, *, catalog: Catalog | None = None) -> BudgetCheck:
    """Would spending `cost_usd` more today stay within the catalog's daily budget?"""
    daily = (catalog or load_catalog()).budget.daily_usd
    total = spent_today_usd + cost_usd
    ok = total <= daily
    verdict = "within" if ok else "over"
    return BudgetCheck(
        ok=ok,
        spent_today_usd=spent_today_usd,
        cost_usd=cost_usd,
        daily_usd=daily,
        reason=f"{format_usd(spent_today_usd)} spent today + {format_usd(cost_usd)} = {format_usd(total)}, "
        f"{verdict} the daily budget of {format_usd(daily)}",
    )


def _check_argument(name: str, value: float | None, minimum: str) -> None:
    """Reject a nonsense argument with one line, before it turns into a nonsense estimate."""
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (minimum == "positive" and value == 0):
        raise ValueError(f"{name}: must be a {minimum} number, got {value!r}")


# ---------------------------------------------------------------- estimating one option


@dataclass(frozen=True)
class _Settings:
    """The inputs of one `select` call, resolved against the catalog."""

    catalog: Catalog
    video_length_s: float
    baseline_s_per_s: float
    overhead_s: float | None
    segment_s: float
    budget_usd: float
    deadline_s: float | None
    spot_refused: str | None  # why Spot is not offered to this job, if it is not
    blocks: tuple[Block, ...]
    learned: LearnedSpeeds | None
    pricing: str = PRICING_SPEED_FACTOR
    size: str = DEFAULT_SIZE
    calibration: Calibration | None = None
    gpu_only: bool = False


def _option(settings: _Settings, spec: GpuSpec | CpuSpec, provisioning: str) -> Option:
    model = _model_estimate(settings, spec)
    render_s, speed_factor, source, speed_note, unpriced = _render_estimate(settings, spec, model)
    overhead = _fixed_overhead(settings, spec, model)
    price = spec.price(provisioning)
    assert price is not None  # the caller only asks for options that have a price
    notes = [speed_note]
    runtime_s, expected_preemptions, excluded = render_s + overhead, 0.0, unpriced
    if provisioning == SPOT:
        runtime_s, expected_preemptions, excluded = _spot_runtime(settings, spec, runtime_s, overhead)
        if excluded is None:
            notes.append(
                f"expected {expected_preemptions:.2f} preemptions, {runtime_s - render_s - overhead:.0f} s rework"
            )
    cost = runtime_s / 3600 * price
    zones = tuple(z for z in spec.zones if not any(b.matches(spec.name, z, provisioning) for b in settings.blocks))
    if isinstance(spec, CpuSpec) and settings.gpu_only:
        excluded = f"{ENV_GPU_ONLY}=true: the fallback uses GPU machines only"
    elif unpriced is not None:
        excluded = unpriced  # no estimate to judge it by
    elif not zones:
        excluded = _blocked_reason(settings.blocks, spec, provisioning)
    elif excluded is None and cost > settings.budget_usd:
        excluded = f"over the per-job budget: {format_usd(cost)} > {format_usd(settings.budget_usd)}"
    return Option(
        gpu=spec.name,
        provisioning=provisioning,
        machine_type=spec.machine_type,
        accelerator=spec.accelerator,
        accelerator_count=spec.accelerator_count,
        has_nvenc=spec.has_nvenc,
        zones=zones,
        speed_factor=speed_factor,
        speed_source=source,
        price_per_hour=price,
        render_s=render_s,
        overhead_s=overhead,
        runtime_s=runtime_s,
        cost_usd=cost,
        expected_preemptions=expected_preemptions,
        meets_deadline=settings.deadline_s is None or runtime_s <= settings.deadline_s,
        excluded=excluded,
        note="; ".join(notes),
        vcpus=spec.vcpus,
        estimate=model.to_dict() if model is not None else None,
    )


def _model_estimate(settings: _Settings, spec: GpuSpec | CpuSpec):
    """The runtime model's estimate for `spec` (pricing "model" and known vCPUs), else None."""
    if settings.pricing != PRICING_MODEL or spec.vcpus is None:
        return None
    assert settings.calibration is not None
    return estimate(settings.calibration, settings.video_length_s, vcpus=spec.vcpus, has_nvenc=spec.has_nvenc,
                    size=settings.size, boot_s=spec.boot_overhead_s)


def _render_estimate(settings: _Settings, spec: GpuSpec | CpuSpec, model) -> tuple[float, float, str, str, str | None]:
    """(render seconds, speed factor, "catalog"|"model"|"learned", a note on where the speed came from,
    why it cannot be priced or None)."""
    learned = settings.learned.s_per_s(spec.name) if settings.learned else None
    if learned is not None:
        assert settings.learned is not None
        note = f"learned speed: median {learned:.2f} s/s over {settings.learned.count(spec.name)} renders"
        return settings.video_length_s * learned, settings.baseline_s_per_s / learned, "learned", note, None
    if settings.pricing == PRICING_MODEL:
        if model is None:
            why = f"vcpus unknown for machine type {spec.machine_type} (give vcpus in the catalog)"
            return 0.0, 0.0, "model", why, why
        implied = settings.video_length_s * settings.baseline_s_per_s / model.render_s
        nvenc = ", NVENC assumed" if model.encode_source == "assumed" else ""
        return model.render_s, implied, "model", f"model: {model.terms()}{nvenc}", None
    if spec.speed_factor is None:
        why = "speed_factor pricing: a CPU-only machine has no speed factor (the note's factors are GPU speeds)"
        return 0.0, 0.0, "catalog", why, why
    render_s = settings.video_length_s * settings.baseline_s_per_s / spec.speed_factor
    return render_s, spec.speed_factor, "catalog", f"catalog speed x{spec.speed_factor:g}", None


def _fixed_overhead(settings: _Settings, spec: GpuSpec | CpuSpec, model) -> float:
    if settings.overhead_s is not None:
        return settings.overhead_s
    if model is not None:  # the model's transfer: the job's bytes at the calibrated rate
        return spec.boot_overhead_s + model.transfer_s
    return spec.boot_overhead_s + settings.catalog.transfer_overhead_s


def _spot_runtime(
    settings: _Settings, spec: GpuSpec | CpuSpec, runtime_s: float, overhead_s: float
) -> tuple[float, float, str | None]:
    """Expected Spot runtime including rework: (runtime_s, expected preemptions, exclusion reason).

    Each preemption costs on average half a segment of lost render (the
    renderer resumes from its last checkpoint) plus a new VM's boot and
    transfer. With preemptions at `rate` per hour, a fraction rate x loss / 3600
    of every hour is rework, so the expected runtime is runtime / (1 - that
    fraction). This is a first-order estimate; it ignores that the job falls
    back to on-demand after `max_preemptions`. Spot is refused outright when
    half of the time or more would be rework.
    """
    if settings.spot_refused:
        return runtime_s, 0.0, settings.spot_refused
    rate = spec.preemption_rate_per_hour
    if rate is None:
        rate = settings.catalog.spot.default_preemption_rate_per_hour
    loss_per_preemption = settings.segment_s / 2 + overhead_s
    wasted_fraction = rate * loss_per_preemption / 3600
    if wasted_fraction >= 0.5:  # half the VM's time lost to rework: not worth the discount
        return runtime_s, 0.0, f"spot: preemptions would waste {wasted_fraction:.0%} of the time"
    expected = runtime_s / (1 - wasted_fraction)
    return expected, rate * expected / 3600, None


def _spot_refusal(catalog: Catalog, spot: bool, preemptions_so_far: int) -> str | None:
    if spot and preemptions_so_far >= catalog.spot.max_preemptions:
        return (
            f"spot not offered after {preemptions_so_far} preemptions (max_preemptions {catalog.spot.max_preemptions})"
        )
    return None


def _blocked_reason(blocks: tuple[Block, ...], spec: GpuSpec | CpuSpec, provisioning: str) -> str:
    reasons = sorted({b.reason for b in blocks if any(b.matches(spec.name, z, provisioning) for z in spec.zones)})
    return "blocked in every zone" + (f" ({'; '.join(r for r in reasons if r)})" if any(reasons) else "")


# ---------------------------------------------------------------- choosing

_MAX_EXCLUSIONS_TOLD = 8


def _pick(options: tuple[Option, ...], deadline_s: float | None) -> tuple[Option | None, bool]:
    """(the selected option, whether the deadline is missed). Catalog order breaks exact ties."""
    eligible = [o for o in options if o.excluded is None]
    if not eligible:
        return None, False
    in_time = [o for o in eligible if o.meets_deadline]
    if in_time:
        return min(in_time, key=lambda o: (o.cost_usd, o.runtime_s)), False
    return min(eligible, key=lambda o: (o.runtime_s, o.cost_usd)), deadline_s is not None


def _reasons(options: tuple[Option, ...], selected: Option | None, missed: bool, deadline_s: float | None) -> str:
    sentences = []
    if selected is None:
        sentences.append("No option can be selected: every one is excluded.")
    elif missed:
        sentences.append(
            f"No option meets the deadline of {deadline_s:.0f} s; {selected.label} selected as the fastest "
            f"({selected.runtime_s:.0f} s, {_money(selected.cost_usd)})."
        )
    else:
        within = f" that meets the deadline of {deadline_s:.0f} s" if deadline_s is not None else ""
        sentences.append(
            f"{selected.label} selected: the cheapest option{within}, "
            f"{selected.runtime_s:.0f} s for {_money(selected.cost_usd)} ({selected.note})."
        )
        runner_up = _runner_up(options, selected)
        if runner_up is not None:
            sentences.append(
                f"Next: {runner_up.label}, {runner_up.runtime_s:.0f} s for {_money(runner_up.cost_usd)}."
            )
    excluded = [f"Excluded {o.label}: {o.excluded}." for o in options if o.excluded]
    sentences += excluded[:_MAX_EXCLUSIONS_TOLD]
    if len(excluded) > _MAX_EXCLUSIONS_TOLD:  # a big catalog must not make a huge log line
        sentences.append(f"And {len(excluded) - _MAX_EXCLUSIONS_TOLD} more excluded.")
    return " ".join(sentences)


def _runner_up(options: tuple[Option, ...], selected: Option) -> Option | None:
    others = [o for o in options if o.excluded is None and o.meets_deadline and o is not selected]
    return min(others, key=lambda o: (o.cost_usd, o.runtime_s), default=None)


def _money(amount: float) -> str:
    """To the cent, as format_usd; under 10 cents to a hundredth of a cent, so cheap options stay comparable."""
    return format_usd(amount) if amount >= 0.10 else f"${amount:.4f}"


def scaled_render_s(
    catalog: Catalog,
    render_s: float,
    video_length_s: float,
    source: str,
    target: str,
    *,
    size: str = DEFAULT_SIZE,
    calibration: Calibration | None = None,
) -> float | None:
    """`render_s` measured on option `source` (a GPU or CPU-only name), scaled to option `target`.

    By the runtime model's render estimates under pricing "model" (so a render
    on c3-highcpu-8 can be compared with Vertex's T4), by the speed factors under
    "speed_factor". None when either option is not in the catalog or cannot be
    priced (no vCPUs known; a CPU-only machine has no speed factor).
    """
    options = catalog.options
    if source not in options or target not in options:
        return None
    ours, theirs = options[source], options[target]
    if catalog.pricing == PRICING_SPEED_FACTOR:
        if ours.speed_factor is None or theirs.speed_factor is None:
            return None
        return render_s * ours.speed_factor / theirs.speed_factor
    if ours.vcpus is None or theirs.vcpus is None:
        return None
    calibration = calibration or load_calibration()
    mine, other = (estimate(calibration, video_length_s, vcpus=o.vcpus, has_nvenc=o.has_nvenc, size=size)
                   for o in (ours, theirs))
    return render_s * other.render_s / mine.render_s
