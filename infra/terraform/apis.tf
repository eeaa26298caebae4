# Every API the deployment uses, one resource each (the generated files depend on them by name).
# disable_on_destroy = false: destroying this module must not switch off an API other
# things in the project may use.

resource "google_project_service" "cloudresourcemanager" {
  # The project and its IAM policy (every google_project_iam_member).
  project            = var.project
  service            = "cloudresourcemanager.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "serviceusage" {
  # Enabling the others.
  project            = var.project
  service            = "serviceusage.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "iam" {
  # The service accounts and custom roles.
  project            = var.project
  service            = "iam.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "compute" {
  # The render VMs, their network, subnet, firewall (and NAT).
  project            = var.project
  service            = "compute.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "pubsub" {
  # The topics and subscriptions.
  project            = var.project
  service            = "pubsub.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "storage" {
  # The buckets and their notifications.
  project            = var.project
  service            = "storage.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "firestore" {
  # The jobs' state, the fleet's memory, the spend.
  project            = var.project
  service            = "firestore.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "cloudfunctions" {
  # The functions (gen2).
  project            = var.project
  service            = "cloudfunctions.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "run" {
  # The Cloud Run services gen2 functions run on; their invoker IAM.
  project            = var.project
  service            = "run.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "cloudbuild" {
  # The functions' builds, and cloudbuild.yaml.
  project            = var.project
  service            = "cloudbuild.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "artifactregistry" {
  # The worker image, and the functions' containers (gcf-artifacts).
  project            = var.project
  service            = "artifactregistry.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "cloudscheduler" {
  # The watchdog's tick.
  project            = var.project
  service            = "cloudscheduler.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "logging" {
  # The functions' and VMs' logs, the Vertex AI sink.
  project            = var.project
  service            = "logging.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_service" "aiplatform" {
  # The primary renderer's Vertex AI custom jobs.
  project            = var.project
  service            = "aiplatform.googleapis.com"
  disable_on_destroy = false
}
