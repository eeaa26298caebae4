# The project's number and Google's service agents, which act for our resources
# (their grants: generated_iam_grants.tf, from infra/iam.yaml service_agents).

data "google_project" "this" {
  project_id = var.project

  depends_on = [google_project_service.cloudresourcemanager]
}

# The Cloud Storage service agent, which publishes the buckets' notifications.
# Reading it also makes sure it exists.
data "google_storage_project_service_account" "this" {
  project = var.project

  depends_on = [google_project_service.storage]
}

locals {
  # The Pub/Sub service agent: it dead-letters messages and mints the push OIDC tokens.
  pubsub_service_agent  = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  storage_service_agent = data.google_storage_project_service_account.this.email_address
}
