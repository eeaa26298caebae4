"""Writes scripts/setup_vm_permissions.sh, Fast Render's IAM with gcloud, from infra/iam.yaml.

The design note's one-time step for a project without Terraform. The script is
generated (not written by hand) so that it grants exactly what Terraform does:
both come from infra/iam.yaml, and a test fails when the committed script is
stale.

    python -m infra.iamscript           # write scripts/setup_vm_permissions.sh
    python -m infra.iamscript --check   # exit 1 if it differs from what iam.yaml gives

The script creates the service accounts and custom roles, makes the project
grants (the VM roles with the render-vms condition) and the grants on buckets,
topics, subscriptions, service accounts, each region's render subnet, the
Artifact Registry repository and the functions where those exist; a resource
not made yet is skipped with a line saying so (run it again after ``terraform
apply``). Terraform adopts the accounts it made, not its custom roles: it
prints the ``terraform import`` of each.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.local.topology import Topology, load_topology
from infra.tf_iam import camel_snake
from infra.tf_network import SUBNET_NAME, catalog_regions

REPO = Path(__file__).resolve().parent.parent
IAM_FILE = REPO / "infra" / "iam.yaml"
SCRIPT = REPO / "scripts" / "setup_vm_permissions.sh"

# Names the deployment gives resources that iam.yaml grants on but does not
# name (infra/terraform declares them; tests/infra/test_setup_script.py checks
# they agree when the Terraform is there).
SUBNETWORK = SUBNET_NAME  # one per region: infra/tf_network.py
REPOSITORY = "render"
LOG_SINK = "fast-render-vertex-events"
DEFAULT_REGION = "us-central1"
# How a custom role the script made gets into Terraform's state (the provider cannot adopt one).
IMPORT = "terraform -chdir=infra/terraform import google_project_iam_custom_role.{name} projects/{project}/roles/{role}"
# The APIs the script's own calls need: IAM (accounts, roles), Resource Manager
# (project policy), Compute Engine (the subnet's policy; its permissions in the roles).
APIS = ("iam.googleapis.com", "cloudresourcemanager.googleapis.com", "compute.googleapis.com")

GRANT_KEYS = {"project", "buckets", "topics", "service_accounts", "subnetwork", "artifact_registry", "functions"}
ACCOUNT_KEYS = {"account_id", "display_name", "why"} | GRANT_KEYS


class IamError(ValueError):
    """iam.yaml holds something this generator does not know how to grant."""


class Raw(str):
    """A bash word written as is (a variable the script sets, like ``"$member"``)."""


MEMBER = Raw('"$member"')  # the loop variable over --operator / --viewer
AGENT = Raw('"$AGENT"')  # a service agent's member, set by the script's agent()


def bash_word(text: str) -> str:
    """``text`` as one bash word; ``${PROJECT}`` / ``${REGION}`` in it are expanded by the script."""
    if isinstance(text, Raw):
        return text
    if "${" not in text:
        return shlex.quote(text)
    rest = text.replace("${PROJECT}", "").replace("${REGION}", "")
    if any(c in rest for c in '"\\`$'):
        raise IamError(f"cannot quote {text!r} for bash")
    return f'"{text}"'


def line(*words: str, why: str = "") -> str:
    return " ".join(bash_word(w) for w in words) + (f" {shlex.quote(why)}" if why else "")


class Generator:
    def __init__(self, iam: dict[str, Any], topology: Topology, regions: list[str]) -> None:
        self.iam = iam
        self.topology = topology
        self.regions = regions  # the bundled catalog's, each with a render subnet (infra/tf_network.py)
        self.prefix = str(iam["vm_name_prefix"])
        self.accounts: dict[str, dict[str, Any]] = iam["service_accounts"]

    # ------------------------------------------------------------------ names

    def email(self, key: str) -> str:
        if key not in self.accounts:
            raise IamError(f"service account {key!r} is not declared in service_accounts")
        return f"{self.accounts[key]['account_id']}@${{PROJECT}}.iam.gserviceaccount.com"

    @staticmethod
    def role(name: str) -> str:
        return f"projects/${{PROJECT}}/roles/{name[len('custom:'):]}" if name.startswith("custom:") else name

    def substitute(self, text: str) -> str:
        return (str(text).replace("${prefix}", self.prefix).replace("${project}", "${PROJECT}")
                .replace("${staging}", self.topology.buckets["staging"]).replace("${output}", self.topology.buckets["output"]))

    # ------------------------------------------------------------------ sections

    def service_accounts(self) -> list[str]:
        out = []
        for key, account in self.accounts.items():
            unknown = set(account) - ACCOUNT_KEYS
            if unknown:
                raise IamError(f"service_accounts.{key}: unknown keys {sorted(unknown)}")
            out.append(f"wanted {key} && " + line("ensure_service_account", str(account["account_id"]), str(account["display_name"])))
        return out

    def custom_roles(self) -> list[str]:
        out = []
        for name, role in self.iam.get("custom_roles", {}).items():
            description = " ".join(str(role["why"]).split())
            if len(description) > 256:  # the API's limit
                description = description[:253] + "..."
            users = [key for key, account in self.accounts.items()
                     if any(g["role"] == f"custom:{name}" for g in account.get("project", []))]
            out.append(f"wanted {' '.join(users) or '-'} && "
                       + line("ensure_role", name, str(role["title"]), description, ",".join(role["permissions"]), camel_snake(name)))
        return out

    def condition(self, name: str) -> str:
        condition = self.iam["conditions"][name]
        parts = {"expression": " ".join(self.substitute(condition["expression"]).split()),
                 "title": str(condition["title"]), "description": str(condition.get("description", ""))}
        for key, value in parts.items():
            if "," in value:  # gcloud's --condition=KEY=VALUE,... splits on commas
                raise IamError(f"conditions.{name}.{key} has a comma, which gcloud's --condition cannot carry")
        return ",".join(f"{k}={v}" for k, v in parts.items() if v)

    def account_grants(self) -> tuple[list[str], list[str]]:
        """(project grants, resource grants) of every service account."""
        project, resources = [], []
        for key, account in self.accounts.items():
            member = f"serviceAccount:{self.email(key)}"
            for g in account.get("project", []):
                condition = self.condition(g["condition"]) if g.get("condition") else "None"
                project.append(f"wanted {key} && " + line("grant_project", member, self.role(g["role"]), condition, why=g["why"]))
            for g in account.get("buckets", []):
                resources.append(f"wanted {key} && " + line("grant_on", "bucket", self.topology.buckets[g["bucket"]], member, g["role"], why=g["why"]))
            for g in account.get("topics", []):
                for topic in g["topics"]:
                    resources.append(f"wanted {key} && " + line("grant_on", "topic", topic, member, g["role"], why=g["why"]))
            for g in account.get("service_accounts", []):
                resources.append(f"wanted {key} && " + line("grant_on", "service-account", self.email(g["account"]), member, g["role"], why=g["why"]))
            for g in account.get("subnetwork", []):  # on each region's subnet, as Terraform does
                for region in self.regions:
                    resources.append(f"wanted {key} && " + line("grant_on", "subnetwork", f"{region}/{SUBNETWORK}", member, g["role"], why=g["why"]))
                # --region's own subnet, which Terraform makes when the catalog has no zone there
                resources.append(f"wanted {key} && {{ [[ \" {' '.join(self.regions)} \" == *\" $REGION \"* ]] || "
                                 + line("grant_on", "subnetwork", f"${{REGION}}/{SUBNETWORK}", member, g["role"], why=g["why"]) + "; }")
            for g in account.get("artifact_registry", []):
                resources.append(f"wanted {key} && " + line("grant_on", "repository", REPOSITORY, member, g["role"], why=g["why"]))
            for g in account.get("functions", []):  # the event functions (Pub/Sub pushes to them)
                for function in self.topology.functions:
                    resources.append(f"wanted {key} && " + line("grant_on", "function", function.name, member, g["role"], why=g["why"]))
        return project, resources

    def members(self) -> list[str]:
        """Loops over the --operator / --viewer members given on the command line."""
        out = []
        status = [f.name for f in self.topology.http_functions if f.name == "status"]
        for group, spec in self.iam.get("members", {}).items():
            array = {"operators": "OPERATORS", "viewers": "VIEWERS"}.get(group)
            if array is None:
                raise IamError(f"members.{group}: the script has no flag for it (--operator, --viewer)")
            unknown = set(spec) - {"why", "project", "status_function", "service_accounts"}
            if unknown:
                raise IamError(f"members.{group}: unknown keys {sorted(unknown)}")
            body = []
            for g in spec.get("project", []):
                body.append("    " + line("grant_project", MEMBER, g["role"], "None", why=g["why"]))
            for g in spec.get("service_accounts", []):
                body.append("    " + line("grant_on", "service-account", self.email(g["account"]), MEMBER, g["role"], why=g["why"]))
            if "status_function" in spec:
                for name in status:
                    why = f"{group}: {' '.join(str(spec['why']).split())}"
                    body.append("    " + line("grant_on", "function", name, MEMBER, spec["status_function"]["role"], why=why))
            out += [f'wanted && for member in "${{{array}[@]}}"; do', *body, "done"]
        return out

    def agent_targets(self, agent: str, grant: dict[Any, Any]) -> list[tuple[str, str]]:
        """The (kind, name) resources a service agent's grant is on (its ``target``)."""
        if "target" not in grant or set(grant) - {"target", "role", "why"}:
            raise IamError(f"service_agents.{agent}: each grant has target, role and why (got {sorted(map(str, grant))})")
        target = str(grant["target"])
        if target == "dead_letter_topic":
            return [("topic", self.topology.push_delivery.dead_letter_topic)]
        if target == "push_subscriptions":
            return [("subscription", f.push_subscription) for f in self.topology.functions]
        if target == "notification_topics":
            return [("topic", topic) for topic in dict.fromkeys(n.topic for n in self.topology.notifications)]
        kind, _, name = target.partition(":")
        if kind == "topic" and name:
            return [("topic", name)]
        if kind == "service_account" and name:
            return [("service-account", self.email(name))]
        raise IamError(f"service_agents.{agent}: unknown target {target!r}")

    def service_agents(self) -> list[str]:
        out = ["if wanted; then",
               '    PROJECT_NUMBER="$(gcloud projects describe "$PROJECT" --format=\'value(projectNumber)\')"']
        for agent, grants in self.iam.get("service_agents", {}).items():
            if agent not in ("pubsub", "storage", "log_sink"):
                raise IamError(f"service_agents.{agent}: the script cannot find that agent's identity")
            out.append(f"    if agent {agent}; then")
            for g in grants:
                for kind, name in self.agent_targets(agent, g):
                    out.append("        " + line("grant_on", kind, name, AGENT, g["role"], why=g["why"]))
            out.append("    fi")
        out.append("fi")
        return out

    def script(self) -> str:
        known = {"vm_name_prefix", "vm_network_tag", "custom_roles", "conditions", "service_accounts", "members",
                 "service_agents"}
        if set(self.iam) - known:
            raise IamError(f"unknown top-level keys {sorted(set(self.iam) - known)}")
        project, resources = self.account_grants()
        body = [
            "# ---------------------------------------------------------------- APIs",
            line("enable_apis", *APIS),
            "", "# ---------------------------------------------------------------- service accounts",
            *self.service_accounts(),
            "", "# ---------------------------------------------------------------- custom roles",
            *self.custom_roles(),
            "", "# ---------------------------------------------------------------- project grants",
            *project,
            "", "# ---------------------------------------------------------------- grants on resources",
            *resources,
            "", "# ---------------------------------------------------------------- people (--operator, --viewer)",
            *self.members(),
            "", "# ---------------------------------------------------------------- Google's service agents",
            *self.service_agents(),
        ]
        imports = "\n".join(f"#   {IMPORT.format(name=camel_snake(name), project='PROJECT', role=name)}"
                            for name in self.iam.get("custom_roles", {}))
        return HEADER.replace("@ACCOUNTS@", " ".join(self.accounts)).replace("@IMPORTS@", imports).replace("@DEFAULT_REGION@", DEFAULT_REGION).replace("@SUBNETWORK@", SUBNETWORK) \
            .replace("@REPOSITORY@", REPOSITORY).replace("@LOG_SINK@", LOG_SINK) + "\n".join(body) + "\n" + FOOTER


HEADER = r'''#!/usr/bin/env bash
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
# --only ACCOUNT (one of: @ACCOUNTS@): that service account, its custom roles
# and its grants, nothing else; `--only build` makes the account cloudbuild.yaml
# runs as, before the first build (Terraform then keeps the rest).
# Safe to run again: what exists is kept (roles are updated to iam.yaml's
# permissions), and adding a binding that is there changes nothing. A grant on
# a resource not made yet (Terraform makes the buckets, topics, subnets,
# repository, functions) is skipped with a line saying so: run it again after.
# A terraform apply afterwards adopts the service accounts made here
# (create_ignore_already_exists) but cannot adopt the custom roles: import
# each into Terraform's state first (the script prints the commands):
@IMPORTS@
set -euo pipefail

USAGE="usage: setup_vm_permissions.sh PROJECT [--region REGION] [--operator MEMBER]... [--viewer MEMBER]... [--only ACCOUNT]..."
ACCOUNTS=(@ACCOUNTS@)
PROJECT=""
REGION="@DEFAULT_REGION@"
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
            AGENT="$(gcloud logging sinks describe @LOG_SINK@ --project="$PROJECT" --format='value(writerIdentity)' 2>/dev/null)" ;;
    esac
    if [[ -z "$AGENT" ]]; then
        say "skipped the $1 service agent's grants: its identity cannot be read yet (run this again after terraform apply)"
        skipped=$((skipped + 1))
        return 1
    fi
}

say "project $PROJECT, region $REGION${ONLY[*]:+, only: ${ONLY[*]}}"

'''

FOOTER = r'''
if ((${#ROLES[@]})); then  # google_project_iam_custom_role has no create_ignore_already_exists: apply would stop on a 409
    say "if Terraform did not make these custom roles, put them in its state before the first terraform apply (it cannot adopt them):"
    for role in "${ROLES[@]}"; do
        say "  @IMPORT@"
    done
fi
say "done: $granted grants in place, $skipped skipped"
if ((skipped)); then
    say "the skipped ones are on resources Terraform makes (terraform -chdir=infra/terraform apply): run this again after"
fi
'''.replace("@IMPORT@", IMPORT.format(name="${role% *}", project="$PROJECT", role="${role#* }"))


def generate(iam_file: Path = IAM_FILE) -> str:
    iam = yaml.safe_load(iam_file.read_text())
    return Generator(iam, load_topology("${PROJECT}"), catalog_regions()).script()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.iamscript", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed script is stale")
    args = parser.parse_args(argv)
    try:
        text = generate()
    except (IamError, KeyError) as err:
        print(f"infra/iam.yaml: {err}", file=sys.stderr)
        return 1
    if args.check:
        if not SCRIPT.exists() or SCRIPT.read_text() != text:
            print(f"{SCRIPT.relative_to(REPO)} is stale: run python -m infra.iamscript", file=sys.stderr)
            return 1
        print(f"{SCRIPT.relative_to(REPO)} is current")
        return 0
    SCRIPT.parent.mkdir(exist_ok=True)
    SCRIPT.write_text(text)
    SCRIPT.chmod(0o755)
    print(f"wrote {SCRIPT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
