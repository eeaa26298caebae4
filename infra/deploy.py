"""Deploy Fast Render to a Google Cloud project from infra/topology.yaml.

The local cloud is built from the same file (``infra/local``), so the two can
not drift apart. This prints (``plan``) or runs (``apply``) the gcloud
commands; each "create" tolerates an existing resource, so ``apply`` can be
re-run. ``destroy`` removes what ``apply`` made (the smoke-test environment of
``cloudbuild.yaml``).

    python -m infra.deploy plan    --project P --region us-central1 --image IMAGE
    python -m infra.deploy apply   --project P --region us-central1 --image IMAGE
    python -m infra.deploy destroy --project P --region us-central1

Vertex AI job-state events reach the ``vertex-events`` topic through a Cloud
Logging sink with ``VERTEX_SINK_FILTER``; the sink's writer identity needs
``roles/pubsub.publisher`` on that topic (printed as the last step).

The HTTP function ``status`` is deployed without unauthenticated access: grant
``roles/run.invoker`` to who may read it; ``STATUS_OPERATORS`` (in this
command's environment: emails, comma-separated) may also change jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from infra.local.topology import Topology, load_topology

FIRESTORE_INDEXES = Path(__file__).resolve().parent / "firestore" / "indexes.json"

VERTEX_SINK_FILTER = (
    '(resource.type="ml_job" OR resource.type="aiplatform.googleapis.com/CustomJob") '
    'AND labels."ml.googleapis.com/job_state":*'
)
RUNTIME = "python311"


def apply_commands(topology: Topology, region: str, image: str) -> list[list[str]]:
    p = topology.project
    commands: list[list[str]] = []
    for bucket in topology.buckets.values():
        commands.append(["gcloud", "storage", "buckets", "create", f"gs://{bucket}", f"--project={p}", f"--location={region}",
                         "--uniform-bucket-level-access"])
    for topic in topology.all_topics:
        commands.append(["gcloud", "pubsub", "topics", "create", topic, f"--project={p}"])
    for subscription in topology.pull_subscriptions:
        commands.append(["gcloud", "pubsub", "subscriptions", "create", subscription.name, f"--topic={subscription.topic}",
                         f"--project={p}"])
    for note in topology.notifications:
        commands.append(["gcloud", "storage", "buckets", "notifications", "create", f"gs://{note.bucket}",
                         f"--topic=projects/{p}/topics/{note.topic}", f"--object-prefix={note.prefix}",
                         "--payload-format=json", *[f"--event-types={e}" for e in note.events]])
    commands += firestore_commands(topology, region)
    env = ",".join([f"GOOGLE_CLOUD_PROJECT={p}", f"REGION={region}", f"WORKER_IMAGE={image}",
                    f"FIRESTORE_DATABASE={topology.firestore.database}",
                    *[f"{key.upper()}_BUCKET={name}" for key, name in topology.buckets.items()]])
    delivery = topology.push_delivery
    for function in topology.functions:
        commands.append(["gcloud", "functions", "deploy", function.name, "--gen2", f"--project={p}", f"--region={region}",
                         f"--runtime={RUNTIME}", "--source=.", f"--entry-point={function.target}",
                         f"--trigger-topic={function.topic}", "--retry", "--memory=1Gi", "--timeout=540s",
                         f"--set-env-vars={env}"])
    for function in topology.http_functions:  # /status: IAM invokers only, operators (STATUS_OPERATORS) write
        audience = f"https://{region}-{p}.cloudfunctions.net/{function.name}"  # what callers' ID tokens name
        operators = os.environ.get("STATUS_OPERATORS", "")  # emails, comma-separated; none: read-only for all
        # "^;^": gcloud's escape for another list delimiter, as STATUS_OPERATORS holds commas (gcloud topic escaping).
        http_env = ";".join([*env.split(","), f"STATUS_AUDIENCE={audience}", f"STATUS_OPERATORS={operators}"])
        commands.append(["gcloud", "functions", "deploy", function.name, "--gen2", f"--project={p}", f"--region={region}",
                         f"--runtime={RUNTIME}", "--source=.", f"--entry-point={function.target}", "--trigger-http",
                         "--no-allow-unauthenticated", "--memory=512Mi", "--timeout=60s", f"--set-env-vars=^;^{http_env}"])
        commands.append(["echo", (f"Grant roles/run.invoker on {function.name} to its readers and operators: gcloud "
                                  f"functions add-invoker-policy-binding {function.name} --region={region} --member=...")])
    for schedule in topology.schedules:
        minutes = max(1, round(schedule.every_s / 60))
        commands.append(["gcloud", "scheduler", "jobs", "create", "pubsub", schedule.name, f"--project={p}",
                         f"--location={region}", f"--schedule=*/{minutes} * * * *", f"--topic={schedule.topic}",
                         "--message-body=tick"])
    commands.append(["gcloud", "logging", "sinks", "create", "fast-render-vertex-events",
                     f"pubsub.googleapis.com/projects/{p}/topics/vertex-events", f"--project={p}",
                     f"--log-filter={VERTEX_SINK_FILTER}"])
    commands.append(["echo", f"Grant the sink's writer identity roles/pubsub.publisher on vertex-events; "
                             f"dead-letter topic: {delivery.dead_letter_topic}"])
    return commands


def firestore_commands(topology: Topology, region: str) -> list[list[str]]:
    """The database (native mode), and what ``infra/firestore/indexes.json`` declares: composite indexes,
    the TTL policy, the fields exempt from indexing."""
    p, database = topology.project, topology.firestore.database
    scope = [f"--database={database}", f"--project={p}"]
    commands = [["gcloud", "firestore", "databases", "create", f"--database={database}", f"--location={region}",
                 "--type=firestore-native", f"--project={p}"]]
    config = json.loads(FIRESTORE_INDEXES.read_text())
    for index in config["indexes"]:
        fields = [f"--field-config=field-path={f['fieldPath']},order={f['order'].lower()}" for f in index["fields"]]
        commands.append(["gcloud", "firestore", "indexes", "composite", "create",
                         f"--collection-group={index['collectionGroup']}", f"--query-scope={index['queryScope']}",
                         *fields, *scope])
    for override in config["fieldOverrides"]:
        group, path = override["collectionGroup"], override["fieldPath"]
        if override.get("ttl"):
            commands.append(["gcloud", "firestore", "fields", "ttls", "update", path, f"--collection-group={group}",
                             "--enable-ttl", *scope])
        if override.get("indexes") == []:
            commands.append(["gcloud", "firestore", "indexes", "fields", "update", path, f"--collection-group={group}",
                             "--disable-indexes", *scope])
    return commands


def destroy_commands(topology: Topology, region: str) -> list[list[str]]:
    p = topology.project
    commands = [["gcloud", "functions", "delete", f.name, "--gen2", f"--region={region}", f"--project={p}", "--quiet"]
                for f in (*topology.functions, *topology.http_functions)]
    commands += [["gcloud", "scheduler", "jobs", "delete", s.name, f"--location={region}", f"--project={p}", "--quiet"]
                 for s in topology.schedules]
    commands.append(["gcloud", "logging", "sinks", "delete", "fast-render-vertex-events", f"--project={p}", "--quiet"])
    commands += [["gcloud", "pubsub", "subscriptions", "delete", s.name, f"--project={p}", "--quiet"]
                 for s in topology.pull_subscriptions]
    commands += [["gcloud", "pubsub", "topics", "delete", t, f"--project={p}", "--quiet"] for t in topology.all_topics]
    commands += [["gcloud", "storage", "rm", "--recursive", f"gs://{b}"] for b in topology.buckets.values()]
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("plan", "apply", "destroy"))
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", default="us-central1")
    parser.add_argument("--image", default="")
    args = parser.parse_args(argv)
    topology = load_topology(args.project)
    commands = destroy_commands(topology, args.region) if args.action == "destroy" else apply_commands(topology, args.region, args.image)
    for command in commands:
        print("+ " + shlex.join(command), flush=True)
        if args.action != "plan":
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode and "already exists" not in done.stderr and "ALREADY_EXISTS" not in done.stderr:
                if args.action == "apply":
                    print(done.stderr, file=sys.stderr)
                    return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
