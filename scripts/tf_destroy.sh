#!/bin/sh
# Destroy a throw-away Fast Render environment with Terraform, except the
# identity the destroying build runs as: the build service account and its
# project grants are taken out of the state first (else the destroy would
# remove its own permissions half-way). POSIX sh: it runs in the
# hashicorp/terraform image (cloudbuild.yaml's teardown, cloudbuild-teardown.yaml).
#
#   scripts/tf_destroy.sh PROJECT REGION
#
# Run after `terraform -chdir=infra/terraform init -backend-config=bucket=...`.
# What stays: the build account (gcloud iam service-accounts delete
# fast-render-build@PROJECT.iam.gserviceaccount.com removes it) and the state bucket.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: tf_destroy.sh PROJECT REGION" >&2
    exit 2
fi
project="$1"
region="$2"
tf() { terraform -chdir="$(dirname "$0")/../infra/terraform" "$@"; }

tf state list | grep -E '^google_(service_account\.build|project_iam_member\.build_[a-z0-9_]+)$' | while read -r kept; do
    tf state rm "$kept" >/dev/null
    echo "teardown: kept $kept (the build runs as it)"
done
tf destroy -input=false -auto-approve -var="project=$project" -var="region=$region" \
    -var=force_destroy_buckets=true -var=firestore_deletion_protection=false
echo "teardown: $project's Fast Render deployment is destroyed"
