"""The VM the launcher asks for: its name, network, identity, scopes and what its startup script runs."""

from __future__ import annotations

import dataclasses

import pytest

from catalog.model import load_catalog
from catalog.select import select
from common.layout import JOB_ID_PATTERN
from functions.config import Config, load_config
from functions.primary import build_custom_job
from functions.vm_spec import build_instance, instance_name

ENV = ("VM_NAME_PREFIX", "VM_NETWORK_TAG", "VM_SUBNETWORK", "VM_WORKER_COMMAND", "VERTEX_SERVICE_ACCOUNT",
       "WORKER_IMAGE", "MAX_VM_ATTEMPTS", "VM_IMAGE", "VM_CPU_IMAGE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def option():
    """A GPU option (the first the selector weighs for a 3-minute video): the tests below make it CPU-only when they need one."""
    return next(o for o in select(load_catalog(), 180, spot=True).options if o.accelerator_count > 0)


def metadata(instance) -> dict[str, str]:
    return {item.key: item.value for item in instance.metadata.items}


def test_names_follow_the_design_note_and_fit_gce_for_the_longest_job_id(env) -> None:
    cfg = load_config()
    assert cfg.vm_name_prefix == "av-render-"
    assert instance_name("lighthouse-0042", 2, prefix=cfg.vm_name_prefix) == "av-render-lighthouse-0042-a2"
    longest = "x" * 40
    assert JOB_ID_PATTERN.match(longest) and not JOB_ID_PATTERN.match(longest + "x")  # config's _JOB_ID_MAX
    assert len(instance_name(longest, cfg.max_vm_attempts, prefix=cfg.vm_name_prefix)) <= 63


def test_a_prefix_that_could_not_fit_or_is_not_a_gce_name_is_one_clear_line(env) -> None:
    env.setenv("VM_NAME_PREFIX", "a-prefix-far-too-long-")
    with pytest.raises(ValueError, match=r"^VM_NAME_PREFIX: 'a-prefix-far-too-long-' must .* at most 20 characters"):
        load_config()
    env.setenv("VM_NAME_PREFIX", "Render-")
    with pytest.raises(ValueError, match="^VM_NAME_PREFIX: 'Render-' must start with a-z"):
        load_config()
    env.setenv("VM_NAME_PREFIX", "render-")
    env.setenv("MAX_VM_ATTEMPTS", "100")  # three digits: room for 19
    assert load_config().vm_name_prefix == "render-"


def test_a_network_tag_compute_engine_would_refuse_is_one_clear_line(env) -> None:
    env.setenv("VM_NETWORK_TAG", "Render_VMs")
    with pytest.raises(ValueError, match="^VM_NETWORK_TAG: 'Render_VMs' must be 1-63 characters"):
        load_config()


def test_by_default_the_vm_runs_the_worker_image_with_the_driver_installed(env, option) -> None:
    env.setenv("WORKER_IMAGE", "us-central1-docker.pkg.dev/p/render/worker:abc")
    cfg = load_config()
    instance = build_instance(cfg, "job-1", 1, instance_name("job-1", 1, prefix=cfg.vm_name_prefix), option,
                              option.zones[0])
    got = metadata(instance)
    assert got["fast-render-worker-image"] == "us-central1-docker.pkg.dev/p/render/worker:abc"
    assert got["install-nvidia-driver"] == "True"
    assert "fast-render-worker-command" not in got
    assert got["startup-script"].startswith("#!/bin/bash")


def cpu_only(option, provisioning: str):
    """A CPU-only machine as the catalog's `cpus:` section gives it: no accelerator, count 0, named by its key."""
    return dataclasses.replace(option, gpu="c3-highcpu-22", machine_type="c3-highcpu-22", accelerator="",
                               accelerator_count=0, has_nvenc=False, provisioning=provisioning)


def test_a_gpu_vm_has_its_gpu_the_gpu_image_and_terminates_on_host_maintenance(env, option) -> None:
    cfg = load_config()
    for provisioning in ("on-demand", "spot"):
        gpu = dataclasses.replace(option, provisioning=provisioning)
        instance = build_instance(cfg, "job-1", 1, "av-render-job-1-a1", gpu, "us-central1-a")
        (accelerator,) = instance.guest_accelerators
        assert accelerator.accelerator_type == f"zones/us-central1-a/acceleratorTypes/{gpu.accelerator}"
        assert accelerator.accelerator_count == gpu.accelerator_count >= 1
        assert instance.scheduling.on_host_maintenance == "TERMINATE"  # a VM with a GPU cannot live-migrate
        assert instance.disks[0].initialize_params.source_image.endswith("/family/common-cu124-debian-11")
        got = metadata(instance)
        assert got["fast-render-gpu-count"] == str(gpu.accelerator_count)
        assert got["install-nvidia-driver"] == "True"


def test_a_cpu_only_vm_has_no_accelerator_no_driver_and_boots_the_cpu_image(env, option) -> None:
    env.setenv("WORKER_IMAGE", "us-central1-docker.pkg.dev/p/render/worker:abc")
    cfg = load_config()
    instance = build_instance(cfg, "job-1", 1, "av-render-job-1-a1", cpu_only(option, "on-demand"), "us-central1-a")
    assert list(instance.guest_accelerators) == []
    assert instance.machine_type == "zones/us-central1-a/machineTypes/c3-highcpu-22"
    assert instance.disks[0].initialize_params.source_image == (
        "projects/deeplearning-platform-release/global/images/family/common-cpu-debian-11-py310")
    got = metadata(instance)
    assert got["fast-render-gpu-count"] == "0" and "install-nvidia-driver" not in got
    assert got["fast-render-gpu"] == "c3-highcpu-22" and instance.labels["fast-render-gpu"] == "c3-highcpu-22"
    assert got["fast-render-worker-image"] == "us-central1-docker.pkg.dev/p/render/worker:abc"
    # Live migration keeps an on-demand CPU VM rendering through its host's maintenance.
    assert instance.scheduling.on_host_maintenance == "MIGRATE"
    assert instance.scheduling.provisioning_model == "STANDARD" and not instance.scheduling.automatic_restart


def test_a_cpu_only_spot_vm_terminates_on_host_maintenance_as_every_spot_vm_must(env, option) -> None:
    instance = build_instance(load_config(), "job-1", 1, "av-render-job-1-a1", cpu_only(option, "spot"), "us-east1-b")
    assert instance.scheduling.provisioning_model == "SPOT"
    assert instance.scheduling.on_host_maintenance == "TERMINATE"
    assert instance.scheduling.instance_termination_action == "DELETE"


def test_the_cpu_image_is_a_setting(env, option) -> None:
    env.setenv("VM_CPU_IMAGE", "projects/p/global/images/family/render-cpu")
    env.setenv("VM_IMAGE", "projects/p/global/images/family/render-gpu")
    cfg = load_config()
    cpu = build_instance(cfg, "job-1", 1, "av-render-job-1-a1", cpu_only(option, "spot"), "us-central1-a")
    gpu = build_instance(cfg, "job-1", 1, "av-render-job-1-a1", option, "us-central1-a")
    assert cpu.disks[0].initialize_params.source_image == "projects/p/global/images/family/render-cpu"
    assert gpu.disks[0].initialize_params.source_image == "projects/p/global/images/family/render-gpu"


def test_a_worker_command_replaces_the_image_as_the_local_cloud_does(env, option) -> None:
    env.setenv("VM_WORKER_COMMAND", "python -m render_vm worker")
    got = metadata(build_instance(load_config(), "job-1", 1, "av-render-job-1-a1", option, option.zones[0]))
    assert got["fast-render-worker-command"] == "python -m render_vm worker"
    assert "fast-render-worker-image" not in got and "install-nvidia-driver" not in got


def test_the_vm_has_the_render_accounts_narrow_scopes_its_tag_and_subnet_and_no_external_ip(env, option) -> None:
    env.setenv("VM_SUBNETWORK", "regions/us-central1/subnetworks/fast-render-vms")
    instance = build_instance(load_config(), "job-1", 1, "av-render-job-1-a1", option, option.zones[0])
    (account,) = instance.service_accounts
    assert sorted(account.scopes) == [
        "https://www.googleapis.com/auth/compute",
        "https://www.googleapis.com/auth/devstorage.read_write",
        "https://www.googleapis.com/auth/logging.write",
    ]
    assert list(instance.tags.items) == ["autovideo-render"]
    (interface,) = instance.network_interfaces
    assert interface.subnetwork == "regions/us-central1/subnetworks/fast-render-vms"
    assert list(interface.access_configs) == []  # no external IP


def test_a_subnetwork_with_region_follows_the_zone_the_launcher_chose(env, option) -> None:
    env.setenv("VM_SUBNETWORK", "projects/p/regions/{region}/subnetworks/fast-render-vms")
    cfg = load_config()
    for zone, region in (("us-central1-a", "us-central1"), ("us-east4-a", "us-east4")):
        interface = build_instance(cfg, "job-1", 1, "av-render-job-1-a1", option, zone).network_interfaces[0]
        assert interface.subnetwork == f"projects/p/regions/{region}/subnetworks/fast-render-vms"


def test_without_a_subnetwork_compute_engine_picks_the_networks(env, option) -> None:
    env.setenv("VM_NETWORK_TAG", "my-tag")
    instance = build_instance(load_config(), "job-1", 1, "av-render-job-1-a1", option, option.zones[0])
    assert instance.network_interfaces[0].subnetwork == "" and list(instance.tags.items) == ["my-tag"]


def test_the_vertex_job_runs_as_the_configured_account_or_vertexs_default(env) -> None:
    assert build_custom_job(load_config(), "job-1").job_spec.service_account == ""
    env.setenv("VERTEX_SERVICE_ACCOUNT", "fast-render-render@p.iam.gserviceaccount.com")
    job = build_custom_job(load_config(), "job-1")
    assert job.job_spec.service_account == "fast-render-render@p.iam.gserviceaccount.com"


def test_config_defaults_match_load_config_defaults(env) -> None:
    loaded = load_config()
    for field in ("vm_name_prefix", "vm_network_tag", "vm_subnetwork", "vertex_service_account", "vm_worker_command",
                  "vm_image", "vm_cpu_image"):
        assert getattr(loaded, field) == getattr(Config, field), field


def test_the_defaults_are_the_ones_iam_is_declared_for() -> None:
    """infra/iam.yaml's render-vms condition and firewall tag must match what the launcher names and tags."""
    from pathlib import Path

    import yaml

    iam = yaml.safe_load((Path(__file__).resolve().parents[2] / "infra" / "iam.yaml").read_text())
    assert (iam["vm_name_prefix"], iam["vm_network_tag"]) == (Config.vm_name_prefix, Config.vm_network_tag)
