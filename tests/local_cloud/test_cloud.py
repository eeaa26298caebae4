"""The local cloud end to end: real emulator, real fake-gcs-server, real functions-framework.

One cloud for the module (free ports, a temporary state dir), with
``standin_main.py`` in place of main.py: each target writes the CloudEvents it
receives to a JSON-lines file, which the tests read (and, asked to, writes a
Firestore document). The last test stops the cloud through the command line and
checks that no process is left.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from infra.local import cloud as cloud_module
from infra.local import emulators
from infra.local.cloud import LocalCloud, LocalCloudError, Ports
from infra.local.notification_router import matching_topics
from infra.local.testkit import wait_until
from infra.local.topology import DEFAULT_PATH, Firestore, PushDelivery, TopologyError, load_topology

PROJECT = "local-cloud-test"
STANDIN = Path(__file__).with_name("standin_main.py")
REPO = Path(__file__).resolve().parents[2]


def processes_with(*needles: str) -> list[int]:
    """Pids of live processes each of whose ``needles`` is in one of their arguments."""
    found = []
    for pid in cloud_module.live_processes():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(any(needle.encode() in arg for arg in argv) for needle in needles):
            found.append(pid)
    return found


def functions_framework_processes(needle: str) -> list[int]:
    """Pids of live functions-framework processes whose command line holds ``needle``."""
    return processes_with("functions-framework", needle)


def firestore_emulator_processes(port: int) -> list[int]:
    """Pids of the Firestore emulator's processes (gcloud, its launcher, the JVM) serving ``port``."""
    return [
        *processes_with("firestore", f"--host-port=127.0.0.1:{port}"),  # gcloud
        *processes_with("cloud-firestore-emulator", f"--port={port}"),  # the launcher script and the JVM
    ]


def emulator_document(cloud: LocalCloud, path: str) -> dict[str, Any]:
    """A document as the emulator's REST API returns it: straight from this cloud's port, no client library."""
    url = f"http://{cloud.env['FIRESTORE_EMULATOR_HOST']}/v1/projects/{PROJECT}/databases/(default)/documents/{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


class Received:
    """What the stand-in functions recorded, one list of CloudEvents (as dicts) per target."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def events(self, target: str) -> list[dict[str, Any]]:
        path = self.folder / f"{target}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def objects(self, target: str) -> list[str]:
        """The ``objectId`` attribute of every event the target received."""
        return [e["data"]["message"]["attributes"].get("objectId", "") for e in self.events(target)]

    def with_message_id(self, target: str, message_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events(target) if e["data"]["message"]["messageId"] == message_id]


@pytest.fixture(scope="module")
def received(tmp_path_factory: pytest.TempPathFactory) -> Received:
    return Received(tmp_path_factory.mktemp("received"))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, received: Received) -> Iterator[LocalCloud]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAST_RENDER_STANDIN_MARK", "passed through")
        local_cloud = LocalCloud(
            project=PROJECT,
            ports=Ports.free(load_topology(PROJECT)),
            state_dir=tmp_path_factory.mktemp("state"),
            source=STANDIN,
            tick_every_s=0.5,
            extra_env={"STANDIN_EVENTS_DIR": str(received.folder)},
        )
        with local_cloud:
            yield local_cloud


# --------------------------------------------------------------------------- topology (no processes)


def test_topology_substitutes_the_project_and_resolves_buckets() -> None:
    topology = load_topology("p-1")
    assert topology.buckets == {"staging": "p-1-staging", "output": "p-1-output"}
    staging = next(n for n in topology.notifications if n.topic == "staging-events")
    assert (staging.bucket, staging.prefix, staging.events) == ("p-1-staging", "jobs/", ("OBJECT_FINALIZE",))
    assert topology.function("intake-upload").target == "intake_staged_manifest"


def test_topology_declares_the_firestore_database_and_collections(tmp_path: Path) -> None:
    firestore_section = load_topology("p").firestore
    assert firestore_section.database == "(default)"
    assert set(firestore_section.collections) == {"jobs", "fleet", "spend"}
    assert all(firestore_section.collections.values())  # each says what its documents are
    path = tmp_path / "topology.yaml"
    path.write_text("topics: {render-jobs: x}\n")
    assert load_topology("p", path).firestore == Firestore()  # optional: the default database, no collections
    path.write_text("firestore: {collections: {jobs/x: nested}}\n")
    with pytest.raises(TopologyError, match="jobs/x"):
        load_topology("p", path)


def test_ports_put_firestore_at_base_plus_2_unless_told() -> None:
    topology = load_topology(PROJECT)
    assert Ports.from_env(topology, {"LOCAL_CLOUD_BASE_PORT": "9000"}).firestore == 9002
    assert Ports.from_env(topology, {"LOCAL_CLOUD_FIRESTORE_PORT": "9555"}).firestore == 9555
    free = Ports.free(topology)
    assert free.named()["firestore"] == free.firestore
    assert len(set(free.named().values())) == len(free.named())  # no two the same


def test_topology_rejects_an_undeclared_topic(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text("topics: {render-jobs: x}\nfunctions: [{name: f1, target: t, topic: render-job}]\n")
    with pytest.raises(TopologyError, match="render-job"):
        load_topology("p", path)


def test_topology_push_delivery_defaults_and_overrides(tmp_path: Path) -> None:
    assert load_topology("p").push_delivery == PushDelivery()
    path = tmp_path / "topology.yaml"
    path.write_text(DEFAULT_PATH.read_text() + "\npush_delivery: {max_backoff_s: 30, dead_letter_topic: poison}\n")
    topology = load_topology("p", path)
    assert (topology.push_delivery.max_backoff_s, topology.push_delivery.min_backoff_s) == (30, 1.0)
    assert "poison" in topology.all_topics


def test_router_matches_bucket_prefix_and_event_type() -> None:
    notifications = load_topology("p").notifications

    def route(bucket: str, name: str, event: str = "OBJECT_FINALIZE") -> list[str]:
        return matching_topics(notifications, {"bucketId": bucket, "objectId": name, "eventType": event})

    assert route("p-staging", "jobs/a/job.json") == ["staging-events"]
    assert route("p-output", "renders/a/video.mp4") == ["output-events"]
    assert route("p-output", "jobs/a/job.json") == []
    assert route("p-staging", "jobs/a/job.json", "OBJECT_DELETE") == []


def test_start_refuses_ports_in_use_and_starts_nothing(tmp_path: Path) -> None:
    ports = Ports.free(load_topology(PROJECT))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports.gcs))
        busy.listen()
        local_cloud = LocalCloud(project=PROJECT, ports=ports, state_dir=tmp_path, source=STANDIN)
        with pytest.raises(LocalCloudError, match=f"gcs:{ports.gcs}"):
            local_cloud.start()
    assert local_cloud.processes == []


# --------------------------------------------------------------------------- the running cloud


def test_staged_manifest_reaches_intake_as_object_finalize(cloud: LocalCloud, received: Received) -> None:
    staging = cloud.topology.buckets["staging"]
    cloud.storage().bucket(staging).blob("jobs/x/job.json").upload_from_string(b"{}", content_type="application/json")

    [event] = wait_until(lambda: received.events("intake_staged_manifest"))
    message = event["data"]["message"]
    assert event["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/staging-events"
    assert message["attributes"]["bucketId"] == staging
    assert message["attributes"]["objectId"] == "jobs/x/job.json"
    assert message["attributes"]["eventType"] == "OBJECT_FINALIZE"
    assert json.loads(base64.b64decode(message["data"]))["name"] == "jobs/x/job.json"
    assert event["env"] == {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": cloud.env["PUBSUB_EMULATOR_HOST"],
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{cloud.ports.firestore}",
        "FIRESTORE_DATABASE": "(default)",
        "STORAGE_EMULATOR_HOST": cloud.env["STORAGE_EMULATOR_HOST"],
        "API_CREDENTIALS": "anonymous",
        "FAST_RENDER_STANDIN_MARK": "passed through",
        "STATUS_TOKEN": None,  # a token is for the HTTP functions and their clients, not the event functions
        "AVMONITOR_TOKEN": None,
    }


def test_http_function_is_served_at_its_url_with_this_starts_token(cloud: LocalCloud) -> None:
    url, token = cloud.env["STATUS_URL"], cloud.env["AVMONITOR_TOKEN"]
    assert url == f"http://127.0.0.1:{cloud.ports.functions['status']}/status"
    assert len(token) >= 40  # 256 random bits, made at this start

    def get(path: str, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=10) as response:
            return json.load(response)

    answer = get("/some-job", token)
    assert (answer["path"], answer["authorized"]) == ("/status/some-job", True)
    assert answer["env"]["STATUS_TOKEN"] == token and answer["env"]["AVMONITOR_TOKEN"] is None
    assert get("", "not-the-token")["authorized"] is False
    assert oct(cloud.state_file.stat().st_mode & 0o777) == "0o600"  # the state file holds the token


def test_rendered_video_reaches_on_output_finalized(cloud: LocalCloud, received: Received) -> None:
    output = cloud.topology.buckets["output"]
    cloud.storage().bucket(output).blob("renders/x/video.mp4").upload_from_string(b"\0" * 64, content_type="video/mp4")

    assert wait_until(lambda: received.objects("on_output_finalized")) == ["renders/x/video.mp4"]
    [event] = received.events("on_output_finalized")
    assert event["data"]["message"]["attributes"]["bucketId"] == output


def test_uploads_outside_the_prefixes_reach_no_function(cloud: LocalCloud, received: Received) -> None:
    staging = cloud.storage().bucket(cloud.topology.buckets["staging"])
    output = cloud.storage().bucket(cloud.topology.buckets["output"])
    staging.blob("elsewhere/job.json").upload_from_string(b"{}")
    output.blob("jobs/y/job.json").upload_from_string(b"{}")  # the staging prefix, in the wrong bucket
    # Sentinels uploaded after them: once those arrive, the others were routed too.
    staging.blob("jobs/sentinel/job.json").upload_from_string(b"{}")
    output.blob("renders/sentinel/video.mp4").upload_from_string(b"")

    wait_until(lambda: "jobs/sentinel/job.json" in received.objects("intake_staged_manifest"))
    wait_until(lambda: "renders/sentinel/video.mp4" in received.objects("on_output_finalized"))
    time.sleep(0.3)
    delivered = received.objects("intake_staged_manifest") + received.objects("on_output_finalized")
    assert "elsewhere/job.json" not in delivered
    assert "jobs/y/job.json" not in delivered


def test_job_message_reaches_intake_job_message(cloud: LocalCloud, received: Received) -> None:
    message_id = cloud.publish("render-jobs", b'{"job_id": "x"}', job_id="x")

    [event] = wait_until(lambda: received.with_message_id("intake_job_message", message_id))
    assert event["source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/render-jobs"
    assert base64.b64decode(event["data"]["message"]["data"]) == b'{"job_id": "x"}'
    assert event["data"]["message"]["attributes"] == {"job_id": "x"}


def test_failing_function_is_retried_with_backoff_and_dead_letters(cloud: LocalCloud, received: Received) -> None:
    message_id = cloud.publish("render-jobs", b"poison", standin_fail="1")

    def deliveries() -> list[dict[str, Any]]:
        return received.with_message_id("intake_job_message", message_id)

    first, second = wait_until(lambda: len(deliveries()) >= 2 and deliveries())[:2]
    assert second["received_at"] - first["received_at"] > 0.5  # the emulator's first retry comes after ~1 s
    # Dead-lettering itself takes ~11 s (5 attempts) and was checked by hand; here, that it is configured.
    _, subscriber = cloud.pubsub()
    trigger = subscriber.get_subscription(subscription=f"projects/{PROJECT}/subscriptions/intake-message-trigger")
    delivery = cloud.topology.push_delivery
    assert trigger.dead_letter_policy.dead_letter_topic == f"projects/{PROJECT}/topics/{delivery.dead_letter_topic}"
    assert trigger.dead_letter_policy.max_delivery_attempts == delivery.max_delivery_attempts
    assert trigger.retry_policy.minimum_backoff.total_seconds() == delivery.min_backoff_s


def test_several_failing_messages_at_once_are_each_retried_five_times_then_dead_lettered(
    cloud: LocalCloud, received: Received
) -> None:
    # The emulator alone loses pushes that fail together (push_relay's docstring); the relay's retries do not.
    payloads = [f"poison-{i}".encode() for i in range(6)]
    ids = [cloud.publish("render-jobs", data, standin_fail="1") for data in payloads]

    def dead_letters() -> list[dict[str, Any]]:
        return [e for e in received.events("on_dead_letter") if base64.b64decode(e["data"]["message"]["data"]) in payloads]

    letters = wait_until(lambda: len({base64.b64decode(e["data"]["message"]["data"]) for e in dead_letters()}) == 6
                         and dead_letters(), timeout_s=40)
    assert [len(received.with_message_id("intake_job_message", i)) for i in ids] == [5] * 6
    attributes = letters[0]["data"]["message"]["attributes"]
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == "intake-message-trigger"
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"


def test_watchdog_ticks_on_schedule(cloud: LocalCloud, received: Received) -> None:
    events = wait_until(lambda: received.events("watchdog_tick"), timeout_s=5)
    assert events[0]["source"] == f"//pubsub.googleapis.com/projects/{PROJECT}/topics/watchdog-ticks"
    tick = json.loads(base64.b64decode(events[0]["data"]["message"]["data"]))
    assert tick["schedule"] == "watchdog-every-minute"


def test_pull_subscription_receives_published_messages(cloud: LocalCloud) -> None:
    cloud.publish("render-completed", b"done", job_id="x")
    [message] = cloud.pull("render-completed-main", timeout=5)
    assert (message.data, message.attributes) == (b"done", {"job_id": "x"})
    assert cloud.pull("render-completed-main", timeout=0.2) == []


def test_pushes_go_through_the_relay_which_can_duplicate_them(cloud: LocalCloud, received: Received) -> None:
    endpoints = cloud.push_endpoints()
    assert endpoints["intake-message"] == (
        f"http://127.0.0.1:{cloud.ports.relay}/intake-message/projects/{PROJECT}/topics/render-jobs"
    )
    cloud.relay.set_faults(duplicate={"copies": 2, "functions": ["intake-message"]})
    try:
        message_id = cloud.publish("render-jobs", b'{"job_id": "dup"}', job_id="dup")
        events = wait_until(lambda: len(received.with_message_id("intake_job_message", message_id)) == 2
                            and received.with_message_id("intake_job_message", message_id))
        assert {e["source"] for e in events} == {f"//pubsub.googleapis.com/projects/{PROJECT}/topics/render-jobs"}
        assert cloud.relay.stats()["functions"]["intake-message"]["duplicates"] == 1
    finally:
        cloud.relay.reset()


def test_a_killed_function_comes_back_and_gets_the_message_again(cloud: LocalCloud, received: Received) -> None:
    before = cloud.function_pid("intake-message")
    assert cloud.kill_function("intake-message") == before
    message_id = cloud.publish("render-jobs", b'{"job_id": "after-kill"}', job_id="after-kill")
    # The first push may find it down (a 503 from the relay); Pub/Sub redelivers after its backoff.
    wait_until(lambda: received.with_message_id("intake_job_message", message_id), timeout_s=30)
    assert cloud.function_pid("intake-message") not in (None, before)
    log = Path(cloud.log_dir / "fn-intake-message.log").read_text()
    assert f"pid {before} ended (signal 9)" in log


def test_a_function_reaches_firestore_through_its_environment(cloud: LocalCloud) -> None:
    cloud.publish("render-jobs", b'{"job_id": "fs"}', job_id="fs", standin_firestore="from-intake")

    document = cloud.firestore().collection("standin").document("from-intake")
    snapshot = wait_until(lambda: (snap := document.get()).exists and snap, timeout_s=30)
    assert snapshot.to_dict() == {"target": "intake_job_message", "project": PROJECT}


def test_firestore_client_reads_back_what_it_wrote_and_reset_empties_it(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = cloud.firestore()
    assert isinstance(db, firestore.Client)
    db.collection("jobs").document("j1").set({"status": "queued", "attempts": 0})
    db.collection("jobs").document("j1").collection("events").document("e1").set({"n": 1})
    db.collection("spend").document("2026-01-01").set({"reserved_usd": 1.5})

    @firestore.transactional
    def bump(transaction: firestore.Transaction) -> None:
        ref = db.collection("jobs").document("j1")
        transaction.update(ref, {"attempts": ref.get(transaction=transaction).get("attempts") + 1})

    bump(db.transaction())
    assert db.collection("jobs").document("j1").get().to_dict() == {"status": "queued", "attempts": 1}
    # The emulator at this cloud's port has it (not some other Firestore the library found).
    assert emulator_document(cloud, "jobs/j1")["fields"]["status"] == {"stringValue": "queued"}
    # Clients ignore FIRESTORE_EMULATOR_HOST: one made while it points elsewhere still reaches this cloud.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    other = emulators.firestore_client(f"127.0.0.1:{cloud.ports.firestore}", PROJECT)
    try:
        assert other.collection("spend").document("2026-01-01").get().get("reserved_usd") == 1.5
    finally:
        emulators.close_firestore_client(other)
    monkeypatch.undo()

    cloud.reset_firestore()
    assert list(db.collections()) == []
    assert not db.collection("jobs").document("j1").collection("events").document("e1").get().exists


def test_command_line_status_env_and_down_leave_nothing_running(cloud: LocalCloud) -> None:
    def cli(*args: str) -> str:
        argv = [sys.executable, "-m", "infra.local", *args, "--state-dir", str(cloud.state_dir)]
        return subprocess.run(argv, cwd=REPO, check=True, capture_output=True, text=True, timeout=60).stdout

    status = cli("status")
    assert all(f"{record.name} " in status for record in cloud.processes)
    assert "DOWN" not in status
    env = cli("env")
    assert f"export PUBSUB_EMULATOR_HOST={cloud.env['PUBSUB_EMULATOR_HOST']}" in env
    assert f"export FIRESTORE_EMULATOR_HOST=127.0.0.1:{cloud.ports.firestore}" in env
    assert len(firestore_emulator_processes(cloud.ports.firestore)) >= 2  # the JVM and its launchers (a check of the check)
    assert f"killed watchdog (pid {cloud.function_pid('watchdog')})" in cli("kill", "watchdog")

    groups = {record.pid for record in cloud.processes}
    cli("down")
    cloud.stop()  # reaps our children (down ran in another process); idempotent
    leftovers = [pid for pid, (_, pgid) in cloud_module.live_processes().items() if pgid in groups]
    assert leftovers == []
    # The functions run in sessions of their own under their supervisors: none is left either.
    assert functions_framework_processes(str(STANDIN)) == []
    # Nor any of the Firestore emulator's (its JVM included), and no port of the cloud is served.
    assert firestore_emulator_processes(cloud.ports.firestore) == []
    assert [name for name, port in cloud.ports.named().items() if cloud_module._port_open(port)] == []
    assert not cloud.state_file.exists()
    assert "nothing was running" in cli("down")
