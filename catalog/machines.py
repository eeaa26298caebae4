"""Machines: vCPUs per machine type, and the catalog's CPU-only options (``cpus:``).

This renderer composes frames on the CPU and uses a GPU only for NVENC, so the
cores a VM has matter to its runtime as much as its GPU (catalog/runtime_model.py).
Every option therefore has ``vcpus``: given in the catalog, else the default
for its machine type below.

A CPU-only option is an entry of ``cpus:`` (machine_type, zones, and
optionally vcpus, cost_per_hour, spot_cost_per_hour, preemption_rate_per_hour,
boot_overhead_s). Its `CpuSpec` looks like a GPU's `GpuSpec` to the selector
and the launcher: accelerator "", accelerator_count 0, has_nvenc False, and its
name (the entry's key, e.g. ``c3-highcpu-22``) is what labels, learned speeds
and the job's state call it, where a GPU option has ``t4``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from catalog.checks import (
    CatalogError,
    _fields,
    _non_negative,
    _optional,
    _zones,
    gpu_name,
    matching,
    positive,
)

ON_DEMAND = "on-demand"

# vCPUs of the machine types the bundled catalog uses (Compute Engine's machine type tables:
# https://cloud.google.com/compute/docs/machine-resource). A name not listed here that ends in
# -<number> (n2-standard-16, c3-highcpu-44) has that many vCPUs: Compute Engine's naming rule for
# predefined types; the accelerator-optimized ones (a2-highgpu-1g: 12) count GPUs instead, so are listed.
KNOWN_VCPUS = {
    "n1-standard-4": 4,
    "n1-standard-8": 8,
    "g2-standard-8": 8,
    "a2-highgpu-1g": 12,
    "a3-highgpu-1g": 26,
    "c3-highcpu-8": 8,
    "c3-highcpu-22": 22,
    "n2d-highcpu-16": 16,
}
_VCPUS_IN_NAME = re.compile(r"^[a-z][a-z0-9]*-[a-z]+-(\d+)$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]*$")

CPU_REQUIRED = {"machine_type", "zones"}
CPU_OPTIONAL = {"vcpus", "cost_per_hour", "spot_cost_per_hour", "preemption_rate_per_hour", "boot_overhead_s"}
# A CPU-only VM boots without a GPU driver to load: the bundled catalog's boot_overhead_s for cpus is
# 90 s against the GPUs' 150-300 s (an estimate: image pull and container start, no measurement).
DEFAULT_CPU_BOOT_OVERHEAD_S = 90.0


def default_vcpus(machine_type: str) -> int | None:
    """vCPUs of a machine type: the table above, else the number its name ends in; None when unknown."""
    if machine_type in KNOWN_VCPUS:
        return KNOWN_VCPUS[machine_type]
    match = _VCPUS_IN_NAME.match(machine_type)
    return int(match.group(1)) if match else None


def vcpus_field(raw: dict[str, Any], machine_type: str, at: str) -> int | None:
    """The entry's vcpus (a whole number >= 1) or its machine type's default."""
    value = raw.get("vcpus")
    if value is None:
        return default_vcpus(machine_type)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(f"catalog: {at}.vcpus: must be a whole number >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class CpuSpec:
    """A CPU-only option: no accelerator; the video is composed and encoded on its vCPUs."""

    name: str
    machine_type: str
    vcpus: int | None
    cost_per_hour: float | None  # on-demand USD/h; None: not sold on-demand
    spot_cost_per_hour: float | None  # None: not sold as Spot
    preemption_rate_per_hour: float | None  # None: the catalog's spot default
    zones: tuple[str, ...]
    boot_overhead_s: float
    accelerator: str = ""
    accelerator_count: int = 0
    has_nvenc: bool = False
    speed_factor: float | None = None  # the note's factors are GPU speeds: a CPU-only machine has none

    def price(self, provisioning: str) -> float | None:
        return self.cost_per_hour if provisioning == ON_DEMAND else self.spot_cost_per_hour


def parse_cpus(data: object, gpu_names: set[str]) -> dict[str, CpuSpec]:
    """The ``cpus:`` section; each name must differ from every GPU's (they share labels and learned speeds)."""
    if not isinstance(data, dict):
        raise CatalogError(f"catalog: cpus: must be a mapping of names to CPU-only options, got {type(data).__name__}")
    cpus = {}
    for name, entry in data.items():
        at = f"cpus.{name}"
        gpu_name(name, "cpus.")
        if name in gpu_names:
            raise CatalogError(f"catalog: {at}: the name {name} is already a GPU's (options need distinct names)")
        raw = _fields(entry, at, required=CPU_REQUIRED, optional=CPU_OPTIONAL)
        if raw.get("cost_per_hour") is None and raw.get("spot_cost_per_hour") is None:
            raise CatalogError(f"catalog: {at}: needs cost_per_hour or spot_cost_per_hour (or both)")
        if raw.get("preemption_rate_per_hour") is not None and raw.get("spot_cost_per_hour") is None:
            raise CatalogError(f"catalog: {at}.preemption_rate_per_hour: only applies with spot_cost_per_hour")
        machine_type = matching(raw["machine_type"], f"{at}.machine_type", _MACHINE_TYPE,
                                "a machine type like c3-highcpu-22")
        cpus[name] = CpuSpec(
            name=name,
            machine_type=machine_type,
            vcpus=vcpus_field(raw, machine_type, at),
            cost_per_hour=_optional(raw, "cost_per_hour", at, positive),
            spot_cost_per_hour=_optional(raw, "spot_cost_per_hour", at, positive),
            preemption_rate_per_hour=_optional(raw, "preemption_rate_per_hour", at, _non_negative),
            zones=_zones(raw["zones"], f"{at}.zones"),
            boot_overhead_s=_non_negative(raw.get("boot_overhead_s", DEFAULT_CPU_BOOT_OVERHEAD_S),
                                          f"{at}.boot_overhead_s"),
        )
    return cpus
