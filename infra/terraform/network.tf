# The render VMs' own network. They have no external IP; Private Google Access
# on their subnets lets them reach Cloud Storage, Artifact Registry (*.pkg.dev),
# Cloud Logging and the Compute API (the self-delete) through the network's
# default route, which Google keeps inside its network for those addresses.
# Cloud NAT only behind enable_nat: nothing the VMs need is on the internet
# (the Deep Learning VM image's driver installer and the image pull use Google
# APIs).
#
# The subnets are in generated_network.tf: one fast-render-vms per region of
# catalog/gpu_catalog.yml's zones (and var.region), as the launcher may place a
# VM in any of them and a subnet is regional. Their NAT, when enabled, is in
# generated_nat.tf, one per subnet region (infra/tf_network.py says why).
# A catalog given to the functions through GPU_CATALOG must not use a region
# with no subnet here: a VM inserted there is an invalid request and its job
# fails. Add the region to catalog/gpu_catalog.yml (or to REGION_INDEX in
# infra/tf_network.py) and run python -m infra.tfgen.

resource "google_compute_network" "render" {
  project                 = var.project
  name                    = "fast-render"
  description             = "Fast Render's render VMs (no external IPs)."
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.compute]
}

# Nothing ever needs to reach a render VM: it pulls its job and pushes its
# results. A deny beats the allow rules a project may add later (priority 0 is
# the highest), for the VMs' tag.
resource "google_compute_firewall" "deny_render_ingress" {
  project       = var.project
  name          = "fast-render-deny-ingress"
  description   = "No ingress to Fast Render's render VMs."
  network       = google_compute_network.render.id
  direction     = "INGRESS"
  priority      = 0
  source_ranges = ["0.0.0.0/0"]
  target_tags   = [var.vm_network_tag]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
