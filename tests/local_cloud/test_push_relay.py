"""The push relay: a transparent pass-through, until its fault API says otherwise.

The relay runs in this process (a werkzeug server on a thread) in front of a
small HTTP "function" that records each POST (its path, body, and when it came)
and sleeps for ``delay_s`` from the body before answering ``status`` from the
body. The kill test supervises that function with ``infra.local.supervise``, as
the local cloud does.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from infra.local.push_relay import FaultError, Relay, RelayClient, parse_faults
from infra.local.supervise import read_pid
from infra.local.testkit import wait_until

REPO = Path(__file__).resolve().parents[2]
FUNCTION = r'''
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        push = json.loads(body)
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps({"path": self.path, "id": push["message"]["messageId"], "at": time.time(),
                                  "type": self.headers.get("Content-Type")}) + "\n")
        control = json.loads(__import__("base64").b64decode(push["message"]["data"]) or b"{}")
        time.sleep(control.get("delay_s", 0))
        self.send_response(control.get("status", 204))
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def push_body(message_id: str, control: dict | None = None, **attributes: str) -> bytes:
    data = base64.b64encode(json.dumps(control or {}).encode()).decode()
    return json.dumps({"message": {"data": data, "attributes": attributes, "messageId": message_id},
                       "subscription": "projects/p/subscriptions/s"}).encode()


class World:
    """A relay in front of one supervised function called ``fn``."""

    def __init__(self, tmp_path: Path, retry: dict | None = None) -> None:
        self.calls = tmp_path / "calls.jsonl"
        self.pid_file = tmp_path / "fn.pid"
        port = free_port()
        argv = [sys.executable, "-m", "infra.local.supervise", "--pid-file", str(self.pid_file), "--",
                sys.executable, "-c", FUNCTION, str(port), str(self.calls)]
        self.supervisor = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True)
        self.dead_letters: list[tuple[str, bytes, dict]] = []
        route = {"url": f"http://127.0.0.1:{port}", "pid_file": str(self.pid_file)}
        if retry:
            route["retry"] = {"subscription": "projects/p/subscriptions/fn-trigger", **retry}
        self.relay = Relay({"fn": route}, seed=1, dead_letter=lambda *letter: self.dead_letters.append(letter), pending_s=3.0)
        self.server = make_server("127.0.0.1", 0, self.relay, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"
        self.admin = RelayClient(self.endpoint)
        wait_until(lambda: _accepts(port))  # the function is up (asked directly, not through the relay)

    def push(self, message_id: str, control: dict | None = None, **attributes: str) -> int:
        request = urllib.request.Request(f"{self.endpoint}/fn/projects/p/topics/t", method="POST",
                                         data=push_body(message_id, control, **attributes),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError:
            return 0

    def received(self) -> list[dict]:
        return [json.loads(line) for line in self.calls.read_text().splitlines()] if self.calls.exists() else []

    def stop(self) -> None:
        self.server.shutdown()
        self.supervisor.terminate()
        self.supervisor.wait(timeout=10)


@pytest.fixture
def world(tmp_path: Path):
    world = World(tmp_path)
    yield world
    world.stop()


@pytest.fixture
def retrying(tmp_path: Path):
    """A relay that applies the subscription's retry and dead-letter policy itself (the local cloud's setting)."""
    world = World(tmp_path, retry={"min_backoff_s": 0.2, "max_backoff_s": 0.4, "max_delivery_attempts": 3,
                                   "dead_letter_topic": "projects/p/topics/dead-letters"})
    yield world
    world.stop()


def test_without_faults_it_passes_the_push_through_and_answers_with_the_functions_status(world: World) -> None:
    assert world.push("m1") == 204
    assert world.push("m2", {"status": 500}) == 500  # so Pub/Sub retries as it would without the relay
    assert [(c["path"], c["id"], c["type"]) for c in world.received()] == [
        ("/projects/p/topics/t", "m1", "application/json"),
        ("/projects/p/topics/t", "m2", "application/json"),
    ]
    stats = world.admin.stats()["functions"]["fn"]
    assert stats == {"deliveries": 2, "forwarded": 2, "held": 0, "duplicates": 0, "drops": 0, "kills": 0, "failures": 1,
                     "retries": 0, "dead_lettered": 0}
    assert {m["message_id"]: m["last_status"] for m in world.admin.messages()} == {"m1": 204, "m2": 500}


def test_duplicate_delivers_k_copies_concurrently_and_only_the_first_time(world: World) -> None:
    world.admin.set_faults(duplicate={"copies": 3, "functions": ["fn"]})
    began = time.monotonic()
    assert world.push("m1", {"delay_s": 1.0}) == 204
    assert time.monotonic() - began < 1.8  # the copies ran beside the original, not after it
    wait_until(lambda: len(world.received()) == 3)
    assert world.push("m1") == 204  # the emulator's redelivery of a message is not copied again
    time.sleep(0.3)
    assert [c["id"] for c in world.received()] == ["m1"] * 4
    assert world.admin.stats()["functions"]["fn"]["duplicates"] == 2


def test_duplicate_with_a_delay_makes_a_late_stale_copy(world: World) -> None:
    world.admin.set_faults(duplicate={"copies": 2, "min_delay_s": 0.8, "max_delay_s": 1.0, "match": "late"})
    assert world.push("m1", {}, kind="late") == 204
    assert world.push("m2") == 204  # does not match: one delivery
    time.sleep(0.3)
    assert [c["id"] for c in world.received()] == ["m1", "m2"]
    wait_until(lambda: len(world.received()) == 3, timeout_s=3)
    assert world.received()[-1]["id"] == "m1"  # after m2: reordered


def test_drop_once_answers_200_without_delivering_count_times(world: World) -> None:
    world.admin.set_faults(drop_once={"functions": ["fn"], "match": "video.mp4", "count": 1})
    assert world.push("m1", {}, objectId="renders/j/video.mp4") == 200
    assert world.push("m2", {}, objectId="renders/j/render.json") == 204
    assert world.push("m3", {}, objectId="renders/k/video.mp4") == 204  # the count is spent
    assert [c["id"] for c in world.received()] == ["m2", "m3"]
    assert world.admin.faults()["drop_once"][0]["count"] == 0
    assert world.admin.stats()["functions"]["fn"]["drops"] == 1


def test_kill_sigkills_the_function_mid_delivery_and_the_supervisor_brings_it_back(world: World) -> None:
    before = read_pid(world.pid_file)
    world.admin.set_faults(kill={"functions": ["fn"], "after_ms": [200, 200], "max_per_message": 1})
    assert world.push("m1", {"delay_s": 2.0}) == 503  # a failed push: the emulator redelivers
    assert world.admin.stats()["functions"]["fn"]["kills"] == 1
    after = wait_until(lambda: (pid := read_pid(world.pid_file)) not in (None, before) and pid)
    assert after != before
    # The redelivery finds the function back, and is not killed again (max_per_message).
    assert wait_until(lambda: world.push("m1", {"delay_s": 0.5}) == 204)
    assert world.admin.stats()["functions"]["fn"]["kills"] == 1


def test_a_delivery_that_ends_before_the_kill_delay_is_not_killed(world: World) -> None:
    pid = read_pid(world.pid_file)
    world.admin.set_faults(kill={"after_ms": [500, 500]})
    assert world.push("m1") == 204
    time.sleep(0.7)
    assert read_pid(world.pid_file) == pid and world.admin.stats()["functions"]["fn"]["kills"] == 0


def test_before_answer_kills_a_delivery_that_ends_before_the_delay_at_its_end(world: World) -> None:
    pid = read_pid(world.pid_file)
    world.admin.set_faults(kill={"after_ms": [2000, 2000], "before_answer": True})
    began = time.monotonic()
    assert world.push("m1") == 503  # the work was done (the call is recorded), the answer lost
    assert time.monotonic() - began < 1.5
    assert [c["id"] for c in world.received()] == ["m1"]
    assert world.admin.stats()["functions"]["fn"]["kills"] == 1
    wait_until(lambda: read_pid(world.pid_file) not in (None, pid))


def test_a_delivery_waits_for_a_restarting_function_as_cloud_run_holds_requests(world: World) -> None:
    pid = read_pid(world.pid_file)
    os.killpg(pid, signal.SIGKILL)  # down; the supervisor starts it again in about a second
    wait_until(lambda: read_pid(world.pid_file) is None)  # gone (its socket closed), the new one not up yet
    assert world.push("m1") == 204
    assert world.admin.stats()["functions"]["fn"]["held"] == 1 and read_pid(world.pid_file) != pid


def test_a_function_that_does_not_come_back_in_time_is_a_429(world: World) -> None:
    world.supervisor.terminate()
    world.supervisor.wait(timeout=10)
    began = time.monotonic()
    assert world.push("m1") == 429
    assert 2.9 < time.monotonic() - began < 6


def test_unknown_faults_and_keys_are_refused() -> None:
    with pytest.raises(FaultError, match="unknown fault"):
        parse_faults({"delay": {}})
    with pytest.raises(FaultError, match="copies"):
        parse_faults({"duplicate": {"copise": 2}})
    rules, seed = parse_faults({"kill": [{"functions": "primary"}], "seed": 3})
    assert rules["kill"][0].functions == ["primary"] and seed == 3


def test_the_admin_api_answers_400_for_a_bad_document(world: World) -> None:
    with pytest.raises(FaultError, match="400"):
        world.admin.set_faults(duplicate={"copise": 2})
    assert world.admin.faults() == {"duplicate": [], "drop_once": [], "kill": []}


def test_with_a_retry_policy_a_failed_delivery_is_retried_with_backoff_then_dead_lettered(retrying: World) -> None:
    assert retrying.push("m1", {"status": 500}, job_id="j") == 200  # taken over: the emulator does not retry it
    wait_until(lambda: retrying.dead_letters, timeout_s=5)
    calls = [c["at"] for c in retrying.received()]
    assert len(calls) == 3  # max_delivery_attempts
    assert calls[1] - calls[0] >= 0.19 and calls[2] - calls[1] >= 0.39  # 0.2 s, then 0.4 s (the cap)
    [(topic, data, attributes)] = retrying.dead_letters
    assert topic == "projects/p/topics/dead-letters" and json.loads(data) == {"status": 500}
    assert attributes["job_id"] == "j"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == "fn-trigger"
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "3"
    [message] = retrying.admin.messages()
    assert (message["attempts"], message["retries"], message["dead_lettered"]) == (3, 2, True)


def test_with_a_retry_policy_a_killed_delivery_is_delivered_again_once_the_function_is_back(retrying: World) -> None:
    retrying.admin.set_faults(kill={"after_ms": [100, 100], "max_per_message": 1})
    assert retrying.push("m1", {"delay_s": 1.0}) == 200
    wait_until(lambda: (m := retrying.admin.messages()) and m[0]["last_status"] == 204, timeout_s=10)
    [message] = retrying.admin.messages()
    assert message["kills"] == 1 and message["retries"] >= 1 and not message["dead_lettered"]
    assert retrying.dead_letters == []
