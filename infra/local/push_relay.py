"""Between Pub/Sub's pushes and the functions: a pass-through that can misbehave as the cloud may.

    python -m infra.local.push_relay --port 8793 --routes .local-cloud/relay-routes.json

Every function's push subscription points here
(``http://127.0.0.1:RELAY/<function-name>/projects/P/topics/T``). The relay posts
the push body to the function's own URL (path ``/projects/P/topics/T``, from which
functions-framework builds the CloudEvent). While no instance listens (the
function was killed and its supervisor is starting it again) the relay holds
the delivery, as Cloud Run holds requests while an instance starts (up to
``--pending-s``, 10 s, then a 429); a delivery whose function dies under it is
a 503. What happens after a failed delivery depends on the route:

* without ``retry`` (the emulator's retries): the function's status goes back to
  the emulator, whose retry and dead-letter policy take over.
* with ``retry`` (what the local cloud sets up): the relay applies the
  subscription's retry policy itself (exponential backoff from
  ``min_backoff_s`` to ``max_backoff_s``) and, after ``max_delivery_attempts``,
  publishes the message to ``dead_letter_topic`` with the attributes Pub/Sub
  adds (``CloudPubSubDeadLetterSource*``); without a dead-letter topic it
  retries without end, as Pub/Sub does. The emulator gets a 200 at once (it takes no other 2xx as an acknowledgement). This
  is because the emulator (gcloud 528) loses failed pushes when several fail at
  once on one subscription: eight failing messages got two or three deliveries
  each and then none, not even after the ack deadline, and never reached the
  dead-letter topic (one failing message alone is retried and dead-lettered as
  documented). See docs/chaos.md.

With no faults and no failures the relay does nothing but forward.

Faults are this process's alone, as LocalStack keeps its chaos API apart from
the services; what each one imitates, and the source, is in docs/chaos.md.
``POST /_admin/faults`` replaces them (unknown keys are a 400); each key takes
one rule or a list of rules, and every rule takes ``functions`` (names, or
``["*"]``, the default), ``match`` (a substring of the message's decoded data,
attribute keys or values; default: any) and ``probability`` (default 1)::

    {"duplicate": {"copies": 3, "max_delay_s": 2.0},     # k-1 more deliveries, concurrent, some late
     "drop_once": {"functions": ["output-finalize"], "match": "video.mp4", "count": 1},  # 200, not delivered
     "kill": {"functions": ["primary"], "after_ms": [0, 300], "max_per_message": 1},      # SIGKILL mid-delivery
     "seed": 7}

* ``duplicate``: the first time a message is seen, ``copies - 1`` extra copies
  go to the function at once, each after a random delay in
  ``[min_delay_s, max_delay_s]`` (0 and 0 by default), concurrently with the
  original; only the original's answer goes back to the emulator.
* ``drop_once``: the next ``count`` matching deliveries are answered 200 and
  never reach the function.
* ``kill``: while a matching delivery is in flight, the function's process
  group is sent SIGKILL (through its supervisor's pid file, ``infra.local.supervise``)
  after a random ``after_ms`` delay; the delivery fails and is retried after
  the backoff, and the supervisor restarts the function meanwhile. Retries are
  deliveries too: the rules apply to them. With ``before_answer``, a delivery
  the function answers before the delay is killed at that moment and its
  answer discarded (a 503): the step's work is done, its acknowledgement lost,
  so every matching delivery is killed, at a random point up to its end. ``max_per_message``
  (default: no limit) and ``count`` (total kills; default: no limit) bound it.

``GET /_admin/faults`` shows them (with what is left of each count);
``POST /_admin/reset`` clears faults and statistics; ``GET /_admin/stats``
counts per function (``deliveries``: pushes from the emulator; ``forwarded`` to
the function, copies included; ``duplicates``, ``drops``, ``kills``;
``held``: deliveries that waited for an instance to start; ``failures``:
non-2xx answers (the function's, or the relay's 503 / 429); ``retries``,
``dead_lettered``); ``GET /_admin/messages`` lists each message id seen with
its function, attempts, last status and a timed history of its deliveries.

The routes file: ``{"functions": {"<name>": {"url": "http://127.0.0.1:PORT",
"pid_file": "...", "retry": {"subscription": "projects/P/subscriptions/S",
"min_backoff_s": 1, "max_backoff_s": 10, "max_delivery_attempts": 5,
"dead_letter_topic": "projects/P/topics/T" | null}}}}`` (``retry`` optional).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from infra.local.supervise import kill_function_process

if TYPE_CHECKING:
    from infra.local.topology import Topology

HOST = "127.0.0.1"
FORWARD_TIMEOUT_S = 600.0  # the push subscriptions' ack deadline (topology push_delivery)
# Cloud Run holds a request while an instance starts: up to 3.5 x the average start-up time or
# 10 s, whichever is longer, then answers 429 (cloud.google.com/run/docs/about-instance-autoscaling).
PENDING_S = 10.0
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


# --------------------------------------------------------------------------- fault rules


@dataclass
class Rule:
    functions: list[str] = field(default_factory=lambda: ["*"])
    match: str | None = None
    probability: float = 1.0

    def applies(self, function: str, text: str, rng: random.Random) -> bool:
        if "*" not in self.functions and function not in self.functions:
            return False
        if self.match is not None and self.match not in text:
            return False
        return self.probability >= 1 or rng.random() < self.probability


@dataclass
class Duplicate(Rule):
    copies: int = 2  # deliveries in all, the original included
    min_delay_s: float = 0.0
    max_delay_s: float = 0.0


@dataclass
class DropOnce(Rule):
    count: int = 1  # what is left to drop


@dataclass
class Kill(Rule):
    after_ms: list[float] = field(default_factory=lambda: [0.0, 200.0])
    before_answer: bool = False  # a delivery the function answers within after_ms is killed then, its answer lost
    max_per_message: int | None = None
    count: int | None = None  # kills left in all (None: no limit)


_KINDS: dict[str, type[Rule]] = {"duplicate": Duplicate, "drop_once": DropOnce, "kill": Kill}


@dataclass(frozen=True)
class RetryPolicy:
    """A push subscription's retry and dead-letter policy, applied by the relay (see the module docstring)."""

    subscription: str  # projects/P/subscriptions/S
    min_backoff_s: float = 1.0
    max_backoff_s: float = 10.0
    max_delivery_attempts: int = 5
    dead_letter_topic: str | None = None  # projects/P/topics/T; None: retried without end

    def backoff_s(self, attempt: int) -> float:
        """The wait before delivery ``attempt`` (2, 3, ...): exponential from the minimum, capped."""
        return min(self.max_backoff_s, self.min_backoff_s * 2 ** max(0, attempt - 2))


class FaultError(ValueError):
    """A faults document that does not parse (answered with 400)."""


def parse_faults(body: Any) -> tuple[dict[str, list[Rule]], int | None]:
    """``{"duplicate": rule | [rules], ...}`` -> rules by kind, and the seed if one was given."""
    if not isinstance(body, dict):
        raise FaultError("faults must be a JSON object")
    unknown = set(body) - set(_KINDS) - {"seed"}
    if unknown:
        raise FaultError(f"unknown fault(s): {sorted(unknown)}; known: {sorted(_KINDS)} and seed")
    rules: dict[str, list[Rule]] = {}
    for kind, cls in _KINDS.items():
        items = body.get(kind) or []
        items = [items] if isinstance(items, dict) else items
        names = {f.name for f in fields(cls)}
        parsed = []
        for item in items:
            if not isinstance(item, dict) or set(item) - names:
                raise FaultError(f"{kind}: expected an object with keys from {sorted(names)}, got {item!r}")
            rule = cls(**item)
            if isinstance(rule.functions, str):
                rule.functions = [rule.functions]
            parsed.append(rule)
        rules[kind] = parsed
    seed = body.get("seed")
    return rules, None if seed is None else int(seed)


def message_text(body: bytes) -> tuple[str, str]:
    """(message id, the text ``match`` looks in: decoded data, attribute keys and values)."""
    try:
        message = json.loads(body).get("message") or {}
        data = base64.b64decode(message.get("data") or "").decode("utf-8", "replace")
        attributes = message.get("attributes") or {}
        text = " ".join([data, *(f"{key}={value}" for key, value in attributes.items())])
        return str(message.get("messageId") or message.get("message_id") or ""), text
    except (ValueError, AttributeError, TypeError):
        return "", body.decode("utf-8", "replace")


# --------------------------------------------------------------------------- the relay


@dataclass
class MessageRecord:
    function: str
    attempts: int = 0  # deliveries: pushes from the emulator and the relay's own retries
    copies: int = 0  # extra deliveries made here
    kills: int = 0
    retries: int = 0  # deliveries the relay made again after a failure (retry mode)
    dead_lettered: bool = False
    last_status: int | None = None
    first_at: float = field(default_factory=time.time)
    last_at: float = field(default_factory=time.time)
    summary: str = ""  # the start of the matched text, to find a job's messages afterwards
    history: list[list[Any]] = field(default_factory=list)  # [time, what, status] per push, copy, kill


_HISTORY = 40  # entries kept per message
_COUNTS = ("deliveries", "forwarded", "held", "duplicates", "drops", "kills", "failures", "retries", "dead_lettered")


def _note(record: MessageRecord, what: str, status: int | None) -> None:
    if len(record.history) < _HISTORY:
        record.history.append([round(time.time(), 3), what, status])


class Relay:
    """The routing, the faults, the retries and the counts; calling it is the WSGI side."""

    def __init__(self, routes: dict[str, dict[str, Any]], seed: int | None = None,
                 dead_letter: Callable[[str, bytes, dict[str, str]], None] | None = None,
                 pending_s: float = PENDING_S) -> None:
        self.routes = routes
        self.pending_s = pending_s
        self.retry = {name: RetryPolicy(**route["retry"]) for name, route in routes.items() if route.get("retry")}
        self._dead_letter_sink = dead_letter or _publish
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.rules: dict[str, list[Rule]] = {kind: [] for kind in _KINDS}
        self.stats: dict[str, dict[str, int]] = {}
        self.messages: dict[str, MessageRecord] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.rules = {kind: [] for kind in _KINDS}
            self.stats = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
            self.messages = {}

    # ---------------------------------------------------------------- one push

    def deliver(self, function: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        message_id, text = message_text(body)
        key = f"{function}/{message_id}" if message_id else ""
        with self._lock:
            stats = self.stats[function]
            stats["deliveries"] += 1
            record = self.messages.setdefault(key, MessageRecord(function, summary=text[:240])) if key else MessageRecord(function)
            first_time = record.attempts == 0
            record.attempts += 1
            record.last_at = time.time()
            drop = next((r for r in self.rules["drop_once"] if r.count > 0 and r.applies(function, text, self._rng)), None)
            if drop is not None:
                drop.count -= 1
                stats["drops"] += 1
            duplicate = None
            if drop is None and first_time:
                duplicate = next((r for r in self.rules["duplicate"] if r.applies(function, text, self._rng)), None)
            armed = self._choose_kill(function, text, record) if drop is None else None
            delays = []
            if duplicate is not None:
                delays = [self._rng.uniform(duplicate.min_delay_s, duplicate.max_delay_s) for _ in range(duplicate.copies - 1)]
                stats["duplicates"] += len(delays)
                record.copies += len(delays)
        if drop is not None:
            self._answered(function, record, 200, "drop")
            return 200, b""
        for delay in delays:
            threading.Thread(target=self._copy, args=(function, record, path, body, headers, delay), daemon=True).start()
        status, answer = self._attempt(function, record, path, body, headers, armed, "push")
        policy = self.retry.get(function)
        if _ok(status) or policy is None:
            return status, answer
        self._retry_later(function, record, path, body, headers, text, policy, attempt=2)
        return 200, b"the push relay retries this delivery with the subscription's retry policy"

    def _choose_kill(self, function: str, text: str, record: MessageRecord) -> _Armed | None:
        """Under the lock: whether a kill rule takes this delivery, when, and how."""
        kill = next((r for r in self.rules["kill"] if self._may_kill(r, record) and r.applies(function, text, self._rng)), None)
        if kill is None:
            return None
        if kill.count is not None:
            kill.count -= 1
        return _Armed(self._rng.uniform(*kill.after_ms) / 1000, kill.before_answer)

    def _attempt(self, function: str, record: MessageRecord, path: str, body: bytes, headers: dict[str, str],
                 armed: _Armed | None, what: str) -> tuple[int, bytes]:
        """One delivery to the function, with the chosen kill armed while it is in flight."""
        if armed is not None:
            threading.Thread(target=self._kill_later, args=(function, record, armed), daemon=True).start()
        status, answer = self._forward(function, path, body, headers)
        if armed is not None and armed.answer_came() and self._kill_now(function, record):
            # Killed after its work, before its answer got out: the work is done, the delivery failed.
            status, answer = 503, f"function {function} killed before it answered".encode()
        self._answered(function, record, status, what)
        return status, answer

    # ---------------------------------------------------------------- retry mode

    def _retry_later(self, function: str, record: MessageRecord, path: str, body: bytes, headers: dict[str, str],
                     text: str, policy: RetryPolicy, attempt: int) -> None:
        timer = threading.Timer(policy.backoff_s(attempt), self._retry,
                                args=(function, record, path, body, headers, text, policy, attempt))
        timer.daemon = True
        timer.start()

    def _retry(self, function: str, record: MessageRecord, path: str, body: bytes, headers: dict[str, str],
               text: str, policy: RetryPolicy, attempt: int) -> None:
        with self._lock:
            record.attempts += 1
            record.retries += 1
            record.last_at = time.time()
            self.stats[function]["retries"] += 1
            armed = self._choose_kill(function, text, record)
        body = _with_delivery_attempt(body, attempt) if policy.dead_letter_topic else body
        status, _ = self._attempt(function, record, path, body, headers, armed, "retry")
        if _ok(status):
            return
        if policy.dead_letter_topic and attempt >= policy.max_delivery_attempts:
            self._dead_letter(function, record, body, policy, attempt)
        else:
            self._retry_later(function, record, path, body, headers, text, policy, attempt + 1)

    def _dead_letter(self, function: str, record: MessageRecord, body: bytes, policy: RetryPolicy, attempts: int) -> None:
        """Forward the message to the dead-letter topic, with the attributes Pub/Sub adds."""
        message = json.loads(body)["message"]
        project, _, subscription = policy.subscription.partition("/subscriptions/")
        attributes = {
            **(message.get("attributes") or {}),
            "CloudPubSubDeadLetterSourceSubscription": subscription,
            "CloudPubSubDeadLetterSourceSubscriptionProject": project.removeprefix("projects/"),
            "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
            "CloudPubSubDeadLetterSourceTopicPublishTime": str(message.get("publishTime") or ""),
        }
        try:
            self._dead_letter_sink(policy.dead_letter_topic, base64.b64decode(message.get("data") or ""), attributes)
        except Exception as error:  # noqa: BLE001 -- Pub/Sub down: keep the message, try again later
            print(f"relay: dead-lettering a {function} message failed ({error}); trying again", flush=True)
            timer = threading.Timer(policy.max_backoff_s, self._dead_letter, args=(function, record, body, policy, attempts))
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            record.dead_lettered = True
            self.stats[function]["dead_lettered"] += 1
            _note(record, "dead-letter", None)

    @staticmethod
    def _may_kill(rule: Kill, record: MessageRecord) -> bool:
        if rule.count is not None and rule.count <= 0:
            return False
        return rule.max_per_message is None or record.kills < rule.max_per_message

    def _answered(self, function: str, record: MessageRecord, status: int, what: str = "push") -> None:
        with self._lock:
            _note(record, what, status)
            if what not in ("push", "retry"):
                return
            record.last_status = status
            if not _ok(status):
                self.stats[function]["failures"] += 1

    def _copy(self, function: str, record: MessageRecord, path: str, body: bytes, headers: dict[str, str],
              delay_s: float) -> None:
        time.sleep(delay_s)
        status, _ = self._forward(function, path, body, headers)
        self._answered(function, record, status, "copy")

    def _kill_later(self, function: str, record: MessageRecord, armed: _Armed) -> None:
        if armed.delay_passed():
            self._kill_now(function, record)

    def _kill_now(self, function: str, record: MessageRecord) -> bool:
        if not self.kill(function):
            return False
        with self._lock:
            record.kills += 1
            _note(record, "kill", None)
        return True

    def kill(self, function: str) -> bool:
        """SIGKILL the function's process group now (as a crash or Cloud Run reclaiming it)."""
        pid = kill_function_process(Path(self.routes[function]["pid_file"]))
        if pid is None:
            return False
        with self._lock:
            self.stats[function]["kills"] += 1
        print(f"relay: killed {function} (pid {pid}) mid-delivery", flush=True)
        return True

    def _forward(self, function: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST to the function; while no instance listens (one is starting), hold the request, as Cloud Run does."""
        with self._lock:
            self.stats[function]["forwarded"] += 1
        target = urlsplit(self.routes[function]["url"])
        deadline, waited = time.monotonic() + self.pending_s, False
        while True:
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=FORWARD_TIMEOUT_S)
            try:
                connection.connect()
                break
            except ConnectionRefusedError:
                connection.close()
                if not waited:
                    waited = True
                    with self._lock:
                        self.stats[function]["held"] += 1
                if time.monotonic() >= deadline:
                    return 429, f"no instance of {function} came up within {self.pending_s:g} s".encode()
                time.sleep(0.05)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            return 503, f"function {function} unreachable: {type(error).__name__}: {error}".encode()
        finally:
            connection.close()

    # ---------------------------------------------------------------- admin

    def set_faults(self, body: Any) -> None:
        rules, seed = parse_faults(body)
        with self._lock:
            self.rules = rules
            if seed is not None:
                self._rng.seed(seed)

    def faults(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {kind: [asdict(rule) for rule in rules] for kind, rules in self.rules.items()}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            functions = {name: dict(counts) for name, counts in self.stats.items()}
            totals = dict.fromkeys(_COUNTS, 0)
            for counts in functions.values():
                for name, value in counts.items():
                    totals[name] += value
            return {"functions": functions, "totals": totals}

    def message_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"message_id": key.split("/", 1)[1], **asdict(record)} for key, record in self.messages.items()]

    # ---------------------------------------------------------------- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_admin/"):
            return self._admin(request.method, path[len("/_admin/"):], request.get_data())
        function, _, rest = path.lstrip("/").partition("/")
        if request.method != "POST" or function not in self.routes:
            return _json({"error": f"no function {function!r} (POST /<function>/projects/P/topics/T)"}, 404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        status, answer = self.deliver(function, "/" + rest, request.get_data(), headers)
        return Response(answer, status=status)

    def _admin(self, method: str, action: str, raw: bytes) -> Response:
        if (method, action) == ("GET", "faults"):
            return _json(self.faults())
        if (method, action) == ("POST", "faults"):
            try:
                self.set_faults(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as error:
                return _json({"error": str(error)}, 400)
            return _json(self.faults())
        if (method, action) == ("POST", "reset"):
            self.reset()
            return _json({})
        if (method, action) == ("GET", "stats"):
            return _json(self.snapshot())
        if (method, action) == ("GET", "messages"):
            return _json({"messages": self.message_list()})
        return _json({"error": f"no admin route {method} {action}"}, 404)


class _Armed:
    """A kill waiting on one delivery: fired by the delay, or (``before_answer``) by the answer, never twice."""

    def __init__(self, after_s: float, before_answer: bool) -> None:
        self.after_s = after_s
        self.before_answer = before_answer
        self._answered = threading.Event()
        self._lock = threading.Lock()
        self._fired = False

    def _fire(self) -> bool:
        with self._lock:
            fired, self._fired = self._fired, True
        return not fired

    def delay_passed(self) -> bool:
        """In the killer thread: True if the kill is now due (the function has not answered)."""
        return not self._answered.wait(self.after_s) and self._fire()

    def answer_came(self) -> bool:
        """When the answer is in: True if the kill is due now (``before_answer`` and not fired yet)."""
        self._answered.set()
        return self.before_answer and self._fire()


def relay_routes(topology: Topology, urls: dict[str, str], pid_files: dict[str, str], *, retries: bool) -> dict[str, Any]:
    """The routes file's ``functions``: each function's URL and pid file, and its subscription's policy if ``retries``."""
    routes: dict[str, Any] = {name: {"url": url, "pid_file": pid_files[name]} for name, url in urls.items()}
    if retries:
        delivery, project = topology.push_delivery, topology.project
        for function in topology.functions:
            dead_letters = function.topic != delivery.dead_letter_topic  # the dead letters' own: no policy behind it
            routes[function.name]["retry"] = {
                "subscription": f"projects/{project}/subscriptions/{function.push_subscription}",
                "min_backoff_s": delivery.min_backoff_s,
                "max_backoff_s": delivery.max_backoff_s,
                "max_delivery_attempts": delivery.max_delivery_attempts,
                "dead_letter_topic": f"projects/{project}/topics/{delivery.dead_letter_topic}" if dead_letters else None,
            }
    return routes


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _with_delivery_attempt(body: bytes, attempt: int) -> bytes:
    """The push body as Pub/Sub sends it on a subscription with a dead-letter policy: ``deliveryAttempt`` set."""
    push = json.loads(body)
    push["deliveryAttempt"] = attempt
    return json.dumps(push).encode()


_publisher = None


def _publish(topic: str, data: bytes, attributes: dict[str, str]) -> None:
    """Publish through the Pub/Sub emulator (``PUBSUB_EMULATOR_HOST``)."""
    global _publisher
    if _publisher is None:
        from google.cloud import pubsub_v1

        _publisher = pubsub_v1.PublisherClient()
    _publisher.publish(topic, data, **attributes).result(timeout=30)


class RelayClient:
    """The relay's admin API, for tests and the chaos campaign (``LocalCloud.relay``)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def _call(self, action: str, body: Any = None) -> Any:
        connection = http.client.HTTPConnection(urlsplit(self.endpoint).hostname, urlsplit(self.endpoint).port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request("GET" if data is None else "POST", f"/_admin/{action}", body=data,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read() or b"null")
        finally:
            connection.close()
        if response.status != 200:
            raise FaultError(f"relay {action}: {response.status} {answer}")
        return answer

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the faults: ``set_faults(duplicate={"copies": 2}, kill=[...])``; none clears them."""
        return self._call("faults", faults)

    def faults(self) -> dict[str, Any]:
        return self._call("faults")

    def clear(self) -> None:
        self._call("faults", {})

    def reset(self) -> None:
        """Faults and statistics cleared."""
        self._call("reset", {})

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def messages(self) -> list[dict[str, Any]]:
        return self._call("messages")["messages"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.push_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--routes", type=Path, required=True, help="JSON: function name -> url, pid_file")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pending-s", type=float, default=PENDING_S, help="how long a delivery waits for an instance")
    args = parser.parse_args(argv)
    relay = Relay(json.loads(args.routes.read_text())["functions"], seed=args.seed, pending_s=args.pending_s)
    server = make_server(args.host, args.port, relay, threaded=True)
    server.daemon_threads = True

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
