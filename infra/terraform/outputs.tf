# What people and cloudbuild.yaml need after an apply (function_urls: generated_functions.tf).

output "status_url" {
  description = "The /status URL callers use (STATUS_URL), also the audience their ID tokens must name."
  value       = local.status_url
}

output "staging_bucket" {
  description = "The staging bucket (STAGING_BUCKET)."
  value       = google_storage_bucket.staging.name
}

output "output_bucket" {
  description = "The output bucket (OUTPUT_BUCKET)."
  value       = google_storage_bucket.output.name
}

output "service_accounts" {
  description = "The product's service accounts' emails (infra/iam.yaml)."
  value = {
    functions = google_service_account.functions.email
    status    = google_service_account.status.email
    render    = google_service_account.render.email
    push      = google_service_account.push.email
    builder   = google_service_account.builder.email
    build     = google_service_account.build.email
  }
}

output "worker_image" {
  description = "The worker image the functions start (WORKER_IMAGE): push it here."
  value       = local.worker_image
}

output "vm_network" {
  description = "The render VMs' network (VM_NETWORK), subnet template (VM_SUBNETWORK, {region} is the VM zone's) and subnet of each region."
  value = {
    network    = google_compute_network.render.id
    subnetwork = local.vm_subnetwork
    subnets    = local.vm_subnets
  }
}
