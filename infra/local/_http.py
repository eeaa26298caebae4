"""What the local Compute Engine and Vertex AI stand-ins share.

* ``ApiHandler``: a JSON-over-HTTP request handler with a route table, and
  ``ApiError``, which it renders in Google's error shape
  (``{"error": {"code", "message", "status"?, "errors"?: [...]}}``) so that the
  official clients raise their real exceptions (``NotFound``, ``Conflict``...).
* ``serve``: the command-line bootstrap both servers use: bind, print
  ``listening on HOST:PORT``, stop on SIGTERM/SIGINT and run a cleanup hook.
* ``spawn`` / ``kill_groups``: child processes in their own process group, so a
  whole tree (bash and everything it started) is stopped with one signal.
* ``parse_filter`` / ``matches_filter``: the small subset of the list-filter
  languages (GCE's and AIP-160's) that callers of these servers use.
* Time and id helpers (RFC 3339 timestamps, a stable project number).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JsonDict = dict[str, Any]


# --------------------------------------------------------------------------- time, ids


def rfc3339(ts: float | None = None) -> str:
    """``2026-11-24T21:43:56.123456Z``: the form both APIs accept and return."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_number(project_id: str) -> str:
    """A stable 12-digit stand-in for the project's number.

    Real APIs put the project *number* in some resource names (Vertex AI job
    names, the metadata server's zone); code must not assume it sees the id.
    """
    return str(100_000_000_000 + zlib.crc32(project_id.encode()) % 900_000_000_000)


def parse_duration_s(value: Any) -> float | None:
    """Seconds from a protobuf Duration in JSON: ``"90s"``, ``"1.5s"`` or ``{"seconds": "90"}``."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    text = str(value).strip()
    return float(text[:-1] if text.endswith("s") else text)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An HTTP error in Google's JSON shape.

    ``status`` is the google.rpc code name (AIP style, Vertex AI); ``reason`` the
    legacy per-error reason (GCE style: ``notFound``, ``alreadyExists``).
    """

    def __init__(self, code: int, message: str, *, status: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.reason = reason

    def to_json(self) -> JsonDict:
        error: JsonDict = {"code": self.code, "message": self.message}
        if self.status:
            error["status"] = self.status
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        return {"error": error}


# --------------------------------------------------------------------------- HTTP


@dataclass
class Request:
    """What a route function gets: path captures, query parameters, JSON body."""

    params: dict[str, str]
    query: dict[str, str]
    body: JsonDict


Route = tuple[str, "re.Pattern[str]", Callable[[Request], Any]]


def route(method: str, pattern: str, func: Callable[[Request], Any]) -> Route:
    """A route; ``{name}`` in the pattern captures one path segment."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return method, re.compile(f"^{regex}$"), func


class ApiHandler(BaseHTTPRequestHandler):
    """Dispatches requests to the server's route table and writes JSON replies.

    A route function returns a dict (sent as 200 JSON) or raises ``ApiError``.
    The route table lives on the server object (``server.routes``), so one
    handler class serves both the Compute Engine and the Vertex AI stand-in.
    """

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the per-request access log: tests poll a lot."""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = self._read_json()
            for route_method, regex, func in self.server.routes:  # type: ignore[attr-defined]
                match = regex.match(url.path)
                if match and route_method == method:
                    self.send_json(200, func(Request(match.groupdict(), query, body)))
                    return
            raise ApiError(404, f"No route for {method} {url.path}", status="NOT_FOUND", reason="notFound")
        except ApiError as err:
            self.send_json(err.code, err.to_json())

    def _read_json(self) -> JsonDict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as err:
            message = f"Invalid JSON payload received. {err}"
            raise ApiError(400, message, status="INVALID_ARGUMENT", reason="parseError") from err
        if not isinstance(body, dict):
            raise ApiError(
                400, "Invalid JSON payload: expected an object", status="INVALID_ARGUMENT", reason="parseError"
            )
        return body

    def send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ApiServer(ThreadingHTTPServer):
    """A threading HTTP server that carries its route table."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: list[Route], handler: type = ApiHandler) -> None:
        super().__init__(address, handler)
        self.routes = routes


def server_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The command line both servers share: ``--port``, ``--project``, ``--host``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    if extra:
        extra(parser)
    return parser.parse_args()


def serve(server: ApiServer, on_shutdown: Callable[[], None]) -> None:
    """Serve until SIGTERM or SIGINT, then run ``on_shutdown`` and return.

    ``serve_forever`` runs in the main thread, and ``shutdown()`` blocks until it
    returns, so the signal handler hands the shutdown to a helper thread.
    """

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        on_shutdown()


# --------------------------------------------------------------------------- processes


def spawn(
    argv: list[str], *, cwd: str, env: Mapping[str, str], log_path: str, stderr_path: str | None = None
) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group), output to ``log_path``.

    stderr goes to ``stderr_path`` when given, else to the same log. Its own
    group, so that stopping it also stops everything it started
    (``kill_groups``), and a Ctrl-C in the server's terminal is not sent to it.
    """
    with open(log_path, "ab") as out, open(stderr_path or os.devnull, "ab") as err:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err if stderr_path else subprocess.STDOUT,
            start_new_session=True,
        )


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the whole group is gone already
        os.killpg(proc.pid, signum)


def kill_groups(procs: Iterable[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each process group, wait up to ``grace_s`` for the leaders, then SIGKILL.

    The SIGKILL goes to every group even when its leader has exited, because
    a leader (bash) can die while its children (the renderer) live on.
    """
    procs = list(procs)
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        _signal_group(proc, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def exit_status(returncode: int) -> int:
    """A shell-style exit status: a death by signal N reads as 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def last_line(path: str, limit: int = 64 * 1024) -> str:
    """The last non-empty line of a log file (its tail only, so big logs are cheap)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - limit))
            tail = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------- list filters


@dataclass(frozen=True)
class Clause:
    """One ``field OP value`` comparison of a list filter."""

    field: str
    op: str  # "=", "!=" or ":" (has)
    value: str


_CLAUSE = re.compile(
    r"""^\(?\s*(?P<field>[A-Za-z_][\w.\-"]*)\s*(?P<op>!=|=|:|\beq\b|\bne\b)\s*(?P<value>"[^"]*"|'[^']*'|[^\s()]+)\s*\)?$"""
)


def parse_filter(expression: str) -> list[Clause]:
    """Clauses of a filter such as ``labels.fast-render-job="x" AND status=RUNNING``.

    Only conjunctions of simple comparisons are understood (what callers here
    use). A clause this parser does not understand is skipped rather than
    rejected, so an unsupported filter widens a listing instead of failing it.
    """
    clauses = []
    for part in re.split(r"\s+AND\s+|\)\s+\(", expression.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part.strip())
        if not match:
            continue
        op = {"eq": "=", "ne": "!="}.get(match["op"], match["op"])
        value = match["value"]
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        clauses.append(Clause(match["field"].replace('"', ""), op, value))
    return clauses


def matches_filter(clauses: list[Clause], fields: Callable[[str], str | None]) -> bool:
    """Whether a resource passes every clause; ``fields(name)`` reads one field.

    ``fields`` returns None for a field the resource lacks (e.g. a missing label).
    ``:*`` means "has the field"; ``*`` inside a value is a wildcard.
    """
    for clause in clauses:
        actual = fields(clause.field)
        if clause.op == ":":
            ok = actual is not None and (clause.value == "*" or clause.value in actual)
        else:
            pattern = "^" + ".*".join(re.escape(piece) for piece in clause.value.split("*")) + "$"
            equal = actual is not None and re.match(pattern, actual) is not None
            ok = equal if clause.op == "=" else not equal
        if not ok:
            return False
    return True
