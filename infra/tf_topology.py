"""infra/topology.yaml's Pub/Sub and Cloud Storage wiring as Terraform resources, each explicit.

The push subscriptions are wired as the local cloud wires them
(``infra.local.emulators.create_pubsub_resources``): one ``<function>-trigger``
per event function, pushing to ``<function uri>/projects/P/topics/T`` (the
path functions-framework builds the CloudEvent from), with the topology's
``push_delivery`` ack deadline, retry backoff and dead-letter policy; the
dead-letters function's own subscription has no dead-letter policy (a failing
dead letter must not loop back to itself). The push carries an OIDC token of
the push account, audience the function's URI, which Cloud Run checks.
"""

from __future__ import annotations

from typing import Any

from infra.local.topology import Topology
from infra.tf_hcl import Attr, Block, Comment, Raw, identifier
from infra.tf_iam import storage_agent_grant_name

# Seven days, Pub/Sub's longest for a subscription and its default: a message
# waiting for a function that is down is kept as long as Pub/Sub keeps anything.
MESSAGE_RETENTION = "604800s"
TOPIC_SKIPS = [
    Comment("checkov:skip=CKV_GCP_83:Google-managed encryption; the messages hold job ids and object names, "
            "not media, and a customer key would add a KMS dependency to every publish"),
]


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{value}s"


def topic_blocks(topology: Topology) -> list[Block]:
    blocks = []
    for topic in topology.all_topics:
        description = topology.topics.get(topic, "")
        blocks.append(Block("resource", ("google_pubsub_topic", identifier(topic)), [
            *([Comment(description)] if description else []),
            *TOPIC_SKIPS,
            Attr("project", Raw("var.project")),
            Attr("name", topic),
            Attr("depends_on", [Raw("google_project_service.pubsub")]),
        ]))
    return blocks


def push_subscription_blocks(topology: Topology) -> list[Block]:
    delivery = topology.push_delivery
    blocks = []
    for function in topology.functions:
        fn = f"google_cloudfunctions2_function.{identifier(function.name)}"
        body: list[Any] = [
            Comment(f"Triggers {function.name} ({function.target}) with each message of {function.topic}."),
            Attr("project", Raw("var.project")),
            Attr("name", function.push_subscription),
            Attr("topic", Raw(f"google_pubsub_topic.{identifier(function.topic)}.id")),
            Attr("ack_deadline_seconds", delivery.ack_deadline_s),
            Attr("message_retention_duration", MESSAGE_RETENTION),
            Block("push_config", (), [
                Attr("push_endpoint",
                     f"${{{fn}.service_config[0].uri}}/projects/${{var.project}}/topics/{function.topic}"),
                Block("oidc_token", (), [
                    Attr("service_account_email", Raw("google_service_account.push.email")),
                    Attr("audience", Raw(f"{fn}.service_config[0].uri")),
                ]),
            ]),
            Block("retry_policy", (), [
                Attr("minimum_backoff", _seconds(delivery.min_backoff_s)),
                Attr("maximum_backoff", _seconds(delivery.max_backoff_s)),
            ]),
        ]
        if function.topic != delivery.dead_letter_topic:  # as infra/local: the dead letters' consumer must not loop
            body.append(Block("dead_letter_policy", (), [
                Attr("dead_letter_topic", Raw(f"google_pubsub_topic.{identifier(delivery.dead_letter_topic)}.id")),
                Attr("max_delivery_attempts", delivery.max_delivery_attempts),
            ]))
        body.append(Comment("Never expire, however long no message comes (the default is 31 days of inactivity)."))
        body.append(Block("expiration_policy", (), [Attr("ttl", "")]))
        blocks.append(Block("resource", ("google_pubsub_subscription", identifier(function.push_subscription)), body))
    return blocks


def pull_subscription_blocks(topology: Topology) -> list[Block]:
    blocks = []
    for subscription in topology.pull_subscriptions:
        blocks.append(Block("resource", ("google_pubsub_subscription", identifier(subscription.name)), [
            Comment(f"Pulled by consumers outside the system: {subscription.topic}."),
            Attr("project", Raw("var.project")),
            Attr("name", subscription.name),
            Attr("topic", Raw(f"google_pubsub_topic.{identifier(subscription.topic)}.id")),
            Attr("ack_deadline_seconds", 60),
            Attr("message_retention_duration", MESSAGE_RETENTION),
            Block("expiration_policy", (), [Attr("ttl", "")]),
        ]))
    return blocks


def notification_blocks(topology: Topology) -> list[Block]:
    keys = {name: key for key, name in topology.buckets.items()}
    blocks = []
    for note in topology.notifications:
        key = keys[note.bucket]
        blocks.append(Block("resource", ("google_storage_notification", f"{key}_{identifier(note.topic)}"), [
            Comment(f"{', '.join(note.events)} of {key} objects under {note.prefix or '(any)'} to {note.topic}."),
            Attr("bucket", Raw(f"google_storage_bucket.{key}.name")),
            Attr("payload_format", "JSON_API_V1"),
            Attr("topic", Raw(f"google_pubsub_topic.{identifier(note.topic)}.id")),
            Attr("event_types", list(note.events)),
            *([Attr("object_name_prefix", note.prefix)] if note.prefix else []),
            Comment("The storage service agent must be allowed to publish before the config is made."),
            Attr("depends_on", [Raw(f"google_pubsub_topic_iam_member.{storage_agent_grant_name(note.topic)}")]),
        ]))
    return blocks


def schedule_blocks(topology: Topology) -> list[Block]:
    blocks = []
    for schedule in topology.schedules:
        minutes = schedule.every_s / 60
        if not minutes.is_integer() or not 1 <= minutes <= 59:
            raise ValueError(f"schedule {schedule.name}: every_s must be a whole number of minutes from 60 to 3540, "
                             f"not {schedule.every_s:g} (Cloud Scheduler's cron has a one-minute resolution)")
        cron = "* * * * *" if minutes == 1 else f"*/{int(minutes)} * * * *"
        blocks.append(Block("resource", ("google_cloud_scheduler_job", identifier(schedule.name)), [
            Comment(f"A tick to {schedule.topic} every {schedule.every_s:g} s."),
            Attr("project", Raw("var.project")),
            Attr("region", Raw("var.region")),
            Attr("name", schedule.name),
            Attr("schedule", cron),
            Attr("time_zone", "Etc/UTC"),
            Block("pubsub_target", (), [
                Attr("topic_name", Raw(f"google_pubsub_topic.{identifier(schedule.topic)}.id")),
                Attr("data", Raw('base64encode("tick")')),
            ]),
            Attr("depends_on", [Raw("google_project_service.cloudscheduler")]),
        ]))
    return blocks
