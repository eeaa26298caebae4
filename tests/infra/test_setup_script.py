"""scripts/setup_vm_permissions.sh: current with infra/iam.yaml, every grant in it, idempotent, clear usage.

The script is run against a stand-in ``gcloud`` (a shell stub on PATH) that logs
each call's arguments and answers like gcloud would: service accounts and
custom roles exist once created (kept in a state folder, so a second run sees
the first run's work), other resources exist unless named in ``FAKE_ABSENT``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from catalog.model import DEFAULT_CATALOG_PATH, load_catalog, region_of
from infra import iamscript
from infra.local.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "setup_vm_permissions.sh"
PROJECT = "fr-test-project"
NUMBER = "123456789012"
# Terraform makes a render subnet in each region of the bundled catalog's zones (and in --region's when it is none of them).
CATALOG_REGIONS = {region_of(zone) for gpu in load_catalog(DEFAULT_CATALOG_PATH, environ={}).gpus.values()
                   for zone in gpu.zones}

FAKE_GCLOUD = textwrap.dedent(r"""
    #!/usr/bin/env bash
    # A stand-in for gcloud: logs its arguments (one call a line, fields split by \x1f) and answers.
    { printf '%s\x1f' "$@"; printf '\n'; } >>"$FAKE_LOG"
    args=" $* "
    project=""
    for a in "$@"; do [[ "$a" == --project=* ]] && project="${a#--project=}"; done
    case "$args" in
        " projects describe "*) echo "$FAKE_NUMBER" ;;
        " storage service-agent "*) echo "service-$FAKE_NUMBER@gs-project-accounts.iam.gserviceaccount.com" ;;
        " logging sinks describe "*)
            [[ -n "$FAKE_ABSENT" && "$args" =~ $FAKE_ABSENT ]] && exit 1
            echo "serviceAccount:service-$FAKE_NUMBER@gcp-sa-logging.iam.gserviceaccount.com" ;;
        " iam service-accounts create "*) touch "$FAKE_STATE/sa-$4@$project.iam.gserviceaccount.com" ;;
        " iam service-accounts describe "*) [[ -e "$FAKE_STATE/sa-$4" ]] || { echo "NOT_FOUND: $4" >&2; exit 1; } ;;
        " iam roles create "*) touch "$FAKE_STATE/role-$4" ;;
        " iam roles describe "*) [[ -e "$FAKE_STATE/role-$4" ]] || { echo "NOT_FOUND: $4" >&2; exit 1; }; echo "" ;;
        *" describe "*) [[ -n "$FAKE_ABSENT" && "$args" =~ $FAKE_ABSENT ]] && { echo "NOT_FOUND" >&2; exit 1; } ;;
        *" add-iam-policy-binding "*) echo "bindings: [...]" ;;  # gcloud prints the whole policy
    esac
    exit 0
""").lstrip()


def run_script(tmp_path: Path, *args: str, absent: str = "", state: Path | None = None) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run the script with the stub gcloud; returns the process and the gcloud calls it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "gcloud"
    stub.write_text(FAKE_GCLOUD)
    stub.chmod(0o755)
    state = state or tmp_path / "state"
    state.mkdir(exist_ok=True)
    log = tmp_path / f"calls-{len(list(tmp_path.glob('calls-*')))}.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "FAKE_STATE": str(state),
           "FAKE_NUMBER": NUMBER, "FAKE_ABSENT": absent}
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    calls = [line.rstrip("\n").split("\x1f")[:-1] for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def bindings(calls: list[list[str]]) -> set[tuple[str, ...]]:
    """Each add-iam-policy-binding call as (resource kind..., resource, member, role, condition); a subnet is REGION/NAME."""
    found = set()
    for call in calls:
        if "add-iam-policy-binding" not in call:
            continue
        at = call.index("add-iam-policy-binding")
        flags = dict(a[2:].split("=", 1) for a in call if a.startswith("--") and "=" in a)
        kind, name = " ".join(call[:at]), call[at + 1]
        if kind == "compute networks subnets":
            name = f"{flags['region']}/{name}"
        found.add((kind, name, flags["member"], flags["role"], flags.get("condition", "")))
    return found


def expected_bindings(operators: list[str], viewers: list[str], region: str = "us-central1") -> set[tuple[str, ...]]:
    """What infra/iam.yaml grants, read here on its own (not through the generator), for --region ``region``."""
    iam = yaml.safe_load(iamscript.IAM_FILE.read_text())
    topology = load_topology(PROJECT)
    accounts = iam["service_accounts"]

    def sa(key: str) -> str:
        return f"{accounts[key]['account_id']}@{PROJECT}.iam.gserviceaccount.com"

    def role(name: str) -> str:
        return f"projects/{PROJECT}/roles/{name[7:]}" if name.startswith("custom:") else name

    def condition(name: str | None) -> str:
        if not name:
            return "None"
        c = iam["conditions"][name]
        expression = " ".join(c["expression"].replace("${prefix}", iam["vm_name_prefix"]).split())
        return f"expression={expression},title={c['title']},description={c['description']}"

    want = set()
    for key, account in accounts.items():
        member = f"serviceAccount:{sa(key)}"
        for g in account.get("project", []):
            want.add(("projects", PROJECT, member, role(g["role"]), condition(g.get("condition"))))
        for g in account.get("buckets", []):
            want.add(("storage buckets", f"gs://{topology.buckets[g['bucket']]}", member, g["role"], ""))
        for g in account.get("topics", []):
            want |= {("pubsub topics", t, member, g["role"], "") for t in g["topics"]}
        for g in account.get("service_accounts", []):
            want.add(("iam service-accounts", sa(g["account"]), member, g["role"], ""))
        for g in account.get("subnetwork", []):  # each region's subnet: a VM attaches to its own zone's region's
            want |= {("compute networks subnets", f"{r}/fast-render-vms", member, g["role"], "")
                     for r in CATALOG_REGIONS | {region}}
        for g in account.get("artifact_registry", []):
            want.add(("artifacts repositories", iamscript.REPOSITORY, member, g["role"], ""))
        for g in account.get("functions", []):
            want |= {("run services", f.name, member, g["role"], "") for f in topology.functions}
    for group, people in (("operators", operators), ("viewers", viewers)):
        spec = iam["members"][group]
        for person in people:
            want |= {("projects", PROJECT, person, g["role"], "None") for g in spec.get("project", [])}
            want |= {("iam service-accounts", sa(g["account"]), person, g["role"], "") for g in spec.get("service_accounts", [])}
            want.add(("run services", "status", person, spec["status_function"]["role"], ""))
    agents = {"pubsub": f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com",
              "storage": f"serviceAccount:service-{NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
              "log_sink": f"serviceAccount:service-{NUMBER}@gcp-sa-logging.iam.gserviceaccount.com"}
    for agent, grants in iam["service_agents"].items():
        for g in grants:
            on = g["target"]
            targets = {
                "dead_letter_topic": [("pubsub topics", topology.push_delivery.dead_letter_topic)],
                "push_subscriptions": [("pubsub subscriptions", f.push_subscription) for f in topology.functions],
                "notification_topics": [("pubsub topics", n.topic) for n in topology.notifications],
            }.get(on) or ([("pubsub topics", on[6:])] if on.startswith("topic:") else [("iam service-accounts", sa(on[16:]))])
            want |= {(kind, name, agents[agent], g["role"], "") for kind, name in targets}
    return want


def test_the_committed_script_is_current_with_iam_yaml():
    assert SCRIPT.exists(), "scripts/setup_vm_permissions.sh is missing: run python -m infra.iamscript"
    assert SCRIPT.read_text() == iamscript.generate(), "stale: run python -m infra.iamscript"
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run([".venv/bin/python", "-m", "infra.iamscript", "--check"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, check=False).returncode == 0


def test_every_grant_of_iam_yaml_has_its_line_in_the_script():
    """Each role of iam.yaml for each account is granted by a line of the script (read statically)."""
    iam = yaml.safe_load(iamscript.IAM_FILE.read_text())
    lines = [shlex.split(line) for line in SCRIPT.read_text().splitlines()
             if re.match(r"\s*(wanted [a-z -]+ && )?grant_(project|on) ", line)]
    for key, account in iam["service_accounts"].items():
        member = f"serviceAccount:{account['account_id']}@${{PROJECT}}.iam.gserviceaccount.com"
        for section in iamscript.GRANT_KEYS:
            for g in account.get(section, []):
                role = iamscript.Generator.role(g["role"])
                assert any(member in words and role in words and g["why"] in words for words in lines), (key, section, g)


@pytest.mark.parametrize("region", ["europe-west4", "europe-west1"])  # a region of the catalog, and one it has no zone in
def test_running_it_makes_exactly_the_grants_of_iam_yaml(tmp_path, region):
    operators, viewers = ["user:ops@example.com"], ["group:watchers@example.com", "user:v@example.com"]
    args = [PROJECT, "--region", region]
    args += [a for m in operators for a in ("--operator", m)] + [a for m in viewers for a in ("--viewer", m)]
    proc, calls = run_script(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    assert bindings(calls) == expected_bindings(operators, viewers, region)
    assert ["services", "enable", *iamscript.APIS, f"--project={PROJECT}", "--quiet"] in calls
    regional = [c for c in calls if c[0] in ("run", "artifacts")]
    assert regional and all(f"--region={region}" in c or f"--location={region}" in c for c in regional)
    subnets = [c for c in calls if c[:3] == ["compute", "networks", "subnets"] and "add-iam-policy-binding" in c]
    per_region = len(CATALOG_REGIONS | {region})
    assert len(subnets) == per_region * sum(len(a.get("subnetwork", [])) for a in yaml.safe_load(
        iamscript.IAM_FILE.read_text())["service_accounts"].values()), "one grant per subnet and role, none twice"
    assert "skipped" in proc.stdout.splitlines()[-1] and ", 0 skipped" in proc.stdout


def test_it_prints_how_to_import_the_custom_roles_it_made_before_terraform_apply(tmp_path):
    """Terraform adopts the service accounts the script made, not its custom roles: the user is told the import."""
    proc, _ = run_script(tmp_path, PROJECT)
    assert proc.returncode == 0, proc.stderr
    roles = yaml.safe_load(iamscript.IAM_FILE.read_text())["custom_roles"]
    for role_id in roles:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", role_id).lower()
        assert (f"setup:   terraform -chdir=infra/terraform import google_project_iam_custom_role.{name} "
                f"projects/{PROJECT}/roles/{role_id}") in proc.stdout.splitlines()
    only_build, _ = run_script(tmp_path, PROJECT, "--only", "build")
    assert "terraform import" not in only_build.stdout, "the build account has no custom role: nothing to import"


def test_a_second_run_makes_the_same_grants_and_creates_nothing(tmp_path):
    state = tmp_path / "state"
    first, first_calls = run_script(tmp_path, PROJECT, state=state)
    second, second_calls = run_script(tmp_path, PROJECT, state=state)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert bindings(first_calls) == bindings(second_calls) and bindings(first_calls)
    created = [c for c in first_calls if c[2:3] == ["create"]]
    iam = yaml.safe_load(iamscript.IAM_FILE.read_text())
    assert len(created) == len(iam["service_accounts"]) + len(iam["custom_roles"])
    assert not [c for c in second_calls if "create" in c[:3]], "a second run created something again"
    assert "service account fast-render-render@" in second.stdout and ": exists" in second.stdout
    assert [c for c in second_calls if c[:3] == ["iam", "roles", "update"]], "roles are brought up to iam.yaml's permissions"


def test_grants_on_resources_not_made_yet_are_skipped_with_a_line(tmp_path):
    proc, calls = run_script(tmp_path, PROJECT, absent="buckets describe|sinks describe|subnets describe fast-render-vms --region=asia-east1 ")
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if c[:2] == ["storage", "buckets"] and "add-iam-policy-binding" in c]
    assert f"skipped roles/storage.objectCreator to serviceAccount:fast-render-render@{PROJECT}.iam.gserviceaccount.com " \
           f"on bucket {PROJECT}-output: not there yet" in proc.stdout
    # one region's subnet missing skips the grants on it only
    assert f"skipped roles/compute.networkUser to serviceAccount:fast-render-functions@{PROJECT}.iam.gserviceaccount.com " \
           "on subnetwork asia-east1/fast-render-vms: not there yet" in proc.stdout
    subnets = {b[1] for b in bindings(calls) if b[0] == "compute networks subnets"}
    assert subnets == {f"{r}/fast-render-vms" for r in CATALOG_REGIONS - {"asia-east1"}}
    assert "skipped the log_sink service agent's grants" in proc.stdout
    assert "run this again after" in proc.stdout.splitlines()[-1]


def test_only_the_build_account_before_the_first_cloud_build(tmp_path):
    """--only build: the account cloudbuild.yaml runs as and its grants; no other account, role or agent."""
    proc, calls = run_script(tmp_path, PROJECT, "--only", "build", "--operator", "user:ops@example.com")
    assert proc.returncode == 0, proc.stderr
    build = f"serviceAccount:fast-render-build@{PROJECT}.iam.gserviceaccount.com"
    want = {b for b in expected_bindings([], []) if b[2] == build}
    assert want and bindings(calls) == want
    assert [c[:4] for c in calls if c[2:3] == ["create"]] == [["iam", "service-accounts", "create", "fast-render-build"]]
    assert not [c for c in calls if c[:2] == ["iam", "roles"] or c[:2] == ["projects", "describe"]]
    assert "only: build" in proc.stdout.splitlines()[0]


@pytest.mark.parametrize("args, message", [
    ([], "usage: setup_vm_permissions.sh PROJECT"),
    ([PROJECT, "--operator", "ops@example.com"], "--operator needs an IAM member like user:alice@example.com (got 'ops@example.com')"),
    ([PROJECT, "--zone", "x"], "unknown option --zone"),
    (["Not_A_Project"], "PROJECT 'Not_A_Project' is not a project id"),
    ([PROJECT, "--only", "builds"], "--only needs one of: "
     + " ".join(yaml.safe_load(iamscript.IAM_FILE.read_text())["service_accounts"]) + " (got 'builds')"),
])
def test_bad_arguments_give_one_line_and_no_gcloud_call(tmp_path, args, message):
    proc, calls = run_script(tmp_path, *args)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1 and message in proc.stderr
    assert calls == []


def test_its_resource_names_are_the_terraform_ones():
    """The subnet, repository and sink the script grants on are the ones infra/terraform declares."""
    tf = "\n".join(p.read_text() for p in sorted((REPO / "infra" / "terraform").glob("*.tf")))
    pairs = {"google_compute_subnetwork": iamscript.SUBNETWORK, "google_artifact_registry_repository": iamscript.REPOSITORY,
             "google_logging_project_sink": iamscript.LOG_SINK}
    declared = {kind: name for kind, name in pairs.items() if re.search(rf'resource "{kind}"', tf)}
    if not declared:
        pytest.skip("infra/terraform declares none of them yet")
    for kind, name in declared.items():
        assert re.search(rf'(name|repository_id)\s*=\s*"{re.escape(name)}"', tf), f"{kind} {name} is not in infra/terraform"


@pytest.mark.parametrize("where", ["members.viewers", "service_accounts.render", "top"])
def test_a_grant_kind_the_generator_does_not_know_is_an_error_not_dropped(tmp_path, where):
    iam = yaml.safe_load(iamscript.IAM_FILE.read_text())
    target = iam if where == "top" else iam[where.split(".")[0]][where.split(".")[1]]
    target["bigquery_datasets"] = [{"role": "roles/bigquery.dataViewer", "why": "a new kind of grant"}]
    path = tmp_path / "iam.yaml"
    path.write_text(yaml.safe_dump(iam))
    with pytest.raises(iamscript.IamError, match="bigquery_datasets"):
        iamscript.generate(path)


def test_a_service_agent_grant_without_target_is_named_not_read_as_true(tmp_path):
    """The old key `on:` (YAML 1.1's boolean true) gives one line naming the field, not a KeyError or a silent drop."""
    text = iamscript.IAM_FILE.read_text().replace("{target: dead_letter_topic", "{on: dead_letter_topic")
    path = tmp_path / "iam.yaml"
    path.write_text(text)
    with pytest.raises(iamscript.IamError, match=r"service_agents\.pubsub: each grant has target, role and why"):
        iamscript.generate(path)
