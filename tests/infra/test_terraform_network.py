"""The render VMs' subnets in infra/terraform: one in every region the catalog can place a VM in (GPU or CPU-only).

The launcher puts a VM in any zone of the catalog and names its subnet
``regions/{region}/subnetworks/fast-render-vms`` with the zone's region
(functions/vm_spec.py); a region without that subnet makes the insert invalid
and fails the job. Checked here without a cloud: every catalog region has its
subnet (with Private Google Access and flow logs), the ranges the module
computes do not overlap and do not move when a region is added, the launcher's
setting names a declared subnet for every catalog zone, and NAT, when on,
covers each subnet. IAM parity (a networkUser grant per subnet per account) is
tests/infra/test_terraform.py's.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from catalog.model import DEFAULT_CATALOG_PATH, load_catalog, region_of
from infra import tf_network, tfgen
from infra.tf_hcl import render
from tests.infra.hcl_files import parse_text

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
CATALOG = load_catalog(DEFAULT_CATALOG_PATH, environ={})
# Every option's zones: its GPUs' and its CPU-only machines' (a CPU-only VM is launched into a subnet as a GPU one is).
CATALOG_ZONES = sorted({zone for option in CATALOG.options.values() for zone in option.zones})
CATALOG_REGIONS = {region_of(zone) for zone in CATALOG_ZONES}
DEPLOYMENT = "${var.region}"
RANGE = re.compile(r"^\$\{cidrsubnet\(var\.vm_ip_range, (\d+), (\d+)\)\}$")


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, Any]]:
    return {path.name: parse_text(path.read_text()) for path in sorted(TF_DIR.glob("*.tf"))}


def _resources(documents) -> dict[tuple[str, str], dict[str, Any]]:
    return {(kind, name): body for document in documents for entry in document.get("resource", [])
            for kind, named in entry.items() for name, body in named.items()}


@pytest.fixture(scope="module")
def resources(parsed) -> dict[tuple[str, str], dict[str, Any]]:
    return _resources(parsed.values())


def of_kind(resources, kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for (k, name), body in resources.items() if k == kind}


def local(parsed, name: str) -> Any:
    (value,) = [entry[name] for document in parsed.values() for entry in document.get("locals", []) if name in entry]
    return value


def evaluated_range(expression: str, base: str) -> ipaddress.IPv4Network:
    """cidrsubnet(base, bits, n) as Terraform computes it: the n-th of base's subnets bits longer."""
    match = RANGE.match(expression)
    assert match, f"{expression}: not cidrsubnet(var.vm_ip_range, BITS, N)"
    bits, number = map(int, match.groups())
    network = ipaddress.ip_network(base)
    size = network.prefixlen + bits
    return ipaddress.ip_network((int(network.network_address) + (number << (32 - size)), size))


def ranges_by_region(resources, base: str) -> dict[str, ipaddress.IPv4Network]:
    return {body["region"]: evaluated_range(body["ip_cidr_range"], base)
            for body in of_kind(resources, "google_compute_subnetwork").values()}


def test_every_region_of_the_catalog_has_a_render_subnet_and_so_does_var_region(resources, parsed) -> None:
    subnets = of_kind(resources, "google_compute_subnetwork")
    regions = [body["region"] for body in subnets.values()]
    assert sorted(regions) == sorted(CATALOG_REGIONS | {DEPLOYMENT}), "one subnet per region, no region twice"
    assert len(CATALOG_REGIONS) >= 5  # the bundled catalog spans America, Europe and Asia
    for body in subnets.values():
        assert body["name"] == "fast-render-vms", body["region"]
        assert body["network"] == "${google_compute_network.render.id}"
        assert body["private_ip_google_access"] is True, f"{body['region']}: its VMs have no external IP"
        (flow_logs,) = body["log_config"]
        assert flow_logs["metadata"] == "INCLUDE_ALL_METADATA" and 0 < flow_logs["flow_sampling"] <= 1
    # var.region's own subnet only when the catalog has no zone there: two subnets of one name in a region clash.
    assert set(local(parsed, "vm_catalog_regions")) == CATALOG_REGIONS
    (deployment,) = [body for body in subnets.values() if body["region"] == DEPLOYMENT]
    assert deployment["count"] == "${local.vm_subnet_in_catalog ? 0 : 1}"
    assert local(parsed, "vm_subnet_in_catalog") == "${contains(local.vm_catalog_regions, var.region)}"


def test_the_subnet_ranges_do_not_overlap_and_lie_in_vm_ip_range(resources, parsed) -> None:
    variables = {name: body for entry in parsed["variables.tf"]["variable"] for name, body in entry.items()}
    base = variables["vm_ip_range"]["default"]
    for other in (base, "192.168.0.0/16", "10.0.0.0/21"):  # the default and what a person may set instead
        ranges = ranges_by_region(resources, other)
        for (a, first), (b, second) in itertools.combinations(ranges.items(), 2):
            assert not first.overlaps(second), f"{a} {first} overlaps {b} {second} (vm_ip_range {other})"
        assert all(r.subnet_of(ipaddress.ip_network(other)) for r in ranges.values())
        assert all(r.prefixlen <= 29 for r in ranges.values()), "Compute Engine's smallest subnet is a /29"


def _generated_ranges(regions: list[str]) -> dict[str, str]:
    blocks = [b for b in tf_network.network_blocks(regions) if b.type == "resource"]
    return {body["region"]: body["ip_cidr_range"] for body in _resources([parse_text("".join(map(render, blocks)))])
            .values()}


def test_a_region_added_to_the_catalog_moves_no_other_subnet_s_range() -> None:
    regions = tf_network.catalog_regions()
    for added in regions:
        before = _generated_ranges([r for r in regions if r != added])
        after = _generated_ranges(regions)
        assert {r: after[r] for r in before} == before, f"adding {added} renumbered another region's subnet"
    numbers = [*tf_network.REGION_INDEX.values(), tf_network.DEPLOYMENT_INDEX]
    assert len(set(numbers)) == len(numbers), "two regions share a range number"


def test_a_catalog_region_with_no_range_number_is_one_line_naming_it(monkeypatch, capsys) -> None:
    monkeypatch.setattr(tf_network, "REGION_INDEX", {r: n for r, n in tf_network.REGION_INDEX.items() if r != "us-west1"})
    assert tfgen.main(["--check"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert re.search(r"REGION_INDEX has no number for us-west1 \(a zone of gpu_catalog.yml\): add it with the next free", line)


def test_a_region_only_a_cpu_only_machine_is_in_gets_a_subnet_and_a_new_one_is_one_line(monkeypatch) -> None:
    gpus = {name: dataclasses.replace(gpu, zones=("us-central1-a",)) for name, gpu in CATALOG.gpus.items()}
    cpu = next(iter(CATALOG.cpus.values()))
    only_cpu = dataclasses.replace(CATALOG, gpus=gpus, cpus={cpu.name: dataclasses.replace(cpu, zones=("us-east4-a",))})
    monkeypatch.setattr(tf_network, "load_catalog", lambda *args, **kwargs: only_cpu)
    assert tf_network.catalog_regions() == ["us-central1", "us-east4"]
    elsewhere = dataclasses.replace(only_cpu, cpus={cpu.name: dataclasses.replace(cpu, zones=("me-central1-a",))})
    monkeypatch.setattr(tf_network, "load_catalog", lambda *args, **kwargs: elsewhere)
    with pytest.raises(tf_network.NetworkError, match=r"REGION_INDEX has no number for me-central1 \(a zone of"):
        tf_network.catalog_regions()


def test_the_launcher_attaches_each_catalog_zone_s_vm_to_a_declared_subnet(resources, parsed) -> None:
    from functions import config, vm_spec

    (env,) = [entry["function_env"] for entry in parsed["functions.tf"]["locals"] if "function_env" in entry]
    assert env["VM_NETWORK"] == "${google_compute_network.render.id}"  # projects/P/global/networks/fast-render
    assert env["VM_SUBNETWORK"] == "${local.vm_subnetwork}"
    template = local(parsed, "vm_subnetwork")
    assert template == "projects/${var.project}/regions/{region}/subnetworks/${one(distinct(local.vm_subnet_names))}"
    # The names one() reads are every subnet's (so the functions wait for them all); each is fast-render-vms.
    names = set(re.findall(r"google_compute_subnetwork\.(\w+)", local(parsed, "vm_subnet_names")))
    assert names == set(of_kind(resources, "google_compute_subnetwork"))
    cfg = dataclasses.replace(config.load_config(), vm_network="projects/p/global/networks/fast-render",
                              vm_subnetwork=template.replace("${var.project}", "p").replace(
                                  "${one(distinct(local.vm_subnet_names))}", "fast-render-vms"))
    declared = {f"projects/p/regions/{body['region']}/subnetworks/{body['name']}"
                for body in of_kind(resources, "google_compute_subnetwork").values()}
    for zone in CATALOG_ZONES:
        interface = vm_spec.network_interface(cfg, zone)
        assert interface.subnetwork in declared, f"{zone}: {interface.subnetwork} is not declared"
        assert f"/regions/{region_of(zone)}/" in interface.subnetwork


def test_each_subnet_grant_is_on_a_subnet_of_its_own_region(resources) -> None:
    subnets = of_kind(resources, "google_compute_subnetwork")
    grants = of_kind(resources, "google_compute_subnetwork_iam_member")
    assert len(grants) % len(subnets) == 0 and grants
    for name, body in grants.items():
        subnet = re.fullmatch(r"\$\{google_compute_subnetwork\.(\w+?)(\[0\])?\.name\}", body["subnetwork"]).group(1)
        assert body["region"] == subnets[subnet]["region"], name
        assert body.get("count") == subnets[subnet].get("count"), f"{name}: exists exactly when its subnet does"


def test_nat_when_enabled_covers_every_subnet_in_its_region(resources) -> None:
    subnets = of_kind(resources, "google_compute_subnetwork")
    routers, nats = of_kind(resources, "google_compute_router"), of_kind(resources, "google_compute_router_nat")
    assert len(routers) == len(nats) == len(subnets)
    covered = {}
    for name, nat in nats.items():
        assert "var.enable_nat" in nat["count"] and nat["count"] == routers[name]["count"], name
        (subnetwork,) = nat["subnetwork"]
        subnet = re.fullmatch(r"\$\{google_compute_subnetwork\.(\w+?)(\[0\])?\.id\}", subnetwork["name"]).group(1)
        assert nat["region"] == routers[name]["region"] == subnets[subnet]["region"], name
        assert nat["router"] == f"${{google_compute_router.{name}[0].name}}"
        covered[subnet] = name
    assert set(covered) == set(subnets)
    assert "!local.vm_subnet_in_catalog" in nats["nat_deployment_region"]["count"]


def test_the_generator_reads_the_bundled_catalog_not_gpu_catalog(monkeypatch, tmp_path) -> None:
    """A person's GPU_CATALOG must not change what is deployed for everyone (the generated files)."""
    other = tmp_path / "catalog.yml"
    other.write_text(DEFAULT_CATALOG_PATH.read_text().replace("us-central1-a", "me-west1-a"))
    monkeypatch.setenv("GPU_CATALOG", str(other))
    assert set(tf_network.catalog_regions()) == CATALOG_REGIONS


def test_this_file_s_cidrsubnet_is_terraform_s() -> None:
    """Terraform's documented example: cidrsubnet("10.1.2.0/24", 4, 15) is 10.1.2.240/28."""
    assert str(evaluated_range("${cidrsubnet(var.vm_ip_range, 4, 15)}", "10.1.2.0/24")) == "10.1.2.240/28"
