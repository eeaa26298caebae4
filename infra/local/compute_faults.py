"""Fault injection for the local Compute Engine: what ``POST /_admin/faults`` sets.

Kept apart from the service (as LocalStack keeps its chaos API apart). An
insert asks ``Faults.insert_error`` which refusal it meets; the refusal's shape
comes from ``compute_errors.TABLE``, so every injected error looks like the
real one. Unknown keys are a 400.

    {"insert_errors": [{"code": "RESOURCE_OPERATION_RATE_EXCEEDED",
                        "zones": ["us-central1-a"] | ["*"],
                        "gpus": ["*"],              # optional; "*" also matches a CPU-only insert
                        "times": 2 | null}],        # null: every matching insert
     "insert_delay_s": null,      # null: the server's --insert-delay-s
     "hang_after_s": null,        # SIGSTOP an instance this long after it is RUNNING
     "preempt_after_s": null,     # preempt a Spot instance this long after it is RUNNING
     # older keys, the same table underneath:
     "stockout_zones": [], "stockout_with_details": false,
     "quota_exceeded": [{"region": "us-central1", "gpu": "nvidia-l4"}],   # gpu "*" = any GPU
     "gpus_all_regions": ["nvidia-tesla-t4"],                             # "*" = any GPU
     "permission_denied": false}

A rule's ``code`` is a key of ``compute_errors.TABLE`` (mostly GCE's own
code, e.g. ``ZONE_RESOURCE_POOL_EXHAUSTED``, ``rateLimitExceeded``,
``GPUS_ALL_REGIONS``). ``times`` counts the inserts a rule refuses (``GET
/_admin/faults`` shows what is left); a retry with the same ``requestId`` gets
the same operation back and is not counted.
``insert_delay_s``, ``hang_after_s`` and ``preempt_after_s`` apply to inserts
made after they are set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from infra.local._http import ApiError, JsonDict
from infra.local.compute_errors import TABLE
from infra.local.compute_models import region_of


@dataclass
class InsertErrorRule:
    """Refuse matching inserts with ``code``'s real shape, ``times`` times (None: always)."""

    code: str
    zones: list[str] = field(default_factory=lambda: ["*"])
    gpus: list[str] = field(default_factory=lambda: ["*"])
    times: int | None = None

    @classmethod
    def from_json(cls, body: Any) -> InsertErrorRule:
        if not isinstance(body, dict) or "code" not in body:
            raise ApiError(400, f"an insert_errors rule is an object with a code: {body!r}", reason="invalid")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApiError(400, f"unknown insert_errors keys: {sorted(unknown)}", reason="invalid")
        rule = cls(**body)
        if rule.code not in TABLE:
            raise ApiError(400, f"unknown insert error code {rule.code!r}; known: {sorted(TABLE)}", reason="invalid")
        if rule.times is not None and (not isinstance(rule.times, int) or rule.times < 1):
            raise ApiError(400, "times must be a positive integer or null", reason="invalid")
        return rule

    def matches(self, zone: str, gpus: list[str]) -> str | bool:
        """False, or True / the matched GPU: the zone must match, and a GPU if ``gpus`` names any."""
        if self.times == 0 or not ("*" in self.zones or zone in self.zones):
            return False
        if "*" in self.gpus:
            return gpus[0] if gpus else True
        return next((gpu for gpu in gpus if gpu in self.gpus), False)


@dataclass
class Faults:
    """Injected failures; see the module docstring for their meaning."""

    insert_errors: list[InsertErrorRule] = field(default_factory=list)
    insert_delay_s: float | None = None
    hang_after_s: float | None = None
    preempt_after_s: float | None = None
    stockout_zones: list[str] = field(default_factory=list)
    stockout_with_details: bool = False
    quota_exceeded: list[dict[str, str]] = field(default_factory=list)
    gpus_all_regions: list[str] = field(default_factory=list)
    permission_denied: bool = False

    @classmethod
    def from_json(cls, body: JsonDict) -> Faults:
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApiError(400, f"unknown fault keys: {sorted(unknown)}", reason="invalid")
        values = dict(body)
        values["insert_errors"] = [InsertErrorRule.from_json(rule) for rule in body.get("insert_errors") or []]
        faults = cls(**values)
        for rule in faults.quota_exceeded:
            if set(rule) != {"region", "gpu"}:
                raise ApiError(400, f"quota_exceeded rules need exactly region and gpu: {rule}", reason="invalid")
        for name in ("insert_delay_s", "hang_after_s", "preempt_after_s"):
            value = getattr(faults, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ApiError(400, f"{name} must be a number of seconds >= 0, or null", reason="invalid")
        return faults

    def to_json(self) -> JsonDict:
        return asdict(self)

    def insert_error(self, zone: str, gpus: list[str]) -> tuple[str, str | None] | None:
        """The refusal an insert in ``zone`` asking for ``gpus`` meets: (table key, matched GPU), or None.

        Explicit ``insert_errors`` rules first, in order (a matching rule with
        ``times`` uses one up); then the older keys: permission, global GPU
        quota, regional GPU quota, stockout. Call under the service's lock.
        """
        for rule in self.insert_errors:
            matched = rule.matches(zone, gpus)
            if matched is not False:
                if rule.times is not None:
                    rule.times -= 1
                return rule.code, matched if isinstance(matched, str) else None
        if self.permission_denied:
            return "forbidden", None
        for gpu in gpus:
            if gpu in self.gpus_all_regions or "*" in self.gpus_all_regions:
                return "GPUS_ALL_REGIONS", gpu
        for quota in self.quota_exceeded:
            for gpu in gpus:
                if quota["region"] in (region_of(zone), "*") and quota["gpu"] in (gpu, "*"):
                    return "QUOTA_EXCEEDED", gpu
        if zone in self.stockout_zones:
            suffix = "_WITH_DETAILS" if self.stockout_with_details else ""
            return f"ZONE_RESOURCE_POOL_EXHAUSTED{suffix}", None
        return None
