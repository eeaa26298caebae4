"""How Compute Engine refuses an ``instances.insert``: one table, each row with its source.

A refusal comes one of two ways, and a caller must handle both:

* ``sync``: the insert call itself fails with an HTTP error in Google's JSON
  shape, ``{"error": {"code", "message", "errors": [{"message", "domain",
  "reason"}], "details": [...]}}``; the official client raises the matching
  ``google.api_core.exceptions`` class, whose ``.errors[0]["reason"]`` is the
  row's ``code``. No operation and no instance exist afterwards.
* ``operation``: the call returns an insert operation that ends DONE with
  ``error.errors[] = [{"code", "message", "errorDetails"}]`` plus
  ``httpErrorStatusCode`` / ``httpErrorMessage``; ``ZoneOperationsClient.wait``
  returns it, and ``ExtendedOperation.result()`` raises the class for
  ``httpErrorStatusCode`` with ``.errors[0].code`` the row's ``code``.

Sources are quoted by tag in each row; "unknown" marks what no public source
shows, and there we model the harsher case. ``docs/standins.md`` has the same
table for readers.

* [DOC-RA] https://cloud.google.com/compute/docs/resource-error (resource availability
  errors: ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS], their messages).
* [CCX901] CCExtractor/sample-platform issue 901: an insert operation, DONE, with
  ``error.errors[0]`` = ZONE_RESOURCE_POOL_EXHAUSTED, its message and ``errorDetails``
  [help, localizedMessage, ...].
* [AOG849] GoogleCloudPlatform/ai-on-gke issue 849 and [K8S9834] kubernetes/k8s.io issue
  9834 (2026): the full ``errorDetails``: help (troubleshooting link), localizedMessage
  ("A n1-standard-4 VM instance with 1 nvidia-tesla-t4 accelerator(s) is currently
  unavailable in the us-central1-b zone. ..."), errorInfo (reason resource_availability,
  domain compute.googleapis.com, metadatas attachment/vmType/zone/zonesAvailable);
  K8S9834's _WITH_DETAILS message ends "request.  'NULL:0/NULL:0/NULL:0 (state:STOCKOUT,
  sub-state..." (also cloudpilot-ai/karpenter-provider-gcp PR 591).
* [SCY12477] scylladb/scylla-cluster-tests issue 12477: "503 SERVICE UNAVAILABLE
  ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: ... '(resource type:compute)'."
* [NODE377] googleapis/nodejs-compute issue 377: after an insert that will fail on a
  stockout, GET of the instance is 404 (the instance never appears).
* [SKY] SkyPilot ``FailoverCloudErrorHandlerV2._gcp_handler`` (sky/backends/
  cloud_vm_ray_backend.py, later split out): the codes it meets on GCE inserts:
  QUOTA_EXCEEDED / quotaExceeded ("Quota 'CPUS' exceeded.  Limit: 24.0 in region
  us-west1.", "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally."),
  ZONE_RESOURCE_POOL_EXHAUSTED[_WITH_DETAILS], UNSUPPORTED_OPERATION ("observed
  empirically when VM is preempted during creation"), insufficientCapacity,
  RESOURCE_NOT_READY ("returned when the VM is still STOPPING"),
  RESOURCE_OPERATION_RATE_EXCEEDED (an insert that SkyPilot retries, then blocks the zone).
* [TF-QUOTA] a Terraform provider error quoted in a public test: "Error creating instance:
  googleapi: Error 403: Quota 'C4A_CPUS' exceeded.  Limit: 8.0 in region us-east1.,
  quotaExceeded" (the synchronous form of a quota refusal).
* [PREEMPT] "Instance failed to start due to preemption." (hashicorp/packer issue 9133;
  scylladb/scylla-cluster-tests PR 2945, which deletes the instance afterwards because it
  may still exist).
* [OPSTRACE] opstrace/opstrace issue 1218: HTTP 400, reason resourceNotReady, "The
  resource 'projects/.../global/addresses/...' is not ready"; google-cloud-java issue 9312
  ("Resource is not ready" as an operation error, INVALID_ARGUMENT Bad Request).
* [GCPDIAG] GoogleCloudPlatform/gcpdiag lint rule: status message
  RESOURCE_OPERATION_RATE_EXCEEDED; "Too frequent operations from the source resource"
  (a GKE snapshot-restore report).
* [TFG8360] hashicorp/terraform-provider-google issue 8360: "googleapi: Error 403: Quota
  exceeded for quota group 'ReadGroup' and limit 'Read requests per 100 seconds' of
  service 'compute.googleapis.com' for consumer 'project_number:123456'., rateLimitExceeded".
* [TEF-COQ] terraform-google-modules/terraform-example-foundation troubleshooting: "Error
  403: Rate Limit Exceeded" with details [ErrorInfo {domain compute.googleapis.com,
  metadatas {containerId, containerType PROJECT, location global}, reason
  CONCURRENT_OPERATIONS_QUOTA_EXCEEDED}], reason rateLimitExceeded; gcloud's
  ``api_lib/compute/operation_quota_utils.py`` reads that ErrorInfo and a LocalizedMessage.
* [PERM] gcloud and Terraform output seen in many public repos: "Required
  'compute.instances.create' permission for 'projects/P/zones/Z/instances/N'", HTTP 403,
  reason forbidden.
* [INVALID] percona/mongo_terraform_ansible issue 34: "googleapi: Error 400: Invalid value
  for field 'resource.scheduling.preemptible': 'true'. Scheduling must have preemptible be
  false when AutomaticRestart is true., invalid"; GoogleCloudPlatform/forseti-security
  treats operation error code INVALID_FIELD_VALUE as a GCE code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infra.local._http import ApiError, JsonDict, project_number
from infra.local.compute_models import quota_metric, region_of

SYNC, OPERATION = "sync", "operation"
TROUBLESHOOTING = "https://cloud.google.com/compute/docs/resource-error"


@dataclass(frozen=True)
class ErrorContext:
    """What an error message names: the insert's project, zone, instance and hardware."""

    project: str
    zone: str
    name: str
    machine_type: str
    accelerators: tuple[tuple[str, int], ...] = ()
    spot: bool = False
    gpu: str | None = None  # the GPU a rule matched, if any

    @property
    def region(self) -> str:
        return region_of(self.zone)

    @property
    def instance_path(self) -> str:
        return f"projects/{self.project}/zones/{self.zone}/instances/{self.name}"

    @property
    def first_gpu(self) -> str | None:
        return self.gpu or (self.accelerators[0][0] if self.accelerators else None)


@dataclass(frozen=True)
class ErrorShape:
    """One way GCE refuses an insert."""

    key: str  # the name fault rules use
    code: str  # operation: errors[].code; sync: errors[].reason
    http_status: int
    http_message: str
    where: str  # SYNC or OPERATION
    message: Callable[[ErrorContext], str]
    source: str
    details: Callable[[ErrorContext], list[JsonDict]] = field(default=lambda ctx: [])
    domain: str = "global"  # sync only: errors[].domain
    leaves_instance: bool = False  # the failed insert leaves a TERMINATED instance behind


# --------------------------------------------------------------------------- messages and details


def _stockout_where(ctx: ErrorContext) -> str:
    return (
        f"The zone 'projects/{ctx.project}/zones/{ctx.zone}' does not have enough resources "
        "available to fulfill the request."
    )


def _stockout_details(ctx: ErrorContext) -> list[JsonDict]:
    """[AOG849], [K8S9834]: help, localizedMessage, errorInfo (no zones suggested: unknown which)."""
    attachment = ",".join(f"{gpu}:{count}" for gpu, count in ctx.accelerators)
    with_gpus = "".join(f" with {count} {gpu} accelerator(s)" for gpu, count in ctx.accelerators)
    localized = (
        f"A {ctx.machine_type} VM instance{with_gpus} is currently unavailable in the {ctx.zone} zone. "
        "Alternatively, you can try your request again with a different VM hardware configuration or at a "
        "later time. For more information, see the troubleshooting documentation."
    )
    return [
        {"help": {"links": [{"description": "Troubleshooting documentation", "url": TROUBLESHOOTING}]}},
        {"localizedMessage": {"locale": "en-US", "message": localized}},
        {
            "errorInfo": {
                "reason": "resource_availability",
                "domain": "compute.googleapis.com",
                "metadatas": {
                    "attachment": attachment,
                    "vmType": ctx.machine_type,
                    "zone": ctx.zone,
                    "zonesAvailable": "",
                },
            }
        },
    ]


def _regional_metric(ctx: ErrorContext) -> str:
    gpu = ctx.first_gpu
    return quota_metric(gpu, ctx.spot) if gpu else ("PREEMPTIBLE_CPUS" if ctx.spot else "CPUS")


def _quota_info(metric: str, region: str | None) -> list[JsonDict]:
    """A ``quotaInfo`` detail (compute v1 QuotaExceededInfo: metricName, limitName, dimensions, limit).

    The field names are the API's; the values (metric and limit naming) are ours:
    unknown, no public capture of a GPU quota's quotaInfo was found.
    """
    scope = "per-project-region" if region else "per-project"
    return [
        {
            "quotaInfo": {
                "metricName": f"compute.googleapis.com/{metric.lower()}",
                "limitName": f"{metric.replace('_', '-')}-{scope}",
                "dimensions": {"region": region} if region else {},
                "limit": 0,
            }
        }
    ]


def _regional_quota_message(ctx: ErrorContext) -> str:
    return f"Quota '{_regional_metric(ctx)}' exceeded.  Limit: 0.0 in region {ctx.region}."


def _invalid_machine_type(ctx: ErrorContext) -> str:
    return (
        f"Invalid value for field 'resource.machineType': 'zones/{ctx.zone}/machineTypes/{ctx.machine_type}'. "
        f"Machine type with name '{ctx.machine_type}' does not exist in zone '{ctx.zone}'."
    )


def _concurrent_ops_details(ctx: ErrorContext) -> list[JsonDict]:
    """[TEF-COQ]: an ErrorInfo and a LocalizedMessage (its text is unknown; ours below)."""
    return [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "domain": "compute.googleapis.com",
            "reason": "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
            "metadatas": {
                "containerId": project_number(ctx.project),
                "containerType": "PROJECT",
                "location": ctx.zone,  # [TEF-COQ] shows "global" for a global resource; a zonal one: unknown
            },
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": "Too many concurrent operations are in progress for this project and location.",
        },
    ]


# --------------------------------------------------------------------------- the table

TABLE: dict[str, ErrorShape] = {
    shape.key: shape
    for shape in (
        ErrorShape(
            key="ZONE_RESOURCE_POOL_EXHAUSTED",
            code="ZONE_RESOURCE_POOL_EXHAUSTED",
            http_status=503,
            http_message="SERVICE UNAVAILABLE",
            where=OPERATION,
            message=lambda ctx: f"{_stockout_where(ctx)}  Try a different zone, or try again later.",
            details=_stockout_details,
            source="[DOC-RA] message; [CCX901] in the operation; [AOG849] errorDetails; 503 [SCY12477]",
        ),
        ErrorShape(
            key="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            http_status=503,
            http_message="SERVICE UNAVAILABLE",
            where=OPERATION,
            message=lambda ctx: (
                f"{_stockout_where(ctx)}  'NULL:0/NULL:0/NULL:0 (state:STOCKOUT, sub-state:STOCKOUT, "
                "resource type:compute)'."
            ),
            details=_stockout_details,
            source="[K8S9834] message and errorDetails (2026); 503 [SCY12477]; in the operation [NODE377]",
        ),
        ErrorShape(
            key="QUOTA_EXCEEDED",
            code="QUOTA_EXCEEDED",
            http_status=403,
            http_message="FORBIDDEN",
            where=OPERATION,
            message=_regional_quota_message,
            details=lambda ctx: _quota_info(_regional_metric(ctx), ctx.region),
            source="[SKY] code and message shape; quotaInfo values unknown",
        ),
        ErrorShape(
            key="GPUS_ALL_REGIONS",
            code="QUOTA_EXCEEDED",
            http_status=403,
            http_message="FORBIDDEN",
            where=OPERATION,
            message=lambda ctx: "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.",
            details=lambda ctx: _quota_info("GPUS_ALL_REGIONS", None),
            source="[SKY] (\"Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally.\"), fastai/course-v3 PR 165",
        ),
        ErrorShape(
            key="quotaExceeded",
            code="quotaExceeded",
            http_status=403,
            http_message="Forbidden",
            where=SYNC,
            message=_regional_quota_message,
            domain="usageLimits",  # unknown: the usual domain of Google API quota reasons
            source="[TF-QUOTA] the synchronous 403 quotaExceeded; [SKY] handles the camelCase code",
        ),
        ErrorShape(
            key="insufficientCapacity",
            code="insufficientCapacity",
            http_status=503,  # unknown: as a stockout
            http_message="SERVICE UNAVAILABLE",
            where=OPERATION,  # unknown: we model the harsher case (the name is taken until the operation ends)
            message=lambda ctx: f"Insufficient capacity for the requested resources in zone '{ctx.zone}'.",
            source="[SKY] lists the code as a per-zone refusal; message, status and form unknown",
        ),
        ErrorShape(
            key="UNSUPPORTED_OPERATION",
            code="UNSUPPORTED_OPERATION",
            http_status=400,  # unknown
            http_message="BAD REQUEST",
            where=OPERATION,
            message=lambda ctx: "Instance failed to start due to preemption.",
            leaves_instance=True,
            source="[SKY] code (VM preempted during creation), [PREEMPT] message and the instance left behind",
        ),
        ErrorShape(
            key="RESOURCE_NOT_READY",
            code="RESOURCE_NOT_READY",
            http_status=400,
            http_message="BAD REQUEST",
            where=OPERATION,
            message=lambda ctx: f"The resource '{ctx.instance_path}' is not ready",
            source="[SKY] code; [OPSTRACE] message shape and 400",
        ),
        ErrorShape(
            key="RESOURCE_OPERATION_RATE_EXCEEDED",
            code="RESOURCE_OPERATION_RATE_EXCEEDED",
            http_status=403,  # unknown: 403 as GCE's other rate limits ([TFG8360])
            http_message="FORBIDDEN",
            where=OPERATION,
            message=lambda ctx: (
                f"Operation rate exceeded for resource '{ctx.instance_path}'. "
                "Too frequent operations from the source resource."
            ),
            source="[SKY] code on inserts; [GCPDIAG] message fragment; status unknown",
        ),
        ErrorShape(
            key="rateLimitExceeded",
            code="rateLimitExceeded",
            http_status=403,
            http_message="Forbidden",
            where=SYNC,
            message=lambda ctx: (
                "Quota exceeded for quota group 'WriteGroup' and limit 'Write requests per 100 seconds' "
                f"of service 'compute.googleapis.com' for consumer 'project_number:{project_number(ctx.project)}'."
            ),
            domain="usageLimits",
            source="[TFG8360] shape (the group and limit names are modeled on its ReadGroup)",
        ),
        ErrorShape(
            key="CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
            code="rateLimitExceeded",
            http_status=403,
            http_message="Forbidden",
            where=SYNC,
            message=lambda ctx: "Rate Limit Exceeded",
            details=_concurrent_ops_details,
            domain="usageLimits",
            source="[TEF-COQ]: a 403 rateLimitExceeded whose ErrorInfo reason is the concurrent-operations quota",
        ),
        ErrorShape(
            key="forbidden",
            code="forbidden",
            http_status=403,
            http_message="Forbidden",
            where=SYNC,
            message=lambda ctx: f"Required 'compute.instances.create' permission for '{ctx.instance_path}'",
            source="[PERM]",
        ),
        ErrorShape(
            key="invalid",
            code="invalid",
            http_status=400,
            http_message="Bad Request",
            where=SYNC,
            message=_invalid_machine_type,
            source="[INVALID] shape (\"Invalid value for field 'F': 'V'. Why., invalid\"); the machine-type text: ours",
        ),
        ErrorShape(
            key="INVALID_FIELD_VALUE",
            code="INVALID_FIELD_VALUE",
            http_status=400,
            http_message="BAD REQUEST",
            where=OPERATION,
            message=_invalid_machine_type,
            source="[INVALID] (forseti-security: an operation error code); message and status unknown",
        ),
    )
}


# --------------------------------------------------------------------------- rendering


class InsertRefused(ApiError):
    """A synchronous refusal in GCE's JSON error shape (``errors[]`` and, if any, ``details[]``)."""

    def __init__(self, shape: ErrorShape, ctx: ErrorContext) -> None:
        super().__init__(shape.http_status, shape.message(ctx), reason=shape.code)
        self.domain = shape.domain
        self.details = shape.details(ctx)

    def to_json(self) -> JsonDict:
        error: JsonDict = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def operation_error(shape: ErrorShape, ctx: ErrorContext) -> tuple[int, str, JsonDict]:
    """(httpErrorStatusCode, httpErrorMessage, one ``error.errors[]`` entry) for an operation."""
    entry: JsonDict = {"code": shape.code, "message": shape.message(ctx)}
    details = shape.details(ctx)
    if details:
        entry["errorDetails"] = details
    return shape.http_status, shape.http_message, entry
