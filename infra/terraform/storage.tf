# The product's two buckets (infra/topology.yaml: staging, output) and the
# functions' source bucket. Uniform access (IAM only, no ACLs) and public access
# prevention on all three: nothing here is ever public. No versioning: the
# product never overwrites what it needs to keep (the output is create-only,
# the heartbeats are meant to be overwritten).

resource "google_storage_bucket" "staging" {
  # checkov:skip=CKV_GCP_62:access logs of every heartbeat write would cost more than they tell; Cloud Audit Logs (data access) can be enabled per project instead
  # checkov:skip=CKV_GCP_78:no versioning: heartbeats are overwritten every few seconds, and old versions of job files are not needed
  project                     = var.project
  name                        = "${var.project}-staging"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  # Segments (common/layout.py: jobs/<job>/segments/<hash>.mp4) go sooner than the rest of a job.
  # A lifecycle prefix cannot name a folder below the job id, so the rule matches the prefix
  # jobs/ and the suffix .mp4. A job's inputs are images and audio (common/manifest.py); one
  # named *.mp4 (AAC narration, say) goes at this age too, days after its job has ended.
  lifecycle_rule {
    condition {
      age            = var.segment_retention_days
      matches_prefix = ["jobs/"]
      matches_suffix = [".mp4"]
    }
    action {
      type = "Delete"
    }
  }

  # Everything staged for a job: job.json, its assets, heartbeats.
  lifecycle_rule {
    condition {
      age            = var.staged_job_retention_days
      matches_prefix = ["jobs/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.storage]
}

resource "google_storage_bucket" "output" {
  # checkov:skip=CKV_GCP_62:a video is written once and read a few times; Cloud Audit Logs (data access) can be enabled per project instead
  # checkov:skip=CKV_GCP_78:no versioning: the video and its report are create-only (if_generation_match=0), never overwritten
  project                     = var.project
  name                        = "${var.project}-output"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  dynamic "lifecycle_rule" {
    for_each = var.output_retention_days > 0 ? [var.output_retention_days] : []
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["renders/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.storage]
}

resource "google_storage_bucket" "functions_source" {
  # checkov:skip=CKV_GCP_62:holds only the zipped source Terraform uploads; Cloud Audit Logs cover who changed it
  # checkov:skip=CKV_GCP_78:each source archive has its own name (its MD5), so nothing is overwritten
  project                     = var.project
  name                        = "${var.project}-functions-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # only archives Terraform made

  depends_on = [google_project_service.storage]
}
