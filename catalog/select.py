"""Pick the GPU for a fallback render: the cheapest option that meets the deadline.

For each GPU in the catalog, and each way to buy it (on-demand, and Spot when
asked for), the selector estimates

    render_s  = video_length_s x baseline_s_per_s / speed_factor
                (or video_length_s x the learned median, once learned)
    runtime_s = render_s + boot_overhead_s + transfer_overhead_s
    cost_usd  = runtime_s / 3600 x price_per_hour

Spot runtime is an expectation that includes rework (see `_spot_runtime`).
It then picks the cheapest option whose runtime meets the deadline, ties broken
by runtime; if none meets it, the fastest. Options that are blocked (stockouts,
quotas), over the per-job budget, or Spot after too many preemptions stay in the
decision, marked `excluded` with the reason, so logs show what was weighed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from catalog.learned import LearnedSpeeds
from catalog.model import ON_DEMAND, PROVISIONINGS, SPOT, Catalog, GpuSpec, load_catalog, region_of


@dataclass(frozen=True)
class Block:
    """Something the caller cannot use now. Empty fields match anything.

    `location` is a zone (us-central1-a) or a whole region (us-central1). For
    example a stockout is Block(gpu="l4", location="us-central1-a"), a regional
    Spot quota is Block(gpu="l4", location="us-central1", provisioning="spot").
    """

    gpu: str | None = None
    location: str | None = None
    provisioning: str | None = None
    reason: str = ""

    def matches(self, gpu: str, zone: str, provisioning: str) -> bool:
        return (
            (self.gpu is None or self.gpu == gpu)
            and (self.provisioning is None or self.provisioning == provisioning)
            and (self.location is None or self.location in (zone, region_of(zone)))
        )

    @classmethod
    def parse(cls, text: str) -> Block:
        """Read the command line form GPU[:PROVISIONING][@ZONE_OR_REGION], e.g. l4:spot@us-central1."""
        what, _, location = text.partition("@")
        gpu, _, provisioning = what.partition(":")
        if provisioning and provisioning not in PROVISIONINGS:
            raise ValueError(f"block {text!r}: provisioning must be one of {', '.join(PROVISIONINGS)}")
        if not (gpu or location or provisioning):
            raise ValueError(f"block {text!r}: name a GPU, a provisioning or a location")
        return cls(gpu=gpu or None, location=location or None, provisioning=provisioning or None, reason=text)


@dataclass(frozen=True)
class Option:
    """One way to render the job: a GPU type bought on-demand or as Spot, with its estimate."""

    gpu: str
    provisioning: str  # "on-demand" or "spot"
    machine_type: str
    accelerator: str
    accelerator_count: int
    has_nvenc: bool
    zones: tuple[str, ...]  # the zones not blocked, in order of preference
    speed_factor: float  # relative to a T4; from the catalog, or implied by the learned speed
    speed_source: str  # "catalog" or "learned"
    price_per_hour: float
    render_s: float  # rendering alone
    overhead_s: float  # boot + transfer, once
    runtime_s: float  # VM time: render + overhead (+ expected rework for Spot)
    cost_usd: float
    expected_preemptions: float  # 0 for on-demand
    meets_deadline: bool  # True when there is no deadline
    excluded: str | None  # why this option may not be selected; None when it may
    note: str

    @property
    def label(self) -> str:
        return self.gpu if self.provisioning == ON_DEMAND else f"{self.gpu} {self.provisioning}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "provisioning": self.provisioning,
            "machine_type": self.machine_type,
            "accelerator": self.accelerator,
            "accelerator_count": self.accelerator_count,
            "has_nvenc": self.has_nvenc,
            "zones": list(self.zones),
            "speed_factor": round(self.speed_factor, 4),
            "speed_source": self.speed_source,
            "price_per_hour": self.price_per_hour,
            "render_s": round(self.render_s, 1),
            "overhead_s": round(self.overhead_s, 1),
            "runtime_s": round(self.runtime_s, 1),
            "cost_usd": round(self.cost_usd, 4),
            "expected_preemptions": round(self.expected_preemptions, 4),
            "meets_deadline": self.meets_deadline,
            "excluded": self.excluded,
            "note": self.note,
        }


@dataclass(frozen=True)
class Decision:
    """What the selector weighed and what it chose. `selected` is None when every option is excluded."""

    video_length_s: float
    baseline_s_per_s: float
    deadline_s: float | None
    options: tuple[Option, ...]
    selected: Option | None
    deadline_missed: bool  # a deadline was given and no eligible option meets it
    reasons: str  # a few sentences for people: why this one, what was excluded

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types (the CLI's --json)."""
        return {
            "video_length_s": self.video_length_s,
            "baseline_s_per_s": self.baseline_s_per_s,
            "deadline_s": self.deadline_s,
            "selected": self.selected.gpu if self.selected else None,
            "selected_provisioning": self.selected.provisioning if self.selected else None,
            "deadline_missed": self.deadline_missed,
            "reasons": self.reasons,
            "options": [option.to_dict() for option in self.options],
        }

    def to_log(self) -> dict[str, Any]:
        """Fields for one structured log line: the choice in full, the others in brief."""
        chosen = self.selected
        return {
            "gpu": chosen.gpu if chosen else None,
            "provisioning": chosen.provisioning if chosen else None,
            "machine_type": chosen.machine_type if chosen else None,
            "zones": list(chosen.zones) if chosen else [],
            "runtime_s": round(chosen.runtime_s, 1) if chosen else None,
            "cost_usd": round(chosen.cost_usd, 4) if chosen else None,
            "speed_source": chosen.speed_source if chosen else None,
            "video_length_s": self.video_length_s,
            "deadline_s": self.deadline_s,
            "deadline_missed": self.deadline_missed,
            "options": [
                {
                    "gpu": o.gpu,
                    "provisioning": o.provisioning,
                    "runtime_s": round(o.runtime_s, 1),
                    "cost_usd": round(o.cost_usd, 4),
                    "excluded": o.excluded,
                }
                for o in self.options
            ],
            "reasons": self.reasons,
        }


@dataclass(frozen=True)
class BudgetCheck:
    ok: bool
    spent_today_usd: float
    cost_usd: float
    daily_usd: float
    reason: str

    def __bool__(self) -> bool:
        return self.ok


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
) -> Decision:
    """Weigh every option of `catalog` for a video of `video_length_s` seconds and pick one.

    deadline_s: seconds from now by which the render should be done (None: no deadline).
    spot: also weigh Spot options; they are dropped once the job has been
        preempted `catalog.spot.max_preemptions` times (`preemptions_so_far`).
    blocked: what the caller cannot use (stockouts, quotas); see `Block`.
    learned: measured speeds; a GPU with enough samples is planned with them.
    baseline_s_per_s, segment_s, per_job_budget_usd: override the catalog's values.
    overhead_s: a fixed per-VM overhead replacing boot + transfer (0: none at all).
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
    )
    options = tuple(
        _option(settings, spec, provisioning)
        for spec in catalog.gpus.values()
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


def _option(settings: _Settings, spec: GpuSpec, provisioning: str) -> Option:
    render_s, speed_factor, source, speed_note = _render_estimate(settings, spec)
    overhead = _fixed_overhead(settings, spec)
    price = spec.price(provisioning)
    assert price is not None  # the caller only asks for options that have a price
    notes = [speed_note]
    runtime_s, expected_preemptions, excluded = render_s + overhead, 0.0, None
    if provisioning == SPOT:
        runtime_s, expected_preemptions, excluded = _spot_runtime(settings, spec, runtime_s, overhead)
        if excluded is None:
            notes.append(
                f"expected {expected_preemptions:.2f} preemptions, {runtime_s - render_s - overhead:.0f} s rework"
            )
    cost = runtime_s / 3600 * price
    zones = tuple(z for z in spec.zones if not any(b.matches(spec.name, z, provisioning) for b in settings.blocks))
    if not zones:
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
    )


def _render_estimate(settings: _Settings, spec: GpuSpec) -> tuple[float, float, str, str]:
    """(render seconds, speed factor, "catalog"|"learned", a note saying where the speed came from)."""
    learned = settings.learned.s_per_s(spec.name) if settings.learned else None
    if learned is not None:
        assert settings.learned is not None
        note = f"learned speed: median {learned:.2f} s/s over {settings.learned.count(spec.name)} renders"
        return settings.video_length_s * learned, settings.baseline_s_per_s / learned, "learned", note
    render_s = settings.video_length_s * settings.baseline_s_per_s / spec.speed_factor
    return render_s, spec.speed_factor, "catalog", f"catalog speed x{spec.speed_factor:g}"


def _fixed_overhead(settings: _Settings, spec: GpuSpec) -> float:
    if settings.overhead_s is not None:
        return settings.overhead_s
    return spec.boot_overhead_s + settings.catalog.transfer_overhead_s


def _spot_runtime(
    settings: _Settings, spec: GpuSpec, runtime_s: float, overhead_s: float
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


def _blocked_reason(blocks: tuple[Block, ...], spec: GpuSpec, provisioning: str) -> str:
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
            f"({selected.runtime_s:.0f} s, {format_usd(selected.cost_usd)})."
        )
    else:
        within = f" that meets the deadline of {deadline_s:.0f} s" if deadline_s is not None else ""
        sentences.append(
            f"{selected.label} selected: the cheapest option{within}, "
            f"{selected.runtime_s:.0f} s for {format_usd(selected.cost_usd)} ({selected.note})."
        )
        runner_up = _runner_up(options, selected)
        if runner_up is not None:
            sentences.append(
                f"Next: {runner_up.label}, {runner_up.runtime_s:.0f} s for {format_usd(runner_up.cost_usd)}."
            )
    excluded = [f"Excluded {o.label}: {o.excluded}." for o in options if o.excluded]
    sentences += excluded[:_MAX_EXCLUSIONS_TOLD]
    if len(excluded) > _MAX_EXCLUSIONS_TOLD:  # a big catalog must not make a huge log line
        sentences.append(f"And {len(excluded) - _MAX_EXCLUSIONS_TOLD} more excluded.")
    return " ".join(sentences)


def _runner_up(options: tuple[Option, ...], selected: Option) -> Option | None:
    others = [o for o in options if o.excluded is None and o.meets_deadline and o is not selected]
    return min(others, key=lambda o: (o.cost_usd, o.runtime_s), default=None)


def format_usd(amount: float) -> str:
    """Dollars to the cent, half up (0.375 -> $0.38, as a person rounds; float formatting may not)."""
    cents = Decimal(repr(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${cents}"
