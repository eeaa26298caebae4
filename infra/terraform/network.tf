# The render VMs' own network. They have no external IP; Private Google Access
# on their subnet lets them reach Cloud Storage, Artifact Registry (*.pkg.dev),
# Cloud Logging and the Compute API (the self-delete) through the network's
# default route, which Google keeps inside its network for those addresses.
# Cloud NAT only behind enable_nat: nothing the VMs need is on the internet
# (the Deep Learning VM image's driver installer and the image pull use Google
# APIs).

resource "google_compute_network" "render" {
  project                 = var.project
  name                    = "fast-render"
  description             = "Fast Render's render VMs (no external IPs)."
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.compute]
}

resource "google_compute_subnetwork" "vms" {
  project                  = var.project
  name                     = "fast-render-vms"
  region                   = var.region
  network                  = google_compute_network.render.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  # What the VMs reach, for an incident; sampled to keep the log volume small.
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
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

resource "google_compute_router" "nat" {
  count   = var.enable_nat ? 1 : 0
  project = var.project
  name    = "fast-render-nat"
  region  = var.region
  network = google_compute_network.render.id
}

resource "google_compute_router_nat" "nat" {
  count                              = var.enable_nat ? 1 : 0
  project                            = var.project
  name                               = "fast-render-nat"
  region                             = var.region
  router                             = google_compute_router.nat[0].name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.vms.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
