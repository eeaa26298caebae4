"""Between Pub/Sub's pushes and the functions: a pass-through that can misbehave as the cloud may.

    python -m infra.local.push_relay --port 8793 --routes .local-cloud/relay-routes.json

Every function's push subscription points here
(``http://127.0.0.1:RELAY/<function-name>/projects/P/topics/T``). The relay posts
the push body to the function's own URL (path ``/projects/P/topics/T``, from which
functions-framework builds the CloudEvent) and answers the emulator with the
function's status, so Pub/Sub's retry and dead-letter policy behave as without
it; an unreachable (killed, restarting) function is a 503. With no faults it
does nothing else.

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
  after a random ``after_ms`` delay; the delivery fails, the emulator redelivers
  after its backoff, the supervisor restarts the function. ``max_per_message``
  (default: no limit) and ``count`` (total kills; default: no limit) bound it.

``GET /_admin/faults`` shows them (with what is left of each count);
``POST /_admin/reset`` clears faults and statistics; ``GET /_admin/stats``
counts per function (``deliveries`` from the emulator, ``forwarded`` to the
function, ``duplicates``, ``drops``, ``kills``, ``failures``: non-2xx answers to
the emulator); ``GET /_admin/messages`` lists each message id seen with its
function, attempts and last status.

The routes file: ``{"functions": {"<name>": {"url": "http://127.0.0.1:PORT", "pid_file": "..."}}}``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from infra.local.supervise import read_pid

HOST = "127.0.0.1"
FORWARD_TIMEOUT_S = 600.0  # the push subscriptions' ack deadline (topology push_delivery)
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
    max_per_message: int | None = None
    count: int | None = None  # kills left in all (None: no limit)


_KINDS: dict[str, type[Rule]] = {"duplicate": Duplicate, "drop_once": DropOnce, "kill": Kill}


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
    attempts: int = 0  # pushes from the emulator
    copies: int = 0  # extra deliveries made here
    kills: int = 0
    last_status: int | None = None
    first_at: float = field(default_factory=time.time)
    last_at: float = field(default_factory=time.time)


class Relay:
    """The routing, the faults and the counts; ``handle`` is the WSGI side."""

    def __init__(self, routes: dict[str, dict[str, str]], seed: int | None = None) -> None:
        self.routes = routes
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.rules: dict[str, list[Rule]] = {kind: [] for kind in _KINDS}
        self.stats: dict[str, dict[str, int]] = {}
        self.messages: dict[str, MessageRecord] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.rules = {kind: [] for kind in _KINDS}
            self.stats = defaultdict(lambda: dict.fromkeys(("deliveries", "forwarded", "duplicates", "drops", "kills", "failures"), 0))
            self.messages = {}

    # ---------------------------------------------------------------- one push

    def deliver(self, function: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        message_id, text = message_text(body)
        key = f"{function}/{message_id}" if message_id else ""
        with self._lock:
            stats = self.stats[function]
            stats["deliveries"] += 1
            record = self.messages.setdefault(key, MessageRecord(function)) if key else MessageRecord(function)
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
            kill = None
            if drop is None:
                kill = next((r for r in self.rules["kill"] if self._may_kill(r, record) and r.applies(function, text, self._rng)), None)
                if kill is not None and kill.count is not None:
                    kill.count -= 1
            delays = []
            if duplicate is not None:
                delays = [self._rng.uniform(duplicate.min_delay_s, duplicate.max_delay_s) for _ in range(duplicate.copies - 1)]
                stats["duplicates"] += len(delays)
                record.copies += len(delays)
            kill_after_s = self._rng.uniform(*kill.after_ms) / 1000 if kill is not None else None
        if drop is not None:
            self._answered(function, record, 200)
            return 200, b""
        for delay in delays:
            threading.Thread(target=self._copy, args=(function, path, body, headers, delay), daemon=True).start()
        in_flight = threading.Event()
        if kill_after_s is not None:
            threading.Thread(target=self._kill_later, args=(function, record, kill_after_s, in_flight), daemon=True).start()
        status, answer = self._forward(function, path, body, headers)
        in_flight.set()
        self._answered(function, record, status)
        return status, answer

    @staticmethod
    def _may_kill(rule: Kill, record: MessageRecord) -> bool:
        if rule.count is not None and rule.count <= 0:
            return False
        return rule.max_per_message is None or record.kills < rule.max_per_message

    def _answered(self, function: str, record: MessageRecord, status: int) -> None:
        with self._lock:
            record.last_status = status
            if not 200 <= status < 300:
                self.stats[function]["failures"] += 1

    def _copy(self, function: str, path: str, body: bytes, headers: dict[str, str], delay_s: float) -> None:
        time.sleep(delay_s)
        self._forward(function, path, body, headers)

    def _kill_later(self, function: str, record: MessageRecord, after_s: float, done: threading.Event) -> None:
        if done.wait(after_s):
            return  # the function answered first: nothing to kill
        if self.kill(function):
            with self._lock:
                record.kills += 1

    def kill(self, function: str) -> bool:
        """SIGKILL the function's process group now (as a crash or Cloud Run reclaiming it)."""
        pid = read_pid(Path(self.routes[function]["pid_file"]))
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        with self._lock:
            self.stats[function]["kills"] += 1
        print(f"relay: killed {function} (pid {pid}) mid-delivery", flush=True)
        return True

    def _forward(self, function: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            self.stats[function]["forwarded"] += 1
        target = urlsplit(self.routes[function]["url"])
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=FORWARD_TIMEOUT_S)
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
            totals = dict.fromkeys(("deliveries", "forwarded", "duplicates", "drops", "kills", "failures"), 0)
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
    args = parser.parse_args(argv)
    relay = Relay(json.loads(args.routes.read_text())["functions"], seed=args.seed)
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
