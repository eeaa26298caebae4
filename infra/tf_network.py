"""The render VMs' subnets, one per region the catalog can place a VM in, with their NAT and IAM.

A subnet is regional, and the fallback launcher puts a VM in any zone of the
catalog (us-central1, us-east1, europe-west4, asia-east1, ...): a VM inserted
in a region with no subnet of its own is an invalid request, which fails the
job. So every region of the bundled catalog/gpu_catalog.yml's zones (of every
option: its GPUs and its CPU-only machines, ``cpus:``) gets a
subnet ``fast-render-vms`` in the network ``fast-render``, and the deployment
region (``var.region``) gets one too when the catalog has no zone there (a
short-form GPU_CATALOG puts its zones in $REGION). The launcher's
VM_SUBNETWORK says ``regions/{region}/subnetworks/fast-render-vms`` and
functions/vm_spec.py puts the chosen zone's region there.

The bundled catalog is read, never $GPU_CATALOG: the generated files must not
depend on who runs the generator. A catalog given to the functions through
GPU_CATALOG must therefore only use regions listed here (REGION_INDEX, and the
deployment region); a zone elsewhere has no subnet and its launches fail.
"""

from __future__ import annotations

from typing import Any

from catalog.model import DEFAULT_CATALOG_PATH, load_catalog, region_of
from infra.tf_hcl import Attr, Blank, Block, Comment, Raw, identifier, value
from infra.tf_iam import _why, account_member, role_slug

SUBNET_NAME = "fast-render-vms"
NAT_NAME = "fast-render-nat"
# The subnets' ranges come from one variable: region R's is cidrsubnet(var.vm_ip_range, NEWBITS, REGION_INDEX[R]).
NEWBITS = 8
# A fixed number per region instead of the position in a sorted list: a region
# added to the catalog takes the next free number, and no other subnet's range
# moves (Compute Engine only expands a subnet's range in place; any other
# change replaces the subnet, under running VMs). A region dropped from the
# catalog keeps its number, unused: never renumber, never reuse.
# 0 is the deployment region's when the catalog has no zone there.
DEPLOYMENT_INDEX = 0
REGION_INDEX = {
    "us-central1": 1,
    "us-east1": 2,
    "us-east4": 3,
    "us-east5": 4,
    "us-west1": 5,
    "europe-west4": 6,
    "asia-east1": 7,
    "asia-southeast1": 8,
    "asia-northeast1": 9,
}
DEPLOYMENT = "deployment_region"  # the resources' name suffix for var.region's own subnet


class NetworkError(ValueError):
    pass


def catalog_regions() -> list[str]:
    """The regions of the bundled catalog's zones, in REGION_INDEX order (one clear line for a new one).

    Every option's zones: a CPU-only machine is launched like a GPU, so its region needs a subnet too.
    """
    catalog = load_catalog(DEFAULT_CATALOG_PATH, environ={})
    regions = {region_of(zone) for option in catalog.options.values() for zone in option.zones}
    missing = sorted(regions - set(REGION_INDEX))
    if missing:
        raise NetworkError(f"infra/tf_network.py: REGION_INDEX has no number for {', '.join(missing)} "
                           f"(a zone of {DEFAULT_CATALOG_PATH.name}): add it with the next free number")
    return sorted(regions, key=REGION_INDEX.__getitem__)


def subnet_ref(suffix: str) -> str:
    return f"google_compute_subnetwork.vms_{suffix}" + ("[0]" if suffix == DEPLOYMENT else "")


def _sites(regions: list[str]) -> list[tuple[str, Any, int, Any]]:
    """(resource name suffix, region expression, range number, count or None) for each subnet."""
    sites: list[tuple[str, Any, int, Any]] = [(identifier(r), r, REGION_INDEX[r], None) for r in regions]
    return sites + [(DEPLOYMENT, Raw("var.region"), DEPLOYMENT_INDEX, Raw("local.vm_subnet_in_catalog ? 0 : 1"))]


def _count(count: Any, nat: bool = False) -> list[Attr]:
    if nat:
        return [Attr("count", Raw("var.enable_nat ? 1 : 0" if count is None
                                  else "var.enable_nat && !local.vm_subnet_in_catalog ? 1 : 0"))]
    return [] if count is None else [Attr("count", count)]


def network_blocks(regions: list[str]) -> list[Block]:
    """The locals naming the subnets, then one subnet per region."""
    catalog_names = [Raw(f"{subnet_ref(suffix)}.name") for suffix, _, _, count in _sites(regions) if count is None]
    deployment = subnet_ref(DEPLOYMENT).removesuffix("[0]")
    ids = {region: Raw(f"{subnet_ref(suffix)}.id") for suffix, region, _, count in _sites(regions) if count is None}
    blocks = [Block("locals", (), [
        Comment("The regions of catalog/gpu_catalog.yml's zones; var.region has its own subnet unless among them."),
        Attr("vm_catalog_regions", list(regions)),
        Attr("vm_subnet_in_catalog", Raw("contains(local.vm_catalog_regions, var.region)")),
        Blank(),
        Comment("The launcher's VM_SUBNETWORK: functions/vm_spec.py puts the VM zone's region for {region}."),
        Comment("Made of every subnet's name (all fast-render-vms: one() fails the plan if one differed), so"),
        Comment("the functions, whose environment holds it, are deployed once every region's subnet exists."),
        Attr("vm_subnet_names", Raw(f"concat({value(catalog_names, 1)}, {deployment}[*].name)")),
        Attr("vm_subnetwork", "projects/${var.project}/regions/{region}/subnetworks/${one(distinct(local.vm_subnet_names))}"),
        Blank(),
        Comment("Region -> subnet id (the output vm_network)."),
        Attr("vm_subnets", Raw(f"merge({value(ids, 1)}, {{ for s in {deployment} : s.region => s.id }})")),
    ])]
    for suffix, region, index, count in _sites(regions):
        where = "var.region, when no zone of the catalog is there" if suffix == DEPLOYMENT else region
        blocks.append(Block("resource", ("google_compute_subnetwork", f"vms_{suffix}"), [
            Comment(f"The render VMs in {where}."),
            *_count(count),
            Attr("project", Raw("var.project")),
            Attr("name", SUBNET_NAME),
            Attr("region", region),
            Attr("network", Raw("google_compute_network.render.id")),
            Attr("ip_cidr_range", Raw(f"cidrsubnet(var.vm_ip_range, {NEWBITS}, {index})")),
            Comment("Google's APIs (Cloud Storage, Artifact Registry, Logging, Compute) with no external IP."),
            Attr("private_ip_google_access", True),
            Blank(),
            Comment("What the VMs reach, for an incident; sampled to keep the log volume small."),
            Block("log_config", (), [
                Attr("aggregation_interval", "INTERVAL_5_MIN"),
                Attr("flow_sampling", 0.5),
                Attr("metadata", "INCLUDE_ALL_METADATA"),
            ]),
        ]))
    return blocks


def nat_blocks(regions: list[str]) -> list[Block]:
    """A router and Cloud NAT per subnet region, behind var.enable_nat.

    Per region rather than the deployment region only: the launcher may pick
    any region's zone, and a VM's need for the internet (the reason to turn NAT
    on) does not depend on where it landed; NAT in one region would make a job
    fail or pass by the zone it got. A gateway no VM uses costs nothing (NAT
    bills the VMs using it and the data it processes), so idle regions add no cost.
    """
    blocks: list[Block] = []
    for suffix, region, _, count in _sites(regions):
        blocks.append(Block("resource", ("google_compute_router", f"nat_{suffix}"), [
            *_count(count, nat=True),
            Attr("project", Raw("var.project")),
            Attr("name", NAT_NAME),
            Attr("region", region),
            Attr("network", Raw("google_compute_network.render.id")),
        ]))
        blocks.append(Block("resource", ("google_compute_router_nat", f"nat_{suffix}"), [
            *_count(count, nat=True),
            Attr("project", Raw("var.project")),
            Attr("name", NAT_NAME),
            Attr("region", region),
            Attr("router", Raw(f"google_compute_router.nat_{suffix}[0].name")),
            Attr("nat_ip_allocate_option", "AUTO_ONLY"),
            Attr("source_subnetwork_ip_ranges_to_nat", "LIST_OF_SUBNETWORKS"),
            Blank(),
            Block("subnetwork", (), [
                Attr("name", Raw(f"{subnet_ref(suffix)}.id")),
                Attr("source_ip_ranges_to_nat", ["ALL_IP_RANGES"]),
            ]),
            Blank(),
            Block("log_config", (), [
                Attr("enable", True),
                Attr("filter", "ERRORS_ONLY"),
            ]),
        ]))
    return blocks


def subnet_grant_blocks(iam: dict[str, Any], regions: list[str]) -> list[Block]:
    """iam.yaml's ``subnetwork:`` grants, on each region's subnet: a VM attaches to its own region's."""
    blocks: list[Block] = []
    for key, account in iam["service_accounts"].items():
        for grant in account.get("subnetwork", []):
            for suffix, region, _, count in _sites(regions):
                blocks.append(Block("resource", ("google_compute_subnetwork_iam_member",
                                                 f"{key}_{role_slug(grant['role'])}_{suffix}"), [
                    _why(grant["why"]),
                    *_count(count),
                    Attr("project", Raw("var.project")),
                    Attr("region", region),
                    Attr("subnetwork", Raw(f"{subnet_ref(suffix)}.name")),
                    Attr("role", grant["role"]),
                    Attr("member", account_member(key)),
                ]))
    return blocks
