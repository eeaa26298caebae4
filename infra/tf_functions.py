"""The topology's functions and infra/firestore/indexes.json as Terraform resources, each explicit.

Every function is a gen2 Cloud Function with an HTTP trigger: the event
functions are reached only by their own push subscriptions (ingress internal
only, the push account as the only invoker), /status by the people in
``operators`` and ``viewers`` (IAM decides, so its ingress is open). They share
one source archive and one environment (``local.function_env``,
infra/terraform/functions.tf); status adds who it trusts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.local.topology import Topology
from infra.tf_hcl import Attr, Block, Comment, Raw, identifier

FIRESTORE_INDEXES = Path(__file__).resolve().parent / "firestore" / "indexes.json"
RUNTIME = "python311"
# An event function may run up to 540 s (Config.claim_timeout_s is longer, so a live
# claimant never loses its claim); the ack deadline (600 s) is longer still.
EVENT_FUNCTION = {"memory": "1Gi", "timeout_s": 540}
HTTP_FUNCTION = {"memory": "512Mi", "timeout_s": 60}
STATUS_SKIPS = [
    Comment("checkov:skip=CKV_GCP_124:/status is called by people and avmonitor from outside the project; "
            "it has no unauthenticated invoker (IAM: operators and viewers only) and checks an ID token itself"),
]


def function_blocks(topology: Topology, builder_grants: list[Raw]) -> list[Block]:
    blocks = []
    for function in topology.functions:
        blocks.append(_function(function.name, function.target, f"Pushed from {function.topic} "
                                f"by {function.push_subscription}.", "functions", "ALLOW_INTERNAL_ONLY",
                                EVENT_FUNCTION, Raw("local.function_env"), builder_grants, []))
    for function in topology.http_functions:
        env = Raw("merge(local.function_env, local.status_env)")
        blocks.append(_function(function.name, function.target, "Called over HTTP by people and tools (IAM invokers).",
                                "status", "ALLOW_ALL", HTTP_FUNCTION, env, builder_grants, STATUS_SKIPS))
    return blocks


def function_urls_output(topology: Topology) -> Block:
    """Each function's URL, generated so that a function added to the topology is listed."""
    urls = {name: Raw(f"google_cloudfunctions2_function.{identifier(name)}.service_config[0].uri")
            for name in topology.function_names}
    return Block("output", ("function_urls",), [
        Attr("description", "Each function's URL (the event functions accept only their push subscriptions)."),
        Attr("value", urls),
    ])


def _function(name: str, target: str, description: str, account: str, ingress: str, size: dict[str, Any],
              env: Raw, builder_grants: list[Raw], skips: list[Comment]) -> Block:
    return Block("resource", ("google_cloudfunctions2_function", identifier(name)), [
        *skips,
        Attr("project", Raw("var.project")),
        Attr("location", Raw("var.region")),
        Attr("name", name),
        Attr("description", description),
        Block("build_config", (), [
            Attr("runtime", RUNTIME),
            Attr("entry_point", target),
            Attr("service_account", Raw("google_service_account.builder.id")),
            Block("source", (), [Block("storage_source", (), [
                Attr("bucket", Raw("google_storage_bucket.functions_source.name")),
                Attr("object", Raw("google_storage_bucket_object.functions_source.name")),
            ])]),
        ]),
        Block("service_config", (), [
            Attr("service_account_email", Raw(f"google_service_account.{account}.email")),
            Attr("ingress_settings", ingress),
            Attr("available_memory", size["memory"]),
            Attr("timeout_seconds", size["timeout_s"]),
            Attr("max_instance_count", Raw("var.max_instances")),
            Attr("all_traffic_on_latest_revision", True),
            Attr("environment_variables", env),
        ]),
        Attr("depends_on", [Raw("google_project_service.cloudfunctions"), Raw("google_project_service.run"),
                            Raw("google_project_service.cloudbuild"), *builder_grants]),
    ])


def firestore_blocks(path: Path = FIRESTORE_INDEXES) -> list[Block]:
    """Composite indexes and field overrides (TTL, index exemptions), exactly as indexes.json."""
    config = json.loads(Path(path).read_text())
    blocks = []
    for index in config.get("indexes", []):
        fields = [f["fieldPath"] for f in index["fields"]]
        name = identifier("_".join([index["collectionGroup"], *fields]))
        orders = ", ".join(f"{f['fieldPath']} {f.get('order', f.get('arrayConfig', ''))}" for f in index["fields"])
        blocks.append(Block("resource", ("google_firestore_index", name), [
            Comment(f"{index['collectionGroup']}: {orders}."),
            Attr("project", Raw("var.project")),
            Attr("database", Raw("google_firestore_database.main.name")),
            Attr("collection", index["collectionGroup"]),
            Attr("query_scope", index.get("queryScope", "COLLECTION")),
            *[_index_field(f) for f in index["fields"]],
        ]))
    for override in config.get("fieldOverrides", []):
        body: list[Any] = [
            Attr("project", Raw("var.project")),
            Attr("database", Raw("google_firestore_database.main.name")),
            Attr("collection", override["collectionGroup"]),
            Attr("field", override["fieldPath"]),
        ]
        what = []
        if override.get("ttl"):
            what.append("documents expire at this time (TTL)")
            body.append(Block("ttl_config", ()))
        indexes = override.get("indexes")
        if indexes == []:
            what.append("not indexed (no single-field index)")
            body.append(Block("index_config", ()))
        elif indexes:
            raise ValueError(f"indexes.json {override['fieldPath']}: only exemptions (indexes: []) are generated")
        name = identifier(f"{override['collectionGroup']}_{override['fieldPath']}")
        blocks.append(Block("resource", ("google_firestore_field", name),
                            [Comment(f"{override['collectionGroup']}.{override['fieldPath']}: {'; '.join(what)}."), *body]))
    return blocks


def _index_field(field: dict[str, Any]) -> Block:
    body = [Attr("field_path", field["fieldPath"])]
    if "order" in field:
        body.append(Attr("order", field["order"]))
    if "arrayConfig" in field:
        body.append(Attr("array_config", field["arrayConfig"]))
    return Block("fields", (), body)
