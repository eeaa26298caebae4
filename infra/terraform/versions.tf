# Terraform and the providers this module uses: google for every resource,
# archive to zip the functions' source. Nothing needs google-beta.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
    # 2.5 is the first with glob patterns in archive_file's excludes (functions.tf;
    # hashicorp/terraform-provider-archive pull request 354).
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.5, < 3.0"
    }
  }

  # State lives in a bucket of the project, so Cloud Build and people share it:
  #   terraform -chdir=infra/terraform init -backend-config="bucket=PROJECT-tfstate"
  # (the bucket is made once, before the first init: docs/deploy.md).
  backend "gcs" {
    prefix = "fast-render"
  }
}

provider "google" {
  project = var.project
  region  = var.region
}
