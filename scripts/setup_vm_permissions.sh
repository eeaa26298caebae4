#!/usr/bin/env bash
# Fast Render's IAM with gcloud, for a project without Terraform (the design
# note's one-time step): service accounts, custom roles, the project grants (VM
# roles only on VMs named like the render VMs), and the grants on buckets,
# topics, subscriptions, each region's render subnet, the worker's Artifact
# Registry repository and the functions.
#
# GENERATED from infra/iam.yaml by `python -m infra.iamscript`: edit that file
# and regenerate (tests/infra/test_setup_script.py fails when this is stale).
#
#   scripts/setup_vm_permissions.sh PROJECT [--region REGION] [--operator MEMBER]... [--viewer MEMBER]...
#                                   [--only ACCOUNT]...
#
# MEMBER: user:EMAIL, group:EMAIL, serviceAccount:EMAIL or domain:DOMAIN.
# --only ACCOUNT (one of: functions status render push builder build): that service account, its custom roles
# and its grants, nothing else; `--only build` makes the account cloudbuild.yaml
# runs as, before the first build (Terraform then keeps the rest).
# Safe to run again: what exists is kept (roles are updated to iam.yaml's
# permissions), and adding a binding that is there changes nothing. A grant on
# a resource not made yet (Terraform makes the buckets, topics, subnets,
# repository, functions) is skipped with a line saying so: run it again after.
# A terraform apply afterwards adopts the service accounts made here
# (create_ignore_already_exists) but cannot adopt the custom roles: import
# each into Terraform's state first (the script prints the commands):
#   terraform -chdir=infra/terraform import google_project_iam_custom_role.fast_render_vm_lifecycle projects/PROJECT/roles/fastRenderVmLifecycle
#   terraform -chdir=infra/terraform import google_project_iam_custom_role.fast_render_vm_fleet projects/PROJECT/roles/fastRenderVmFleet
#   terraform -chdir=infra/terraform import google_project_iam_custom_role.fast_render_vm_self_delete projects/PROJECT/roles/fastRenderVmSelfDelete
set -euo pipefail

USAGE="usage: setup_vm_permissions.sh PROJECT [--region REGION] [--operator MEMBER]... [--viewer MEMBER]... [--only ACCOUNT]..."
ACCOUNTS=(functions status render push builder build)
PROJECT=""
REGION="us-central1"
OPERATORS=()
VIEWERS=()
ONLY=()

die() { echo "setup_vm_permissions.sh: $*" >&2; exit 2; }

member_arg() {  # member_arg FLAG VALUE: VALUE if it is an IAM member, else a one-line error
    [[ "$2" =~ ^(user|group|serviceAccount|domain):[^[:space:]]+$ ]] ||
        die "$1 needs an IAM member like user:alice@example.com (got '${2}'); $USAGE"
    printf '%s' "$2"
}

account_arg() {  # account_arg VALUE: VALUE if it is one of iam.yaml's service accounts, else a one-line error
    [[ " ${ACCOUNTS[*]} " == *" $1 "* ]] || die "--only needs one of: ${ACCOUNTS[*]} (got '${1}'); $USAGE"
    printf '%s' "$1"
}

while (($#)); do
    case "$1" in
        --only) (($# >= 2)) || die "--only needs an account; $USAGE"; ONLY+=("$(account_arg "$2")"); shift 2 ;;
        --only=*) ONLY+=("$(account_arg "${1#*=}")"); shift ;;
        --region) (($# >= 2)) || die "--region needs a value; $USAGE"; REGION="$2"; shift 2 ;;
        --region=*) REGION="${1#*=}"; shift ;;
        --operator) (($# >= 2)) || die "--operator needs a member; $USAGE"; OPERATORS+=("$(member_arg --operator "$2")"); shift 2 ;;
        --operator=*) OPERATORS+=("$(member_arg --operator "${1#*=}")"); shift ;;
        --viewer) (($# >= 2)) || die "--viewer needs a member; $USAGE"; VIEWERS+=("$(member_arg --viewer "$2")"); shift 2 ;;
        --viewer=*) VIEWERS+=("$(member_arg --viewer "${1#*=}")"); shift ;;
        -h | --help) echo "$USAGE"; exit 0 ;;
        -*) die "unknown option $1; $USAGE" ;;
        *) [[ -z "$PROJECT" ]] || die "one PROJECT only (got '$PROJECT' and '$1'); $USAGE"; PROJECT="$1"; shift ;;
    esac
done
[[ -n "$PROJECT" ]] || { echo "$USAGE" >&2; exit 2; }
[[ "$PROJECT" =~ ^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "PROJECT '$PROJECT' is not a project id; $USAGE"
command -v gcloud >/dev/null || die "gcloud is not on PATH (https://cloud.google.com/sdk/docs/install)"

granted=0
skipped=0
ROLES=()
declare -A FOUND=()

say() { echo "setup: $*"; }

# wanted [ACCOUNT...]: whether this run does a step for one of those accounts (every step without
# --only); with no ACCOUNT, whether this is a whole run (people, service agents).
wanted() {
    ((${#ONLY[@]} == 0)) && return 0
    local key
    for key in "$@"; do
        [[ " ${ONLY[*]} " == *" $key "* ]] && return 0
    done
    return 1
}

# gc ARGS...: run gcloud quietly; on failure print the command and gcloud's message, and stop.
# A binding to an account made seconds ago can be refused until IAM has it
# everywhere (eventual consistency), and two policy writers can collide: those
# are tried again, 4 times, 5 s apart.
gc() {
    local out attempt
    for attempt in 1 2 3 4 5; do
        out="$(gcloud "$@" --quiet 2>&1 >/dev/null)" && return 0
        if ((attempt == 5)) || ! [[ "$out" =~ (does\ not\ exist|NOT_FOUND|ABORTED|concurrent) ]]; then
            break
        fi
        sleep 5
    done
    echo "setup: FAILED: gcloud $*" >&2
    echo "$out" >&2
    exit 1
}

enable_apis() {
    gc services enable "$@" --project="$PROJECT"
    say "APIs enabled: $*"
}

ensure_service_account() {  # ACCOUNT_ID DISPLAY_NAME
    local email="$1@$PROJECT.iam.gserviceaccount.com"
    if gcloud iam service-accounts describe "$email" --project="$PROJECT" >/dev/null 2>&1; then
        say "service account $email: exists"
    else
        gc iam service-accounts create "$1" --display-name="$2" --project="$PROJECT"
        say "service account $email: created"
    fi
}

ensure_role() {  # ROLE_ID TITLE DESCRIPTION PERMISSIONS (comma-separated) TERRAFORM_NAME
    local deleted
    ROLES+=("$5 $1")  # Terraform cannot adopt it: the footer says how to import it
    if deleted="$(gcloud iam roles describe "$1" --project="$PROJECT" --format='value(deleted)' 2>/dev/null)"; then
        if [[ "$deleted" == True ]]; then  # deleted less than 7 days ago: a new one of that id cannot be made
            gc iam roles undelete "$1" --project="$PROJECT"
        fi
        gc iam roles update "$1" --project="$PROJECT" --title="$2" --description="$3" --permissions="$4" --stage=GA
        say "custom role $1: updated to $4"
    else
        gc iam roles create "$1" --project="$PROJECT" --title="$2" --description="$3" --permissions="$4" --stage=GA
        say "custom role $1: created with $4"
    fi
}

grant_project() {  # MEMBER ROLE CONDITION (KEY=VALUE,... or None) WHY
    gc projects add-iam-policy-binding "$PROJECT" --member="$1" --role="$2" --condition="$3"
    granted=$((granted + 1))
    if [[ "$3" == None ]]; then say "granted $2 to $1 on project $PROJECT ($4)"; else say "granted $2 to $1 on project $PROJECT, render VMs only ($4)"; fi
}

# exists KIND NAME: whether the resource is there (asked once per run).
exists() {
    local key="$1 $2"
    if [[ -z "${FOUND[$key]:-}" ]]; then
        FOUND[$key]=no
        case "$1" in
            bucket) gcloud storage buckets describe "gs://$2" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            topic) gcloud pubsub topics describe "$2" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            subscription) gcloud pubsub subscriptions describe "$2" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            service-account) gcloud iam service-accounts describe "$2" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            subnetwork) local r="${2%%/*}" n="${2#*/}"  # REGION/NAME: a subnet is regional, one per catalog region
                gcloud compute networks subnets describe "$n" --region="$r" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            repository) gcloud artifacts repositories describe "$2" --location="$REGION" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
            function) gcloud run services describe "$2" --region="$REGION" --project="$PROJECT" >/dev/null 2>&1 && FOUND[$key]=yes ;;
        esac
    fi
    [[ "${FOUND[$key]}" == yes ]]
}

grant_on() {  # KIND NAME MEMBER ROLE WHY
    local kind="$1" name="$2" member="$3" role="$4"
    if ! exists "$kind" "$name"; then
        say "skipped $role to $member on $kind $name: not there yet (run this again after terraform apply)"
        skipped=$((skipped + 1))
        return 0
    fi
    case "$kind" in
        bucket) gc storage buckets add-iam-policy-binding "gs://$name" --member="$member" --role="$role" --project="$PROJECT" ;;
        topic) gc pubsub topics add-iam-policy-binding "$name" --member="$member" --role="$role" --project="$PROJECT" ;;
        subscription) gc pubsub subscriptions add-iam-policy-binding "$name" --member="$member" --role="$role" --project="$PROJECT" ;;
        service-account) gc iam service-accounts add-iam-policy-binding "$name" --member="$member" --role="$role" --project="$PROJECT" ;;
        subnetwork) gc compute networks subnets add-iam-policy-binding "${name#*/}" --region="${name%%/*}" --member="$member" --role="$role" --project="$PROJECT" ;;
        repository) gc artifacts repositories add-iam-policy-binding "$name" --location="$REGION" --member="$member" --role="$role" --project="$PROJECT" ;;
        function) gc run services add-iam-policy-binding "$name" --region="$REGION" --member="$member" --role="$role" --project="$PROJECT" ;;  # a gen2 function's service
    esac
    granted=$((granted + 1))
    say "granted $role to $member on $kind $name ($5)"
}

# agent pubsub|storage|log_sink: set AGENT to that Google service agent's member, or say why not and return 1.
agent() {
    AGENT=""
    case "$1" in
        pubsub) AGENT="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" ;;  # made with the API
        storage)  # the project's Cloud Storage service agent (this call makes it if need be)
            AGENT="$(gcloud storage service-agent --project="$PROJECT" 2>/dev/null)" && [[ -n "$AGENT" ]] && AGENT="serviceAccount:$AGENT" ;;
        log_sink)  # the Vertex AI log sink's writer identity, already serviceAccount:...
            AGENT="$(gcloud logging sinks describe fast-render-vertex-events --project="$PROJECT" --format='value(writerIdentity)' 2>/dev/null)" ;;
    esac
    if [[ -z "$AGENT" ]]; then
        say "skipped the $1 service agent's grants: its identity cannot be read yet (run this again after terraform apply)"
        skipped=$((skipped + 1))
        return 1
    fi
}

say "project $PROJECT, region $REGION${ONLY[*]:+, only: ${ONLY[*]}}"

# ---------------------------------------------------------------- APIs
enable_apis iam.googleapis.com cloudresourcemanager.googleapis.com compute.googleapis.com

# ---------------------------------------------------------------- service accounts
wanted functions && ensure_service_account fast-render-functions 'Fast Render event functions'
wanted status && ensure_service_account fast-render-status 'Fast Render /status and dashboard'
wanted render && ensure_service_account fast-render-render 'Fast Render render VMs and Vertex AI jobs'
wanted push && ensure_service_account fast-render-push 'Fast Render Pub/Sub push identity'
wanted builder && ensure_service_account fast-render-builder 'Fast Render function builds'
wanted build && ensure_service_account fast-render-build 'Fast Render Cloud Build'

# ---------------------------------------------------------------- custom roles
wanted functions status && ensure_role fastRenderVmLifecycle 'Fast Render VM lifecycle' 'The launcher creates a render VM (boot disk, metadata, labels, tags, the render service account), reads it, its serial output and deletes it; bound only with the render-vms condition, so no other VM can be touched.' compute.instances.create,compute.instances.delete,compute.instances.get,compute.instances.getSerialPortOutput,compute.instances.setMetadata,compute.instances.setLabels,compute.instances.setTags,compute.instances.setServiceAccount,compute.disks.create fast_render_vm_lifecycle
wanted functions status && ensure_role fastRenderVmFleet 'Fast Render VM fleet reader' 'Listing instances (the watchdog'"'"'s orphan scan, avmonitor vm-status) and reading zone operations (an insert'"'"'s outcome) are checked on the project, where the name condition cannot apply.' compute.instances.list,compute.zoneOperations.get,compute.zones.list fast_render_vm_fleet
wanted render && ensure_role fastRenderVmSelfDelete 'Fast Render VM self-delete' 'A render VM deletes itself when its worker exits, whatever the outcome; bound only with the render-vms condition.' compute.instances.delete,compute.instances.get fast_render_vm_self_delete

# ---------------------------------------------------------------- project grants
wanted functions && grant_project "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/datastore.user None 'job state, fleet memory and spend in Firestore (Firestore has no per-collection IAM)'
wanted functions && grant_project "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/aiplatform.user None 'create, read and cancel the primary'"'"'s Vertex AI custom jobs'
wanted functions && grant_project "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" "projects/${PROJECT}/roles/fastRenderVmLifecycle" 'expression=(resource.type == "compute.googleapis.com/Instance" && resource.name.extract("instances/{name}").startsWith("av-render-")) || (resource.type == "compute.googleapis.com/Disk" && resource.name.extract("disks/{name}").startsWith("av-render-")),title=Fast Render VMs only,description=Instances and disks whose name starts with the VM name prefix.' 'launch and delete render VMs, and only those'
wanted functions && grant_project "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" "projects/${PROJECT}/roles/fastRenderVmFleet" None 'list VMs and read insert operations'
wanted functions && grant_project "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/logging.logWriter None 'its JSON log lines'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/datastore.user None 'read jobs; the controls change them'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/aiplatform.user None 'cancel a job'"'"'s Vertex AI run'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" "projects/${PROJECT}/roles/fastRenderVmLifecycle" 'expression=(resource.type == "compute.googleapis.com/Instance" && resource.name.extract("instances/{name}").startsWith("av-render-")) || (resource.type == "compute.googleapis.com/Disk" && resource.name.extract("disks/{name}").startsWith("av-render-")),title=Fast Render VMs only,description=Instances and disks whose name starts with the VM name prefix.' 'cancel deletes a job'"'"'s VM; launch creates one'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" "projects/${PROJECT}/roles/fastRenderVmFleet" None 'the VMs view'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/logging.viewer None 'GET /status/<job>/logs'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/cloudfunctions.viewer None 'avmonitor health through /status: each function ACTIVE'
wanted status && grant_project "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/logging.logWriter None 'its JSON log lines'
wanted render && grant_project "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" "projects/${PROJECT}/roles/fastRenderVmSelfDelete" 'expression=(resource.type == "compute.googleapis.com/Instance" && resource.name.extract("instances/{name}").startsWith("av-render-")) || (resource.type == "compute.googleapis.com/Disk" && resource.name.extract("disks/{name}").startsWith("av-render-")),title=Fast Render VMs only,description=Instances and disks whose name starts with the VM name prefix.' 'delete itself when done (and, by name, only render VMs)'
wanted render && grant_project "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" roles/logging.logWriter None 'the worker'"'"'s log lines (gcplogs) and the startup script'"'"'s'
wanted builder && grant_project "serviceAccount:fast-render-builder@${PROJECT}.iam.gserviceaccount.com" roles/logging.logWriter None 'the function builds'"'"' logs'
wanted builder && grant_project "serviceAccount:fast-render-builder@${PROJECT}.iam.gserviceaccount.com" roles/artifactregistry.writer None 'push each function'"'"'s container to the gcf-artifacts repository Cloud Functions creates'
wanted builder && grant_project "serviceAccount:fast-render-builder@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectViewer None 'read the source archive Cloud Functions copies to its own gcf-v2-sources bucket (made by the service, so no bucket grant of ours reaches it)'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/artifactregistry.admin None 'the render repository and its IAM (terraform apply), and push the worker image; the writer role cannot create a repository'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/storage.admin None 'Terraform state bucket, the product'"'"'s buckets, the functions'"'"' source'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.admin None 'topics, subscriptions, their IAM'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/cloudfunctions.developer None 'deploy the functions'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/run.admin None 'set the functions'"'"' invoker IAM'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/iam.serviceAccountAdmin None 'create the service accounts and their IAM'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/iam.serviceAccountUser None 'deploy functions that run as the product'"'"'s accounts'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/iam.roleAdmin None 'the custom roles'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/resourcemanager.projectIamAdmin None 'the project-level grants in this file'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/datastore.owner None 'the Firestore database, its indexes and TTL'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/cloudscheduler.admin None 'the watchdog'"'"'s schedule'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/logging.configWriter None 'the Vertex AI log sink'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkAdmin None 'the render network, subnet, router'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/compute.securityAdmin None 'the firewall'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/serviceusage.serviceUsageAdmin None 'enable the APIs'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/logging.logWriter None 'the build'"'"'s logs'
wanted build && grant_project "serviceAccount:fast-render-build@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.subscriber None 'the smoke test waits for render-completed'

# ---------------------------------------------------------------- grants on resources
wanted functions && grant_on bucket "${PROJECT}-staging" "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectUser 'read manifests, stage inline jobs, read heartbeats, clean up segments'
wanted functions && grant_on bucket "${PROJECT}-output" "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectViewer 'read render.json when a video arrives'
wanted functions && grant_on topic render-primary "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'the product'"'"'s own hand-offs and its two announcements; not render-jobs (the main app'"'"'s)'
wanted functions && grant_on topic render-fallback "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'the product'"'"'s own hand-offs and its two announcements; not render-jobs (the main app'"'"'s)'
wanted functions && grant_on topic render-completed "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'the product'"'"'s own hand-offs and its two announcements; not render-jobs (the main app'"'"'s)'
wanted functions && grant_on topic render-failed "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'the product'"'"'s own hand-offs and its two announcements; not render-jobs (the main app'"'"'s)'
wanted functions && grant_on service-account "fast-render-render@${PROJECT}.iam.gserviceaccount.com" "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/iam.serviceAccountUser 'run VMs and Vertex AI jobs as the render account, and no other'
wanted functions && grant_on subnetwork us-central1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork us-east1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork us-east4/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork us-east5/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork us-west1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork europe-west4/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork asia-east1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork asia-southeast1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && grant_on subnetwork asia-northeast1/fast-render-vms "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'
wanted functions && { [[ " us-central1 us-east1 us-east4 us-east5 us-west1 europe-west4 asia-east1 asia-southeast1 asia-northeast1 " == *" $REGION "* ]] || grant_on subnetwork "${REGION}/fast-render-vms" "serviceAccount:fast-render-functions@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'attach a render VM to the render subnet'; }
wanted status && grant_on bucket "${PROJECT}-staging" "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectViewer 'heartbeats and progress'
wanted status && grant_on bucket "${PROJECT}-output" "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectViewer 'GET /status/<job>/video'
wanted status && grant_on topic render-primary "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'retry and launch hand the job on; cancel announces it'
wanted status && grant_on topic render-fallback "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'retry and launch hand the job on; cancel announces it'
wanted status && grant_on topic render-failed "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'retry and launch hand the job on; cancel announces it'
wanted status && grant_on topic render-completed "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/pubsub.publisher 'retry and launch hand the job on; cancel announces it'
wanted status && grant_on service-account "fast-render-render@${PROJECT}.iam.gserviceaccount.com" "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/iam.serviceAccountUser 'launch runs a VM as the render account'
wanted status && grant_on subnetwork us-central1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork us-east1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork us-east4/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork us-east5/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork us-west1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork europe-west4/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork asia-east1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork asia-southeast1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && grant_on subnetwork asia-northeast1/fast-render-vms "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'
wanted status && { [[ " us-central1 us-east1 us-east4 us-east5 us-west1 europe-west4 asia-east1 asia-southeast1 asia-northeast1 " == *" $REGION "* ]] || grant_on subnetwork "${REGION}/fast-render-vms" "serviceAccount:fast-render-status@${PROJECT}.iam.gserviceaccount.com" roles/compute.networkUser 'launch attaches the VM to the render subnet'; }
wanted render && grant_on bucket "${PROJECT}-staging" "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectUser 'download assets, write segments and its heartbeat (overwritten in place)'
wanted render && grant_on bucket "${PROJECT}-output" "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectCreator 'upload video.mp4 and render.json, create-only'
wanted render && grant_on bucket "${PROJECT}-output" "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" roles/storage.objectViewer 'tell a lost race (the object exists) from a refusal'
wanted render && grant_on repository render "serviceAccount:fast-render-render@${PROJECT}.iam.gserviceaccount.com" roles/artifactregistry.reader 'pull the worker image'
wanted push && grant_on function intake-message "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function intake-upload "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function primary "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function vertex-events "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function fallback-launcher "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function output-finalize "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function watchdog "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'
wanted push && grant_on function dead-letters "serviceAccount:fast-render-push@${PROJECT}.iam.gserviceaccount.com" roles/run.invoker 'the push subscriptions'"'"' OIDC token must be allowed to call the event functions'

# ---------------------------------------------------------------- people (--operator, --viewer)
wanted && for member in "${OPERATORS[@]}"; do
    grant_project "$member" roles/logging.viewer None 'avmonitor logs'
    grant_on service-account "fast-render-status@${PROJECT}.iam.gserviceaccount.com" "$member" roles/iam.serviceAccountTokenCreator 'run avmonitor as the status account (application-default login with --impersonate-service-account): the dashboard'"'"'s access, declared once, not copied to each person'
    grant_on function status "$member" roles/run.invoker 'operators: May read /status and use its controls (listed in STATUS_OPERATORS) and read the product'"'"'s logs.'
done
wanted && for member in "${VIEWERS[@]}"; do
    grant_on function status "$member" roles/run.invoker 'viewers: May read /status (the dashboard, read only).'
done

# ---------------------------------------------------------------- Google's service agents
if wanted; then
    PROJECT_NUMBER="$(gcloud projects describe "$PROJECT" --format='value(projectNumber)')"
    if agent pubsub; then
        grant_on topic dead-letters "$AGENT" roles/pubsub.publisher 'move a message that failed 5 times to dead-letters'
        grant_on subscription intake-message-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription intake-upload-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription primary-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription vertex-events-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription fallback-launcher-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription output-finalize-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription watchdog-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on subscription dead-letters-trigger "$AGENT" roles/pubsub.subscriber 'acknowledge the message it dead-lettered on the source subscription'
        grant_on service-account "fast-render-push@${PROJECT}.iam.gserviceaccount.com" "$AGENT" roles/iam.serviceAccountTokenCreator 'mint the push subscriptions'"'"' OIDC tokens (needed in projects made before April 2021)'
    fi
    if agent storage; then
        grant_on topic staging-events "$AGENT" roles/pubsub.publisher 'publish OBJECT_FINALIZE notifications of the two buckets'
        grant_on topic output-events "$AGENT" roles/pubsub.publisher 'publish OBJECT_FINALIZE notifications of the two buckets'
    fi
    if agent log_sink; then
        grant_on topic vertex-events "$AGENT" roles/pubsub.publisher 'route Vertex AI job-state log entries to vertex-events'
    fi
fi

if ((${#ROLES[@]})); then  # google_project_iam_custom_role has no create_ignore_already_exists: apply would stop on a 409
    say "if Terraform did not make these custom roles, put them in its state before the first terraform apply (it cannot adopt them):"
    for role in "${ROLES[@]}"; do
        say "  terraform -chdir=infra/terraform import google_project_iam_custom_role.${role% *} projects/$PROJECT/roles/${role#* }"
    done
fi
say "done: $granted grants in place, $skipped skipped"
if ((skipped)); then
    say "the skipped ones are on resources Terraform makes (terraform -chdir=infra/terraform apply): run this again after"
fi
