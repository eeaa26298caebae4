"""The GPU catalog as typed data: load a YAML file, validate it, apply env overrides.

Every problem is reported as one `CatalogError` line that names the field, e.g.
``catalog: gpus.l4.speed_factor: must be a positive number, got -1``, because a
bad catalog must stop a deploy (or `python -m catalog validate`) with a message
a person can act on, not with a traceback. Unknown fields are errors too: a
misspelt ``cost_per_hour`` must not silently fall back to a default.

Two forms are read. The full form (catalog/gpu_catalog.yml) lists GPUs under
``gpus:`` with their machine type and zones. The design note's short form has
no ``gpus:``: its top-level keys other than the settings (version,
baseline_s_per_s, transfer_overhead_s, budget, spot, vertex) are GPU entries,
each with ``cost_per_hour`` and ``speed_factor`` and optionally ``accelerator``,
``machine`` (the machine type) and any full-form GPU field. What one omits
comes from the bundled catalog: accelerator by name (t4, l4, v100, a100, h100),
machine by accelerator, zones of that accelerator in $REGION (default
us-central1), has_nvenc by accelerator (T4, L4, V100 true; A100, H100 false);
boot_overhead_s is the full form's default (150) and there is no Spot price
(not offered as Spot). catalog/short_form.py turns it into the full form before
the validation below; errors name its own paths (``l4.cost_per_hour``). Mixing
``gpus:`` with top-level GPU entries is an error.

Machines without GPUs are listed under ``cpus:`` (catalog/machines.py); every
option has ``vcpus`` (a default per machine type). ``pricing:`` says how the
selector estimates a render: ``model`` (the default) from the renderer's
measured costs (catalog/runtime_model.py, catalog/calibration.json), or
``speed_factor``, the design note's ``baseline_s_per_s / speed_factor``, for a
renderer that is GPU-bound; the short form defaults to ``speed_factor``, the
note's own formula. CPU-only options have no speed factor: under
``speed_factor`` pricing they are excluded, with that reason.

The environment overrides (read by `load_catalog`):

- GPU_CATALOG: the catalog file (default: the bundled catalog/gpu_catalog.yml).
- BASELINE_T4_SPEED_S_PER_S: replaces ``baseline_s_per_s``; setting it also
  selects ``speed_factor`` pricing (a baseline only means something there),
  unless CATALOG_PRICING says otherwise.
- CATALOG_PRICING: ``model`` or ``speed_factor``, replacing ``pricing:``.
- FALLBACK_GPU_ONLY: ``true`` keeps CPU-only options out of the fallback (they
  stay in each decision, excluded with that reason); default ``false``.
- CATALOG_CALIBRATION: the calibration file the model reads (runtime_model.py).
- REGION: where short-form entries without zones get their zones.
- VIDEO_LENGTH_S: overrides the planned video length (`resolve_video_length`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from catalog.checks import (  # noqa: F401  (re-exported: short_form and callers use model.positive ...)
    CatalogError,
    _boolean,
    _count,
    _fields,
    _non_negative,
    _optional,
    _parse_yaml,
    _zones,
    catalog_error,
    gpu_name,
    matching,
    positive,
)
from catalog.machines import CpuSpec, parse_cpus, vcpus_field

DEFAULT_CATALOG_PATH = Path(__file__).with_name("gpu_catalog.yml")

# Environment overrides named in the design note.
ENV_CATALOG = "GPU_CATALOG"
ENV_BASELINE = "BASELINE_T4_SPEED_S_PER_S"
ENV_VIDEO_LENGTH = "VIDEO_LENGTH_S"
# The deployment's region (functions/config.py reads it too); the short form's default zones are in it.
ENV_REGION = "REGION"
DEFAULT_REGION = "us-central1"
ENV_PRICING = "CATALOG_PRICING"
ENV_GPU_ONLY = "FALLBACK_GPU_ONLY"
PRICING_MODEL = "model"
PRICING_SPEED_FACTOR = "speed_factor"
PRICINGS = (PRICING_MODEL, PRICING_SPEED_FACTOR)

ON_DEMAND = "on-demand"
SPOT = "spot"
PROVISIONINGS = (ON_DEMAND, SPOT)

ACCELERATOR = re.compile(r"^nvidia-[a-z0-9-]+$")
MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*$")
_VERTEX_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*$")  # Vertex's AcceleratorType enum names: NVIDIA_TESLA_T4
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


@dataclass(frozen=True)
class GpuSpec:
    """One GPU option: the VM shape to ask Compute Engine for, its price and its speed."""

    name: str
    accelerator: str
    accelerator_count: int
    machine_type: str
    cost_per_hour: float | None  # on-demand USD/h for machine + GPU; None: not sold on-demand
    spot_cost_per_hour: float | None  # None: not sold as Spot
    preemption_rate_per_hour: float | None  # None: use the catalog's spot default
    speed_factor: float  # render speed relative to a T4
    zones: tuple[str, ...]  # in order of preference
    boot_overhead_s: float
    has_nvenc: bool
    vcpus: int | None = None  # the machine type's; None: unknown (the model cannot price it)

    def price(self, provisioning: str) -> float | None:
        """USD per hour for `provisioning` ("on-demand" or "spot"), None when not offered."""
        return self.cost_per_hour if provisioning == ON_DEMAND else self.spot_cost_per_hour


@dataclass(frozen=True)
class Budget:
    per_job_usd: float
    daily_usd: float


@dataclass(frozen=True)
class SpotPolicy:
    max_preemptions: int  # a job preempted this many times is offered on-demand only
    segment_s: float  # render seconds between the renderer's checkpoints
    default_preemption_rate_per_hour: float


@dataclass(frozen=True)
class VertexAccelerator:
    gpu: str  # the catalog GPU it is, for its speed_factor
    cost_per_hour: float  # USD per GPU per hour, on top of the machine's


@dataclass(frozen=True)
class VertexPricing:
    """What the primary costs: Vertex AI custom training bills the machine and each GPU per hour, summed."""

    region: str
    machine_types: dict[str, float]  # machine type -> USD/h
    accelerators: dict[str, VertexAccelerator]  # Vertex accelerator name (NVIDIA_TESLA_T4) -> its GPU and price

    def price_per_hour(self, machine_type: str | None, accelerator: str | None, count: int = 1) -> float | None:
        """USD per hour of one replica, None when the catalog does not price this machine or accelerator."""
        machine = self.machine_types.get(machine_type or "")
        gpu = self.accelerators.get(accelerator or "")
        return None if machine is None or gpu is None else machine + gpu.cost_per_hour * count

    def gpu(self, accelerator: str | None) -> str | None:
        found = self.accelerators.get(accelerator or "")
        return found.gpu if found else None


@dataclass(frozen=True)
class Catalog:
    """A validated catalog. `gpus` keeps the file's order, which breaks exact ties."""

    gpus: dict[str, GpuSpec]
    baseline_s_per_s: float
    transfer_overhead_s: float
    budget: Budget
    spot: SpotPolicy
    source: str  # where it was loaded from, for logs and error messages
    vertex: VertexPricing | None = None  # None: the catalog prices no Vertex AI machine
    form: str = "full"  # "full" (gpus:) or "short" (the design note's top-level GPU entries)
    defaults: tuple[str, ...] = ()  # the short form's defaults applied, one line each ("l4.zones: ...")
    cpus: dict[str, CpuSpec] = dataclasses.field(default_factory=dict)  # CPU-only options, file order
    pricing: str = PRICING_MODEL  # "model" or "speed_factor"
    gpu_only: bool = False  # $FALLBACK_GPU_ONLY: CPU-only options are excluded

    @property
    def options(self) -> dict[str, GpuSpec | CpuSpec]:
        """Every option by name: the GPUs, then the CPU-only machines (names are distinct)."""
        return {**self.gpus, **self.cpus}


# Defaults for the optional top-level fields; a catalog only has to list its GPUs.
DEFAULT_BASELINE_S_PER_S = 20.0
DEFAULT_TRANSFER_OVERHEAD_S = 60.0
DEFAULT_BUDGET = Budget(per_job_usd=5.0, daily_usd=50.0)
DEFAULT_SPOT = SpotPolicy(max_preemptions=2, segment_s=120.0, default_preemption_rate_per_hour=0.05)
DEFAULT_BOOT_OVERHEAD_S = 150.0

TOP_FIELDS = {"version", "baseline_s_per_s", "transfer_overhead_s", "budget", "spot", "gpus", "vertex", "cpus",
              "pricing"}
_VERTEX_FIELDS = {"region", "machine_types", "accelerators"}
_VERTEX_ACCELERATOR_FIELDS = {"gpu", "cost_per_hour"}
_BUDGET_FIELDS = {"per_job_usd", "daily_usd"}
_SPOT_FIELDS = {"max_preemptions", "segment_s", "default_preemption_rate_per_hour"}
GPU_REQUIRED = {"accelerator", "machine_type", "speed_factor", "zones"}
GPU_OPTIONAL = {
    "accelerator_count",
    "cost_per_hour",
    "spot_cost_per_hour",
    "preemption_rate_per_hour",
    "boot_overhead_s",
    "has_nvenc",
    "vcpus",
}


# ---------------------------------------------------------------- loading


def load_catalog(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Catalog:
    """Load and validate a catalog file, then apply the environment's overrides.

    The file is `path` if given, else $GPU_CATALOG, else the bundled
    gpu_catalog.yml. $BASELINE_T4_SPEED_S_PER_S replaces `baseline_s_per_s`;
    $REGION is where a short-form entry without zones gets its zones.
    """
    env = os.environ if environ is None else environ
    chosen = Path(path) if path is not None else Path(env.get(ENV_CATALOG) or DEFAULT_CATALOG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as err:
        raise CatalogError(f"catalog: {chosen}: cannot read: {err.strerror or err}") from None
    region = env.get(ENV_REGION) or DEFAULT_REGION
    catalog = parse_catalog(_parse_yaml(text, str(chosen)), source=str(chosen), region=region)
    baseline = env_positive_number(ENV_BASELINE, env)
    if baseline is not None:
        catalog = dataclasses.replace(catalog, baseline_s_per_s=baseline, pricing=PRICING_SPEED_FACTOR)
    pricing = env.get(ENV_PRICING, "").strip()
    if pricing:
        catalog = dataclasses.replace(catalog, pricing=_pricing(pricing, ENV_PRICING))
    return dataclasses.replace(catalog, gpu_only=env_flag(ENV_GPU_ONLY, env))


def parse_catalog(data: object, source: str = "<memory>", *, region: str | None = None) -> Catalog:
    """Validate an already-parsed catalog document (a dict, as YAML or JSON gives it), in either form.

    `region` (default: $REGION, else us-central1) places short-form entries that list no zones.
    """
    from catalog import (
        short_form,  # it imports this module: bound at call time, once both are loaded
    )

    data, form, defaults = short_form.to_full(data, region or os.environ.get(ENV_REGION) or DEFAULT_REGION)
    gpu_at = "gpus." if form == short_form.FULL else ""  # the short form's paths have no gpus. prefix
    top = _fields(data, "", required={"gpus"}, optional=TOP_FIELDS - {"gpus"})
    if "version" in top and top["version"] != 1:
        raise CatalogError(f"catalog: version: must be 1, got {top['version']!r}")
    gpus_data = top["gpus"]
    if not isinstance(gpus_data, dict) or not gpus_data:
        raise CatalogError("catalog: gpus: must be a mapping of GPU names to options, with at least one")
    gpus = {gpu_name(name, gpu_at): _parse_gpu(name, spec, f"{gpu_at}{name}") for name, spec in gpus_data.items()}
    return Catalog(
        gpus=gpus,
        baseline_s_per_s=positive(top.get("baseline_s_per_s", DEFAULT_BASELINE_S_PER_S), "baseline_s_per_s"),
        transfer_overhead_s=_non_negative(
            top.get("transfer_overhead_s", DEFAULT_TRANSFER_OVERHEAD_S), "transfer_overhead_s"
        ),
        budget=_parse_budget(top.get("budget", {})),
        spot=_parse_spot(top.get("spot", {})),
        source=source,
        vertex=_parse_vertex(top["vertex"], gpus) if "vertex" in top else None,
        form=form,
        defaults=tuple(defaults),
        cpus=parse_cpus(top["cpus"], set(gpus)) if "cpus" in top else {},
        pricing=_pricing(top.get("pricing", PRICING_MODEL), "pricing"),
    )


def _pricing(value: object, at: str) -> str:
    if value not in PRICINGS:
        raise CatalogError(f"catalog: {at}: must be one of {', '.join(PRICINGS)}, got {value!r}")
    return str(value)


def _parse_gpu(name: str, data: object, at: str) -> GpuSpec:
    raw = _fields(data, at, required=GPU_REQUIRED, optional=GPU_OPTIONAL)
    if raw.get("cost_per_hour") is None and raw.get("spot_cost_per_hour") is None:
        raise CatalogError(f"catalog: {at}: needs cost_per_hour or spot_cost_per_hour (or both)")
    if raw.get("preemption_rate_per_hour") is not None and raw.get("spot_cost_per_hour") is None:
        raise CatalogError(f"catalog: {at}.preemption_rate_per_hour: only applies with spot_cost_per_hour")
    return GpuSpec(
        name=name,
        accelerator=matching(
            raw["accelerator"], f"{at}.accelerator", ACCELERATOR, "an accelerator type like nvidia-l4"
        ),
        accelerator_count=_count(raw.get("accelerator_count", 1), f"{at}.accelerator_count"),
        machine_type=matching(
            raw["machine_type"], f"{at}.machine_type", MACHINE_TYPE, "a machine type like g2-standard-8"
        ),
        cost_per_hour=_optional(raw, "cost_per_hour", at, positive),
        spot_cost_per_hour=_optional(raw, "spot_cost_per_hour", at, positive),
        preemption_rate_per_hour=_optional(raw, "preemption_rate_per_hour", at, _non_negative),
        speed_factor=positive(raw["speed_factor"], f"{at}.speed_factor"),
        zones=_zones(raw["zones"], f"{at}.zones"),
        boot_overhead_s=_non_negative(raw.get("boot_overhead_s", DEFAULT_BOOT_OVERHEAD_S), f"{at}.boot_overhead_s"),
        has_nvenc=_boolean(raw.get("has_nvenc", False), f"{at}.has_nvenc"),
        vcpus=vcpus_field(raw, raw["machine_type"], at),
    )


def _parse_budget(data: object) -> Budget:
    raw = _fields(data, "budget", required=set(), optional=_BUDGET_FIELDS)
    return Budget(
        per_job_usd=positive(raw.get("per_job_usd", DEFAULT_BUDGET.per_job_usd), "budget.per_job_usd"),
        daily_usd=positive(raw.get("daily_usd", DEFAULT_BUDGET.daily_usd), "budget.daily_usd"),
    )


def _parse_spot(data: object) -> SpotPolicy:
    raw = _fields(data, "spot", required=set(), optional=_SPOT_FIELDS)
    max_preemptions = raw.get("max_preemptions", DEFAULT_SPOT.max_preemptions)
    if isinstance(max_preemptions, bool) or not isinstance(max_preemptions, int) or max_preemptions < 0:
        raise CatalogError(f"catalog: spot.max_preemptions: must be a whole number >= 0, got {max_preemptions!r}")
    return SpotPolicy(
        max_preemptions=max_preemptions,
        segment_s=_non_negative(raw.get("segment_s", DEFAULT_SPOT.segment_s), "spot.segment_s"),
        default_preemption_rate_per_hour=_non_negative(
            raw.get("default_preemption_rate_per_hour", DEFAULT_SPOT.default_preemption_rate_per_hour),
            "spot.default_preemption_rate_per_hour",
        ),
    )


def _parse_vertex(data: object, gpus: dict[str, GpuSpec]) -> VertexPricing:
    raw = _fields(data, "vertex", required=_VERTEX_FIELDS, optional=set())
    for key in ("machine_types", "accelerators"):
        if not isinstance(raw[key], dict) or not raw[key]:
            raise CatalogError(f"catalog: vertex.{key}: must be a mapping with at least one entry")
    machine_types = {}
    for name, price in raw["machine_types"].items():
        at = f"vertex.machine_types.{name}"
        machine_types[matching(name, at, MACHINE_TYPE, "a machine type like n1-standard-8")] = positive(price, at)
    accelerators = {}
    for name, entry in raw["accelerators"].items():
        at = f"vertex.accelerators.{name}"
        matching(name, at, _VERTEX_ACCELERATOR, "a Vertex AI accelerator type like NVIDIA_TESLA_T4")
        entry = _fields(entry, at, required=_VERTEX_ACCELERATOR_FIELDS, optional=set())
        if entry["gpu"] not in gpus:  # its speed is that GPU's speed_factor: a typo must not lose it silently
            raise CatalogError(f"catalog: {at}.gpu: must be one of the catalog's GPUs ({', '.join(gpus)}), "
                               f"got {entry['gpu']!r}")
        accelerators[name] = VertexAccelerator(gpu=entry["gpu"],
                                               cost_per_hour=positive(entry["cost_per_hour"], f"{at}.cost_per_hour"))
    region = matching(raw["region"], "vertex.region", _REGION, "a region like us-central1")
    return VertexPricing(region=region, machine_types=machine_types, accelerators=accelerators)


# ---------------------------------------------------------------- environment


def env_positive_number(name: str, environ: Mapping[str, str] | None = None) -> float | None:
    """The positive number in environment variable `name`, None when unset or empty."""
    env = os.environ if environ is None else environ
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise CatalogError(f"catalog: {name}: must be a positive number, got {text!r}")
    return value


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A true/false environment variable: true/1/yes or false/0/no (any case); unset or empty is false."""
    env = os.environ if environ is None else environ
    text = env.get(name, "").strip().lower()
    if text in ("", "false", "0", "no"):
        return False
    if text in ("true", "1", "yes"):
        return True
    raise CatalogError(f"catalog: {name}: must be true or false, got {env.get(name)!r}")


def resolve_video_length(computed_s: float | None, environ: Mapping[str, str] | None = None) -> float:
    """The video length to plan for: $VIDEO_LENGTH_S when set (an override), else `computed_s`."""
    override = env_positive_number(ENV_VIDEO_LENGTH, environ)
    if override is not None:
        return override
    if computed_s is None or not math.isfinite(computed_s) or computed_s <= 0:
        raise CatalogError(f"catalog: video length: must be a positive number, got {computed_s!r}")
    return float(computed_s)


def region_of(zone: str) -> str:
    """The region a zone belongs to: us-central1-a -> us-central1."""
    return zone.rsplit("-", 1)[0]
