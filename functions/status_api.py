"""``/status``: the operators' view and controls over HTTP, as JSON (an HTTP Cloud Function).

    GET  /status?state=&since=&limit=&cursor=   jobs, newest change first: {"jobs", "cursor", "generated_at"}
    GET  /status/vms                            our VMs: {"vms", "generated_at"}
    GET  /status/<job_id>                       one job: its row, timeline, runs and VM attempts
    POST /status/<job_id>/launch                body {"gpu"?, "provisioning"?}: render it on a VM now
    POST /status/<job_id>/retry                 start a failed or cancelled job again
    POST /status/<job_id>/cancel                stop it: it ends cancelled

The data is ``operators.views``' (what ``avmonitor`` prints) and the controls
are ``operators.controls``', with the caller's identity as the operator. Every
request needs a bearer token (``functions/status_auth.py``); writes need an
operator. Every answer is JSON; an error is ``{"error": "one line"}`` with
400 (bad input), 401 (no or bad token), 403 (a reader writing), 404 (no such
job or route), 405 (wrong method), 409 (the job's state refuses the control),
503 (a dependency is unreachable). ``infra/status.schema.json`` describes it
all; ``docs/status-api.md`` has examples.

Routes are relative to the function's URL: in the cloud the platform strips the
function's name (``.../status/x`` arrives as ``/x``), functions-framework locally
does not (``/status/x``), so a leading ``/status`` segment is dropped once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import flask
import functions_framework

from functions.status_auth import Identity

FUNCTION_NAME = "status"  # infra/topology.yaml's http_functions
ACTIONS = {"launch": ("gpu", "provisioning"), "retry": (), "cancel": ()}  # control -> the body's fields
QUERY = ("state", "since", "limit", "cursor")
DEFAULT_LIMIT = 50


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@functions_framework.http
def status_api(request: flask.Request) -> flask.Response:
    from functions.status_auth import AuthError, authenticate

    began, identity, headers = time.monotonic(), None, {}
    try:
        identity = authenticate(request.headers.get("Authorization"))  # first: nothing is answered without it
        status, body = _route(request, identity)
    except AuthError as error:
        _log().warning("status request refused", method=request.method, path=request.path, status=error.status,
                       reason=str(error))
        headers = {"WWW-Authenticate": 'Bearer realm="status"'} if error.status == 401 else {}
        status, body = error.status, {"error": str(error)}
    except HttpError as error:
        status, body, headers = error.status, {"error": _one_line(error)}, error.headers
    except Exception as error:  # noqa: BLE001 -- a JSON answer and a log line, never an HTML traceback
        status, message = _unexpected(error)
        _log().error("status request failed", method=request.method, path=request.path, status=status,
                     error=f"{type(error).__name__}: {error}"[:500])
        body = {"error": message}
    if request.method == "POST" and identity is not None:  # who tried which control, and what came of it
        _log().log("INFO" if status < 400 else "WARNING", "status control", path=request.path, operator=identity.name,
                   status=status, error=body.get("error"), ms=round((time.monotonic() - began) * 1000))
    return _json(status, body, headers)


# ---------------------------------------------------------------- routing


def _route(request: flask.Request, identity: Identity) -> tuple[int, dict[str, Any]]:
    parts = [part for part in request.path.split("/") if part]
    if parts[:1] == [FUNCTION_NAME]:
        parts = parts[1:]
    if not parts:
        _allow(request, "GET")
        return 200, _list_jobs(request.args)
    if parts == ["vms"]:
        _allow(request, "GET")
        return 200, _list_vms(request.args)
    if len(parts) == 1:
        _allow(request, "GET")
        return 200, _call(_views().job_detail, parts[0])
    if len(parts) == 2 and parts[1] in ACTIONS:
        _allow(request, "POST")
        from functions.status_auth import require_writer

        require_writer(identity)
        return 200, _control(parts[0], parts[1], _body(request, ACTIONS[parts[1]]), identity.name)
    raise HttpError(404, f"no route {request.path}; see GET /status, /status/vms, /status/<job_id>")


def _allow(request: flask.Request, method: str) -> None:
    allowed = ("GET", "HEAD") if method == "GET" else (method,)
    if request.method not in allowed:
        raise HttpError(405, f"{request.method} is not allowed on {request.path}; use {method}",
                        {"Allow": ", ".join(allowed)})


def _list_jobs(args) -> dict[str, Any]:
    views = _views()
    _only(args, QUERY)
    status = _call(views.parse_status, args.get("state") or None)
    since_s = _call(views.parse_duration_s, args["since"]) if args.get("since") else None
    limit = _int(args.get("limit"), DEFAULT_LIMIT, "limit")
    cursor = _decode_cursor(args.get("cursor") or None)
    rows, next_cursor = _call(views.list_jobs, status=status, since_s=since_s, limit=limit, cursor=cursor)
    return {"jobs": rows, "cursor": _encode_cursor(next_cursor), "generated_at": _now()}


def _list_vms(args) -> dict[str, Any]:
    _only(args, ())
    return {"vms": _call(_views().list_vms), "generated_at": _now()}


def _control(job_id: str, action: str, body: dict[str, Any], operator: str) -> dict[str, Any]:
    from operators import controls

    row = _call(getattr(controls, action), job_id, **body, operator=operator)
    return {"action": action, "operator": operator, "job": row}


def _body(request: flask.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The POST body: empty, or a JSON object of the control's optional string fields."""
    raw = request.get_data(cache=False, as_text=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HttpError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}; this control takes {', '.join(fields) or 'no fields'}")
    for name, value in body.items():
        if value is not None and not isinstance(value, str):
            raise HttpError(400, f"{name} must be a string")
    return body


# ---------------------------------------------------------------- parsing and errors


def _only(args, names: tuple[str, ...]) -> None:
    unknown = sorted(set(args) - set(names))
    if unknown:  # a typo (status= for state=) would otherwise silently list everything
        raise HttpError(400, f"unknown query parameter {unknown[0]!r}; known: {', '.join(names) or 'none'}")


def _int(text: str | None, default: int, name: str) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,6}", text):
        raise HttpError(400, f"{name}: {text!r} is not a whole number")
    return int(text)


# The store's cursor holds a timestamp ("...+00:00|job"), whose '+' a query string
# turns into a space: clients get it base64url-encoded, opaque, safe to paste.
def _encode_cursor(cursor: str | None) -> str | None:
    return None if cursor is None else base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")


def _decode_cursor(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        cursor = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        cursor = ""
    if "|" not in cursor:
        raise HttpError(400, "cursor: not a cursor from a previous page")
    return cursor


def _call(function, *args, **kwargs):
    """Call views or controls; their OperatorError becomes the HTTP error it means."""
    from operators.errors import ConflictError, NotFoundError, OperatorError

    try:
        return function(*args, **kwargs)
    except OperatorError as error:  # bad input 400, no such job 404, refused by the job's state 409
        status = 404 if isinstance(error, NotFoundError) else 409 if isinstance(error, ConflictError) else 400
        raise HttpError(status, _one_line(error)) from None


def _unexpected(error: Exception) -> tuple[int, str]:
    from google.api_core import exceptions

    if isinstance(error, (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError)):
        return 503, f"a dependency is unreachable ({type(error).__name__}); try again"
    return 500, f"internal error ({type(error).__name__}); see the function's log"


def _one_line(error: Exception) -> str:
    """One line, naming query parameters as such: views say ``--state:`` for the CLI's flags."""
    line = " ".join(str(error).split())
    return line.removeprefix("--")


# ---------------------------------------------------------------- helpers


def _views():
    from operators import views  # on first call, as every handler imports its modules

    return views


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(json.dumps(body, default=str, ensure_ascii=False) + "\n", status=status,
                              mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"  # job state, and never cached with someone's token
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _log():
    from common.logs import get_logger

    return get_logger("status_api")
