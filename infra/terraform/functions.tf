# What all the functions share (generated_functions.tf has one resource each):
# the source archive, built from the repository, and the environment
# functions/config.py reads. Cloud Functions installs requirements.txt from the
# archive's root and loads main.py.

data "archive_file" "functions_source" {
  type        = "zip"
  source_dir  = "${path.module}/../.."
  output_path = "${path.module}/.build/functions-source.zip"
  # What the functions never import: tests, tools, docs, virtual environments,
  # local state, and this module (its .terraform holds the providers).
  excludes = [
    ".git",
    ".venv",
    ".venv-checks",
    ".local-cloud",
    ".pytest_cache",
    ".hypothesis",
    "out",
    "tests",
    "bench",
    "docs",
    "infra/terraform",
    ".setup-stamp",
    "**/__pycache__",
    "**/*.pyc",
    "**/*.egg-info",
  ]
}

resource "google_storage_bucket_object" "functions_source" {
  # A new name for each content: the functions rebuild when the source changes.
  name         = "functions/source-${data.archive_file.functions_source.output_md5}.zip"
  bucket       = google_storage_bucket.functions_source.name
  source       = data.archive_file.functions_source.output_path
  content_type = "application/zip"
}

locals {
  worker_image = var.worker_image != "" ? var.worker_image : "${var.region}-docker.pkg.dev/${var.project}/render/worker:latest"

  # functions/config.py's settings; the rest keep their documented defaults.
  function_env = {
    GOOGLE_CLOUD_PROJECT   = var.project
    REGION                 = var.region
    STAGING_BUCKET         = google_storage_bucket.staging.name
    OUTPUT_BUCKET          = google_storage_bucket.output.name
    FIRESTORE_DATABASE     = google_firestore_database.main.name
    WORKER_IMAGE           = local.worker_image
    VM_SERVICE_ACCOUNT     = google_service_account.render.email
    VERTEX_SERVICE_ACCOUNT = google_service_account.render.email
    VM_NETWORK             = google_compute_network.render.id # projects/P/global/networks/fast-render
    VM_SUBNETWORK          = local.vm_subnetwork              # projects/P/regions/{region}/subnetworks/fast-render-vms
    VM_NAME_PREFIX         = var.vm_name_prefix
    VM_NETWORK_TAG         = var.vm_network_tag
    JOB_RETENTION_DAYS     = tostring(var.job_retention_days)
  }

  # /status: the audiences an ID token may name (the cloudfunctions.net URL: known
  # before the function exists, so no cycle; a service account asks for it with
  # `gcloud auth print-identity-token --audiences=URL`; var.status_extra_audiences for
  # people), and who may use the controls.
  status_url = "https://${var.region}-${var.project}.cloudfunctions.net/status"
  status_env = {
    STATUS_AUDIENCE = join(",", concat([local.status_url], var.status_extra_audiences))
    STATUS_OPERATORS = join(",", [
      for member in var.operators : split(":", member)[1] if !startswith(member, "group:")
    ])
  }
}
