"""``/status``: the operators' view and controls over HTTP as JSON, and the dashboard on them (an HTTP Cloud Function).

    GET  /status?state=&since=&limit=&cursor=   jobs, newest change first: {"jobs", "cursor", "generated_at"}
    GET  /status/whoami                         the caller: {"identity", "can_write", "generated_at"}
    GET  /status/vms?stale_after=               our VMs: {"vms", "generated_at"}
    GET  /status/cost?since=7d                  operators.cost's report: jobs, days, totals, speeds
    GET  /status/speeds                         render seconds per video second by GPU, learned against the catalog
    GET  /status/ab                             operators.ab's experiments (501 while that module is missing)
    GET  /status/<job_id>                       one job: its row, timeline, runs and VM attempts
    GET  /status/<job_id>/logs?limit=           the job's log lines from every function and its VMs
    GET  /status/<job_id>/video                 the job's video (video/mp4), streamed from its bucket
    POST /status/<job_id>/launch                body {"gpu"?, "provisioning"?}: render it on a VM now
    POST /status/<job_id>/retry                 start a failed or cancelled job again
    POST /status/<job_id>/cancel                stop it: it ends cancelled
    GET  /status/dashboard/[FILE]               the web dashboard: static files of dashboard/, no token

The data is ``operators.views``' (what ``avmonitor`` prints) and the controls
are ``operators.controls``', with the caller's identity as the operator. Every
request but the dashboard's files needs a bearer token
(``functions/status_auth.py``); writes need an operator. The dashboard's files
hold no data: its script calls the routes above with the token the operator
gave it, in the ``Authorization`` header like any client. Every answer but the
files and the video is JSON; an error is ``{"error": "one line"}`` with 400
(bad input), 401 (no or bad token), 403 (a reader writing, or a request a
browser made from another site), 404 (no such job or route), 405 (wrong
method), 409 (the job's state refuses the control), 501 (a report whose module
is not deployed), 503 (a dependency is unreachable). ``infra/status.schema.json``
describes it all; ``docs/status-api.md`` has examples.

Routes are relative to the function's URL: in the cloud the platform strips the
function's name (``.../status/x`` arrives as ``/x``), functions-framework locally
does not (``/status/x``), so a leading ``/status`` segment is dropped once.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flask
import functions_framework

from functions.status_auth import Identity

FUNCTION_NAME = "status"  # infra/topology.yaml's http_functions
ACTIONS = {"launch": ("gpu", "provisioning"), "retry": (), "cancel": ()}  # control -> the body's fields
QUERY = ("state", "since", "limit", "cursor")
DEFAULT_LIMIT = 50
DEFAULT_COST_SINCE = "7d"
DEFAULT_LOG_LINES = 500
# Names the first segment cannot mean as a job (so jobs with these names are not reachable here).
REPORTS = ("whoami", "vms", "cost", "speeds", "ab")
DASHBOARD = "dashboard"
DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"  # deployed with the source (--source=.)
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9]+)+$")  # app.js, uplot.min.css: one plain name, no path
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".txt": "text/plain; charset=utf-8", ".ico": "image/x-icon"}
# The dashboard runs only its own files, talks only to this function, cannot be framed (no clickjacking of
# its controls) and posts no forms; the video plays from a blob: URL the script makes of the fetched file.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "media-src blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # small files: always revalidated, so a deploy is seen at the next load
}


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@functions_framework.http
def status_api(request: flask.Request) -> flask.Response:
    from functions.status_auth import AuthError, authenticate, refuse_cross_site

    began, identity, headers = time.monotonic(), None, {}
    try:
        parts = _parts(request.path)
        if parts[:1] == [DASHBOARD]:
            return _dashboard(request, parts[1:])  # static files, no data: the only answers without a token
        identity = authenticate(request.headers.get("Authorization"))  # first: nothing is answered without it
        refuse_cross_site(request.headers.get("Sec-Fetch-Site"))
        answer = _route(request, parts, identity)
        if isinstance(answer, flask.Response):
            return answer
        status, body = answer
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


def _parts(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    return parts[1:] if parts[:1] == [FUNCTION_NAME] else parts


def _route(request: flask.Request, parts: list[str], identity: Identity) -> tuple[int, dict[str, Any]] | flask.Response:
    if not parts:
        _allow(request, "GET")
        return 200, _list_jobs(request.args)
    if len(parts) == 1 and parts[0] in REPORTS:
        _allow(request, "GET")
        return 200, _report(parts[0], request.args, identity)
    if len(parts) == 1:
        _allow(request, "GET")
        return 200, _call(_views().job_detail, parts[0])
    if len(parts) == 2 and parts[1] == "logs":
        _allow(request, "GET")
        _only(request.args, ("limit",))
        return 200, _call(_job_logs, parts[0], _int(request.args.get("limit"), DEFAULT_LOG_LINES, "limit"))
    if len(parts) == 2 and parts[1] == "video":
        _allow(request, "GET")
        return _video(parts[0])
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
    views = _views()
    _only(args, ("stale_after",))
    stale_after_s = None  # the watchdog's heartbeat timeout
    if args.get("stale_after"):
        try:
            stale_after_s = views.parse_duration_s(args["stale_after"])
        except views.OperatorError:
            raise HttpError(400, f"stale_after: {args['stale_after']!r} is not a duration like 30s or 5m") from None
    return {"vms": _call(views.list_vms, stale_after_s), "generated_at": _now()}


def _report(name: str, args, identity: Identity) -> dict[str, Any]:
    if name == "vms":
        return _list_vms(args)
    _only(args, ("since",) if name == "cost" else ())
    if name == "whoami":  # what the dashboard asks first: whether to show the controls
        return {"identity": identity.name, "can_write": identity.can_write, "generated_at": _now()}
    if name == "cost":
        from operators.cost import cost_report

        since_s = _call(_views().parse_duration_s, args.get("since") or DEFAULT_COST_SINCE)
        return {**_call(cost_report, since_s), "generated_at": _now()}  # ISO, as every answer (the report's is epoch)
    if name == "speeds":
        from catalog.model import load_catalog
        from functions import memory
        from operators.cost import speeds

        return {"speeds": speeds(load_catalog(), memory.learned_speeds()), "generated_at": _now()}
    try:
        from operators.ab import ab_report
    except ModuleNotFoundError as error:
        if error.name != "operators.ab":
            raise
        raise HttpError(501, "no A/B report here: operators/ab.py is not deployed with this function") from None
    return {**_call(ab_report), "generated_at": _now()}


def _job_logs(job_id: str, limit: int) -> dict[str, Any]:
    """``avmonitor logs JOB``'s lines: from the local cloud's log folder where ``LOCAL_CLOUD_LOG_DIR`` names one
    (as the CLI reads it), else Cloud Logging; then the job's VMs' serial ports."""
    from operators import logs

    if limit < 1 or limit > 5000:
        raise HttpError(400, f"limit: {limit} is not between 1 and 5000")
    state, log_dir = _views().get_job(job_id), os.environ.get("LOCAL_CLOUD_LOG_DIR")
    # operators.logs has no public reader yet: its command's own steps, in its order.
    lines = logs._from_files(Path(log_dir), job_id) if log_dir else logs._from_cloud_logging(job_id, limit)
    lines = sorted(lines + logs._from_serial_ports(state), key=lambda line: line.get("time") or "")[-limit:]
    return {"job_id": job_id, "lines": [{k: line.get(k) for k in ("time", "source", "severity", "message")}
                                        for line in lines], "generated_at": _now()}


def _video(job_id: str) -> flask.Response:
    """The job's delivered video, streamed from its bucket (the dashboard plays it from a blob)."""
    from functions import clients

    state = _call(_views().get_job, job_id)
    bucket, _, name = (state.result.video or "").removeprefix("gs://").partition("/")
    if not name:
        raise HttpError(404, f"job {job_id!r} has no video yet (it is {state.status.value})")
    blob = clients.storage_client().bucket(bucket).get_blob(name)
    if blob is None:
        raise HttpError(404, f"the video {state.result.video} is gone from its bucket")
    reader = blob.open("rb", chunk_size=1 << 20)

    def chunks():
        with reader:
            while chunk := reader.read(1 << 20):
                yield chunk

    response = flask.Response(chunks(), mimetype=blob.content_type or "video/mp4")
    response.headers.update({"Content-Length": str(blob.size), "Cache-Control": "no-store",
                             "Content-Disposition": f'inline; filename="{job_id}.mp4"'})
    return response


def _dashboard(request: flask.Request, parts: list[str]) -> flask.Response:
    """A file of ``dashboard/``: the page and its script and styles, the same for everyone (no data in them)."""
    _allow(request, "GET")
    if not parts and not request.path.endswith("/"):  # so that the page's relative links resolve under it
        return flask.Response(status=308, headers={"Location": f"{DASHBOARD}/", **DASHBOARD_HEADERS})
    name = parts[0] if len(parts) == 1 else "index.html" if not parts else ""
    path = DASHBOARD_DIR / name
    if not _ASSET.match(name) or not path.is_file():
        raise HttpError(404, f"no dashboard file {'/'.join(parts)!r}")
    response = flask.Response(path.read_bytes(), status=200,
                              content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
    response.headers.update(DASHBOARD_HEADERS)
    return response


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
