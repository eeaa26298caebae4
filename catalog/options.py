"""What the selector weighs and returns: blocks, options, the decision (plain data, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from catalog.model import ON_DEMAND, PRICING_SPEED_FACTOR, PROVISIONINGS, region_of
from catalog.runtime_model import DEFAULT_SIZE


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
    """One way to render the job: a GPU type (or a CPU-only machine) bought on-demand or as Spot, with its estimate.

    A CPU-only option has accelerator "", accelerator_count 0, has_nvenc False,
    and `gpu` is its catalog name (e.g. "c3-highcpu-22").
    """

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
    vcpus: int | None = None
    estimate: dict[str, Any] | None = None  # the runtime model's terms (pricing "model"), else None

    @property
    def cpu_only(self) -> bool:
        return self.accelerator_count == 0

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
            "vcpus": self.vcpus,
            "cpu_only": self.cpu_only,
            "estimate": self.estimate,
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
    pricing: str = PRICING_SPEED_FACTOR
    size: str = DEFAULT_SIZE  # the output size the model priced

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON types (the CLI's --json)."""
        return {
            "pricing": self.pricing,
            "size": self.size,
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


def format_usd(amount: float) -> str:
    """Dollars to the cent, half up (0.375 -> $0.38, as a person rounds; float formatting may not)."""
    cents = Decimal(repr(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${cents}"
