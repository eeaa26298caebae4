"""infra/iam.yaml as Terraform resources: one explicit resource per account, role and grant.

No ``for_each`` over the YAML: checkov and tests/infra/test_terraform.py must
see every grant in the file. Only the people (variables ``operators`` and
``viewers``) are a ``for_each``, as they are not known here.

Resource names are derived from what they grant, so a grant keeps its name
(and Terraform its state) when others are added:
``google_project_iam_member.functions_datastore_user``,
``google_storage_bucket_iam_member.render_output_storage_objectcreator``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from infra.local.topology import Topology
from infra.tf_hcl import Attr, Block, Comment, Raw, identifier

IAM_PATH = Path(__file__).resolve().parent / "iam.yaml"

# What iam.yaml's placeholders stand for in Terraform.
PLACEHOLDERS = {
    "project": "${var.project}",
    "staging": "${google_storage_bucket.staging.name}",
    "output": "${google_storage_bucket.output.name}",
    "prefix": "${var.vm_name_prefix}",
}
PUBSUB_AGENT = "serviceAccount:${local.pubsub_service_agent}"
STORAGE_AGENT = "serviceAccount:${local.storage_service_agent}"
PRIMITIVE_ROLES = ("roles/owner", "roles/editor", "roles/viewer")

# The checkov findings a project grant of these roles answers in place, with the reason.
_SKIPS = {
    "roles/iam.serviceAccountUser": [
        ("CKV_GCP_41:the build account deploys functions that run as the product's accounts; it can already set "
         "their IAM as iam.serviceAccountAdmin, so a per-account grant would not be narrower"),
        "CKV_GCP_49:as CKV_GCP_41: the build account must act as every account it deploys",
    ],
    "roles/iam.serviceAccountAdmin": [
        ("CKV_GCP_49:the build account's terraform apply creates the product's service accounts and sets their "
         "IAM (generated_iam_accounts.tf); no narrower predefined role does that"),
    ],
}


def load_iam(path: Path = IAM_PATH) -> dict[str, Any]:
    raw = yaml.safe_load(Path(path).read_text())
    return _substitute(raw)


def _substitute(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], value)
    if isinstance(value, dict):
        return {key: _substitute(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item) for item in value]
    return value


def camel_snake(name: str) -> str:
    """``fastRenderVmLifecycle`` -> ``fast_render_vm_lifecycle``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def role_slug(role: str) -> str:
    """A role as part of a resource name: ``roles/storage.objectUser`` -> ``storage_objectuser``."""
    if role.startswith("custom:"):
        return camel_snake(role[len("custom:"):])
    return identifier(role.removeprefix("roles/"))


def role_ref(role: str) -> Any:
    """A role as Terraform writes it: predefined roles literally, custom ones by reference."""
    if role.startswith("custom:"):
        return Raw(f"google_project_iam_custom_role.{camel_snake(role[len('custom:'):])}.id")
    return role


def account_member(key: str) -> str:
    return f"serviceAccount:${{google_service_account.{key}.email}}"


def _why(text: str) -> Comment:
    return Comment(" ".join(str(text).split()))


def _skips(role: str) -> list[Comment]:
    return [Comment(f"checkov:skip={skip}") for skip in _SKIPS.get(role, [])]


def project_grant_name(account: str, role: str) -> str:
    return f"{account}_{role_slug(role)}"


def storage_agent_grant_name(topic: str) -> str:
    return f"storage_agent_{identifier(topic)}_publisher"


def accounts_blocks(iam: dict[str, Any]) -> list[Block]:
    """Service accounts, custom roles and project-level grants."""
    blocks: list[Block] = []
    for key, account in iam["service_accounts"].items():
        blocks.append(Block("resource", ("google_service_account", key), [
            _why(account["why"]),
            Attr("project", Raw("var.project")),
            Attr("account_id", account["account_id"]),
            Attr("display_name", account["display_name"]),
            Attr("description", " ".join(str(account["why"]).split())[:256]),
            Comment("Made already by scripts/setup_vm_permissions.sh (or a `--only build` run): adopted, not a 409."),
            Attr("create_ignore_already_exists", True),
            Attr("depends_on", [Raw("google_project_service.iam")]),
        ]))
    for role_id, role in iam["custom_roles"].items():
        blocks.append(Block("resource", ("google_project_iam_custom_role", camel_snake(role_id)), [
            _why(role["why"]),
            # The provider has no create_ignore_already_exists for roles, and the script makes them too.
            Comment("Made already by scripts/setup_vm_permissions.sh? Creating it again fails: first terraform import"),
            Comment(f"google_project_iam_custom_role.{camel_snake(role_id)} projects/PROJECT/roles/{role_id}"),
            Attr("project", Raw("var.project")),
            Attr("role_id", role_id),
            Attr("title", role["title"]),
            Attr("description", " ".join(str(role["why"]).split())[:256]),
            Attr("permissions", sorted(role["permissions"])),
            Attr("depends_on", [Raw("google_project_service.iam")]),
        ]))
    conditions = iam.get("conditions", {})
    for key, account in iam["service_accounts"].items():
        for grant in account.get("project", []):
            body: list[Any] = [_why(grant["why"]), *_skips(grant["role"]),
                               Attr("project", Raw("var.project")),
                               Attr("role", role_ref(grant["role"])),
                               Attr("member", account_member(key))]
            if grant.get("condition"):
                condition = conditions[grant["condition"]]
                body.append(Block("condition", (), [
                    Attr("title", condition["title"]),
                    Attr("description", condition["description"]),
                    Attr("expression", " ".join(condition["expression"].split())),
                ]))
            blocks.append(Block("resource", ("google_project_iam_member", project_grant_name(key, grant["role"])), body))
    return blocks


def resource_grant_blocks(iam: dict[str, Any], topology: Topology) -> list[Block]:
    """Grants on one bucket, topic, account or repository, and the push account's invoker grants.

    The ``subnetwork:`` grants are on each region's subnet: infra/tf_network.py.
    """
    blocks: list[Block] = []
    event_functions = [f.name for f in topology.functions]
    for key, account in iam["service_accounts"].items():
        member = account_member(key)
        for grant in account.get("buckets", []):
            blocks.append(Block("resource", ("google_storage_bucket_iam_member",
                                             f"{key}_{grant['bucket']}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("bucket", Raw(f"google_storage_bucket.{grant['bucket']}.name")),
                Attr("role", grant["role"]),
                Attr("member", member),
            ]))
        for grant in account.get("topics", []):
            for topic in grant["topics"]:
                blocks.append(Block("resource", ("google_pubsub_topic_iam_member",
                                                 f"{key}_{identifier(topic)}_{role_slug(grant['role'])}"), [
                    _why(grant["why"]),
                    Attr("project", Raw("var.project")),
                    Attr("topic", Raw(f"google_pubsub_topic.{identifier(topic)}.name")),
                    Attr("role", grant["role"]),
                    Attr("member", member),
                ]))
        for grant in account.get("service_accounts", []):
            blocks.append(Block("resource", ("google_service_account_iam_member",
                                             f"{key}_on_{grant['account']}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("service_account_id", Raw(f"google_service_account.{grant['account']}.name")),
                Attr("role", grant["role"]),
                Attr("member", member),
            ]))
        for grant in account.get("artifact_registry", []):
            blocks.append(Block("resource", ("google_artifact_registry_repository_iam_member",
                                             f"{key}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("project", Raw("var.project")),
                Attr("location", Raw("google_artifact_registry_repository.render.location")),
                Attr("repository", Raw("google_artifact_registry_repository.render.name")),
                Attr("role", grant["role"]),
                Attr("member", member),
            ]))
        for grant in account.get("functions", []):
            for function in event_functions:
                blocks.append(_run_invoker(f"{key}_{identifier(function)}_{role_slug(grant['role'])}", function,
                                           grant["role"], member, grant["why"]))
    return blocks


def _run_invoker(name: str, function: str, role: str, member: Any, why: str, for_each: str | None = None) -> Block:
    """A role on a gen2 function's Cloud Run service: where the invoker check happens."""
    body: list[Any] = [_why(why)]
    if for_each:
        body.append(Attr("for_each", Raw(f"toset({for_each})")))
    body += [
        Attr("project", Raw("var.project")),
        Attr("location", Raw(f"google_cloudfunctions2_function.{identifier(function)}.location")),
        Attr("service", Raw(f"google_cloudfunctions2_function.{identifier(function)}.service_config[0].service")),
        Attr("role", role),
        Attr("member", member),
    ]
    return Block("resource", ("google_cloud_run_service_iam_member", name), body)


def members_blocks(iam: dict[str, Any], topology: Topology) -> list[Block]:
    """The people: variables operators and viewers (lists of "user:..." / "group:...")."""
    blocks: list[Block] = []
    for group, spec in iam.get("members", {}).items():
        if spec.get("status_function"):
            role = spec["status_function"]["role"]
            for function in topology.http_functions:
                blocks.append(_run_invoker(f"{group}_{identifier(function.name)}_{role_slug(role)}", function.name,
                                           role, Raw("each.value"), spec["why"], for_each=f"var.{group}"))
        for grant in spec.get("project", []):
            blocks.append(Block("resource", ("google_project_iam_member", f"{group}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("for_each", Raw(f"toset(var.{group})")),
                Attr("project", Raw("var.project")),
                Attr("role", grant["role"]),
                Attr("member", Raw("each.value")),
            ]))
        for grant in spec.get("service_accounts", []):
            blocks.append(Block("resource", ("google_service_account_iam_member",
                                             f"{group}_on_{grant['account']}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("for_each", Raw(f"toset(var.{group})")),
                Attr("service_account_id", Raw(f"google_service_account.{grant['account']}.name")),
                Attr("role", grant["role"]),
                Attr("member", Raw("each.value")),
            ]))
    return blocks


def service_agent_blocks(iam: dict[str, Any], topology: Topology) -> list[Block]:
    """Google's service agents: Pub/Sub (dead letters, OIDC), Cloud Storage (notifications), the log sink."""
    blocks: list[Block] = []
    delivery = topology.push_delivery
    agents = iam.get("service_agents", {})
    for grant in agents.get("pubsub", []):
        target = _target("pubsub", grant)
        if target == "dead_letter_topic":
            blocks.append(_topic_grant(f"pubsub_agent_{identifier(delivery.dead_letter_topic)}_publisher",
                                       delivery.dead_letter_topic, grant, PUBSUB_AGENT))
        elif target == "push_subscriptions":
            for function in topology.functions:
                if function.topic == delivery.dead_letter_topic:
                    continue  # no dead-letter policy on the dead letters' own subscription: nothing to acknowledge
                subscription = identifier(function.push_subscription)
                blocks.append(Block("resource", ("google_pubsub_subscription_iam_member",
                                                 f"pubsub_agent_{subscription}_subscriber"), [
                    _why(grant["why"]),
                    Attr("project", Raw("var.project")),
                    Attr("subscription", Raw(f"google_pubsub_subscription.{subscription}.name")),
                    Attr("role", grant["role"]),
                    Attr("member", PUBSUB_AGENT),
                ]))
        elif target.startswith("service_account:"):
            account = target.split(":", 1)[1]
            blocks.append(Block("resource", ("google_service_account_iam_member",
                                             f"pubsub_agent_on_{account}_{role_slug(grant['role'])}"), [
                _why(grant["why"]),
                Attr("service_account_id", Raw(f"google_service_account.{account}.name")),
                Attr("role", grant["role"]),
                Attr("member", PUBSUB_AGENT),
            ]))
        else:
            raise ValueError(f"iam.yaml service_agents.pubsub: unknown target {target!r}")
    for grant in agents.get("storage", []):
        if _target("storage", grant) != "notification_topics":
            raise ValueError(f"iam.yaml service_agents.storage: unknown target {grant['target']!r}")
        for topic in dict.fromkeys(n.topic for n in topology.notifications):
            blocks.append(_topic_grant(storage_agent_grant_name(topic), topic, grant, STORAGE_AGENT))
    for grant in agents.get("log_sink", []):
        topic = _target("log_sink", grant).removeprefix("topic:")
        block = _topic_grant(f"log_sink_{identifier(topic)}_publisher", topic, grant,
                             Raw("google_logging_project_sink.vertex_events[0].writer_identity"))
        block.body.insert(1, Attr("count", Raw("var.vertex_log_sink ? 1 : 0")))
        blocks.append(block)
    return blocks


def _target(agent: str, grant: dict[Any, Any]) -> str:
    """What a service agent's grant is on (its ``target``), or one line naming the field."""
    if "target" not in grant or set(grant) - {"target", "role", "why"}:
        raise ValueError(f"iam.yaml service_agents.{agent}: each grant has target, role and why (got {sorted(map(str, grant))})")
    return str(grant["target"])


def _topic_grant(name: str, topic: str, grant: dict[str, Any], member: Any) -> Block:
    return Block("resource", ("google_pubsub_topic_iam_member", name), [
        _why(grant["why"]),
        Attr("project", Raw("var.project")),
        Attr("topic", Raw(f"google_pubsub_topic.{identifier(topic)}.name")),
        Attr("role", grant["role"]),
        Attr("member", member),
    ])


def builder_grants(iam: dict[str, Any]) -> list[Raw]:
    """The builder account's project grants: the functions wait for them before their first build."""
    return [Raw(f"google_project_iam_member.{project_grant_name('builder', grant['role'])}")
            for grant in iam["service_accounts"].get("builder", {}).get("project", [])]

