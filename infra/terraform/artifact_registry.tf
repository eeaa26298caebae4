# The worker's image: REGION-docker.pkg.dev/PROJECT/render/worker. Cloud Build
# pushes it (fast-render-build: artifactregistry.writer); the render account
# pulls it (artifactregistry.reader on this repository only: generated_iam_grants.tf).

resource "google_artifact_registry_repository" "render" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption; the image holds our code and public packages, no user data
  project       = var.project
  location      = var.region
  repository_id = "render"
  format        = "DOCKER"
  description   = "Fast Render's worker image."

  # Old untagged images pile up at every build; keep the ten newest.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state = "UNTAGGED"
    }
  }

  depends_on = [google_project_service.artifactregistry]
}
