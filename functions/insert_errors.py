"""What a failed ``instances.insert`` means for the launch: one table, on GCE's structured error codes.

Compute Engine reports a refused insert either synchronously (an HTTP error
whose ``errors[].reason`` is the code, e.g. ``rateLimitExceeded``) or in the
insert operation (``error.errors[].code``, e.g. ``ZONE_RESOURCE_POOL_EXHAUSTED``,
with ``errorDetails[].quotaInfo`` for quotas). Both become an
:class:`InsertError`; :func:`classify_insert_error` maps it to what the launch
does next, in the spirit of SkyPilot's GCP failover handler
(``sky/backends/cloud_vm_ray_backend.py``): only an error that no other zone,
region, GPU type or later attempt can fix fails the job; a rate or concurrency
limit is retried in the same zone after a short wait; anything unknown blocks
that zone for this pass and the launch goes on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from catalog.model import region_of
from catalog.select import Block, Option

# Each code -> the kind of failure. Kinds: "stockout" (this zone has no capacity
# now: block the zone, remembered for STOCKOUT_TTL_S), "zone" (this zone cannot
# take it now: block it for this pass), "rate-limit" (retry here shortly),
# "quota" (decided by the quota's metric below), "fatal" (fail the job).
CODE_KINDS: dict[str, str] = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": "stockout",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": "stockout",
    "insufficientCapacity": "stockout",
    "UNSUPPORTED_OPERATION": "zone",  # e.g. a Spot VM preempted while it was being created
    "RESOURCE_NOT_READY": "zone",
    "RESOURCE_OPERATION_RATE_EXCEEDED": "rate-limit",
    "rateLimitExceeded": "rate-limit",
    "userRateLimitExceeded": "rate-limit",
    "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED": "rate-limit",  # operations in flight: passes by itself
    "QUOTA_EXCEEDED": "quota",
    "quotaExceeded": "quota",
    # Our request or our rights: the same code would fail in every zone.
    "forbidden": "fatal",
    "PERMISSION_DENIED": "fatal",
    "IAM_PERMISSION_DENIED": "fatal",
    "insufficientPermissions": "fatal",
    "invalid": "fatal",
    "INVALID_FIELD_VALUE": "fatal",
    "invalidParameter": "fatal",
    "badRequest": "fatal",
    "required": "fatal",
    "REQUIRED_FIELD_MISSING": "fatal",
}
# Quota metrics that limit operations, not resources: wait and retry, like a rate limit.
_RATE_METRIC = re.compile(r"OPERATION|RATE|REQUESTS", re.IGNORECASE)
# Project-wide quotas (compute v1 Quota.metric: GPUS_ALL_REGIONS, CPUS_ALL_REGIONS): no region has room for
# the option, so it is blocked everywhere. Every other resource metric is regional (NVIDIA_T4_GPUS, and for a
# CPU-only machine CPUS, C3_CPUS, N2D_CPUS, PREEMPTIBLE_CPUS...): the option may still fit in another region.
# Only the option is blocked either way: a smaller machine may still fit under the same vCPU limit.
_ALL_REGIONS_METRIC = re.compile(r"_ALL_REGIONS$")
# Spot VMs' own quotas (PREEMPTIBLE_CPUS, PREEMPTIBLE_NVIDIA_T4_GPUS...): "To prevent Spot VMs from consuming
# your quotas for standard VMs' CPUs, GPUs, and disks, consider requesting preemptible quota for Spot VMs"
# (https://cloud.google.com/compute/docs/instances/create-use-spot). Such a refusal says nothing about the
# standard quota, so only Spot is blocked there: the same machine on-demand may still fit.
_SPOT_METRIC = re.compile(r"^PREEMPTIBLE_")
_METRIC_IN_MESSAGE = re.compile(r"Quota '([A-Za-z0-9_.-]+)' exceeded")


@dataclass(frozen=True)
class InsertError:
    """A refused insert, as GCE reported it."""

    codes: tuple[str, ...]  # errors[].code (operation) or errors[].reason (HTTP)
    message: str
    quota_metric: str | None = None  # NVIDIA_T4_GPUS, GPUS_ALL_REGIONS, C3_CPUS, ... (upper case, no prefix)

    @classmethod
    def from_exception(cls, err) -> "InsertError":
        """From the client's ``GoogleAPICallError`` (a synchronous refusal)."""
        codes = [e.get("reason", "") for e in (getattr(err, "errors", None) or []) if isinstance(e, dict)]
        codes.append(getattr(err, "reason", None) or "")
        message = str(getattr(err, "message", "") or err)
        return cls(tuple(c for c in codes if c), message, _metric(None, message))

    @classmethod
    def from_operation(cls, operation) -> "InsertError":
        """From a DONE ``compute_v1.Operation`` whose ``error.errors`` is not empty."""
        codes, messages, metric = [], [], None
        for error in operation.error.errors:
            codes.append(error.code)
            messages.append(error.message)
            for detail in error.error_details:
                if detail.quota_info and detail.quota_info.metric_name:
                    metric = metric or detail.quota_info.metric_name
                if detail.error_info and detail.error_info.reason:
                    codes.append(detail.error_info.reason)
        message = " | ".join(m for m in messages if m) or str(operation.http_error_message or "")
        return cls(tuple(c for c in codes if c), message, _metric(metric, message))


def _metric(metric_name: str | None, message: str) -> str | None:
    """``compute.googleapis.com/nvidia_t4_gpus`` -> ``NVIDIA_T4_GPUS``; else the metric the message names."""
    if metric_name:
        return metric_name.rsplit("/", 1)[-1].upper()
    match = _METRIC_IN_MESSAGE.search(message)
    return match.group(1).upper() if match else None


@dataclass(frozen=True)
class InsertFailure:
    """How one failed insert narrows the search."""

    kind: str  # stockout, zone, rate-limit, region-quota, all-regions-quota, unknown, fatal
    block: Block | None  # what to avoid from now on (None: retry here, or fail the job)
    detail: str
    remember: bool = False  # tell the next jobs too (stockouts and quotas)

    @property
    def fatal(self) -> bool:
        return self.kind == "fatal"

    @property
    def retry_here(self) -> bool:
        return self.kind == "rate-limit"


def classify_insert_error(error: InsertError, option: Option, zone: str) -> InsertFailure:
    detail = f"{', '.join(error.codes) or 'no code'}: {error.message}"[:300]
    kinds = [CODE_KINDS[code] for code in error.codes if code in CODE_KINDS]
    kind = kinds[0] if kinds else "unknown"
    zone_block = Block(gpu=option.gpu, location=zone, reason=f"{option.gpu}: {kind} in {zone}")
    if kind == "quota":
        metric = error.quota_metric or ""
        if _RATE_METRIC.search(metric):
            return InsertFailure("rate-limit", None, detail)
        if _ALL_REGIONS_METRIC.search(metric):
            return InsertFailure("all-regions-quota", Block(gpu=option.gpu, reason=f"{option.gpu}: {metric} quota"),
                                 detail, remember=True)
        region = region_of(zone)
        spot_only = "spot" if _SPOT_METRIC.search(metric) else None
        return InsertFailure("region-quota", Block(gpu=option.gpu, location=region, provisioning=spot_only,
                                                   reason=f"{option.gpu}{' spot' if spot_only else ''}: quota in {region}"),
                             detail, remember=True)
    if kind == "stockout":
        return InsertFailure("stockout", zone_block, detail, remember=True)
    if kind in ("rate-limit", "fatal"):
        return InsertFailure(kind, None, detail)
    # "zone" and anything we do not know: this zone, for this pass only.
    return InsertFailure(kind, zone_block, detail)
