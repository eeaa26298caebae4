"""A GCE metadata server for one local instance (one port per instance).

The local Compute Engine (``compute_server``) starts one of these for each
instance it runs, on a free port of the same host, and gives the instance's
startup script ``GCE_METADATA_HOST=HOST:PORT`` (and ``GCE_METADATA_IP``, which
google-auth pings to detect GCE). A port per instance, rather than one shared
port with the instance in the path, because clients build the URL as
``http://$GCE_METADATA_HOST/computeMetadata/v1/...`` and there is no room for an
instance name in it.

What it serves, under ``/computeMetadata/v1/`` (as the real one does):

* ``instance/name``, ``instance/id``, ``instance/hostname``,
  ``instance/zone`` (``projects/NUMBER/zones/ZONE``),
  ``instance/machine-type`` (``projects/NUMBER/machineTypes/TYPE``),
  ``instance/preempted`` (``TRUE`` once a Spot preemption has begun),
  ``instance/scheduling/preemptible``, ``instance/maintenance-event``,
  ``instance/attributes/KEY``, ``instance/attributes/?recursive=true`` (JSON),
  ``instance/service-accounts/default/{email,scopes,token}`` (a fake token:
  the local emulators take no credentials), ``project/project-id``,
  ``project/numeric-project-id``. A directory lists its entries; with
  ``?recursive=true`` it is JSON (keys in camelCase, except attribute keys).
* ``?wait_for_change=true`` (with ``last_etag`` / ``timeout_sec``) blocks until
  the value's ETag changes, e.g. to watch ``instance/preempted``.
* Every request must carry ``Metadata-Flavor: Google``, else 403, like the real
  server; every reply carries it too.

Sources: https://cloud.google.com/compute/docs/metadata/querying-metadata (the
header, ``wait_for_change``, ``recursive``) and the Spot VM docs for
``instance/preempted``; the full table is ``docs/standins.md``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/computeMetadata/v1/"
_TOKEN_PATH = "instance/service-accounts/default/token"
_MAX_WAIT_S = 300.0


@dataclass
class InstanceView:
    """What the metadata server knows of its instance, read afresh per request."""

    name: str
    instance_id: str
    zone: str
    project_id: str
    project_number: str
    machine_type: str
    attributes: dict[str, str] = field(default_factory=dict)
    preemptible: bool = False
    preempted: bool = False
    # The insert's serviceAccounts[0]: "default" is the project's default compute account, as on GCE.
    service_account: str = "default"
    scopes: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def metadata_tree(view: InstanceView) -> dict[str, Any]:
    """The metadata directory tree; leaves are strings."""
    return {
        "instance": {
            "attributes": dict(view.attributes),
            "hostname": f"{view.name}.{view.zone}.c.{view.project_id}.internal",
            "id": view.instance_id,
            "machine-type": f"projects/{view.project_number}/machineTypes/{view.machine_type}",
            "maintenance-event": "NONE",
            "name": view.name,
            "preempted": _bool(view.preempted),
            "scheduling": {
                "automatic-restart": _bool(not view.preemptible),
                "on-host-maintenance": "TERMINATE" if view.preemptible else "MIGRATE",
                "preemptible": _bool(view.preemptible),
            },
            "service-accounts": {
                "default": {
                    "aliases": "default",
                    "email": (f"{view.project_number}-compute@developer.gserviceaccount.com"
                              if view.service_account in ("", "default") else view.service_account),
                    # One scope per line, the ones the instance was created with (GCE's metadata server:
                    # https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys, service-accounts/).
                    "scopes": "\n".join(view.scopes) + "\n",
                },
            },
            "zone": f"projects/{view.project_number}/zones/{view.zone}",
        },
        "project": {"numeric-project-id": view.project_number, "project-id": view.project_id},
    }


def _camel(key: str) -> str:
    head, *rest = key.split("-")
    return head + "".join(part.title() for part in rest)


def _as_json(node: Any, keep_keys: bool = False) -> Any:
    """A directory as the real server's recursive JSON: camelCase keys, but
    user-defined attribute keys kept as written."""
    if not isinstance(node, dict):
        return node
    return {
        (key if keep_keys else _camel(key)): _as_json(value, keep_keys=keep_keys or key == "attributes")
        for key, value in node.items()
    }


def resolve(view: InstanceView, path: str, recursive: bool) -> tuple[str, str] | None:
    """``(content_type, body)`` for a metadata path, or None when there is none."""
    if path == _TOKEN_PATH:
        token = {"access_token": "local-fake-token", "expires_in": 3599, "token_type": "Bearer"}
        return "application/json", json.dumps(token)
    node: Any = metadata_tree(view)
    parts = [part for part in path.split("/") if part]
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if not isinstance(node, dict):
        return "application/text", node
    if recursive:
        return "application/json", json.dumps(_as_json(node, keep_keys=parts[-1:] == ["attributes"]))
    listing = "".join(f"{key}/\n" if isinstance(value, dict) else f"{key}\n" for key, value in node.items())
    return "application/text", listing


def _etag(body: str) -> str:
    return hashlib.sha1(body.encode()).hexdigest()[:16]


class _MetadataHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """No access log: the worker may poll ``instance/preempted`` often."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if url.path in ("", "/"):
            self._reply(200, "application/text", "computeMetadata/\n")
            return
        if self.headers.get("Metadata-Flavor") != "Google":
            self._reply(403, "text/html", "Missing required header: Metadata-Flavor: Google\n")
            return
        if not url.path.startswith(PREFIX):
            self._reply(404, "text/html", "Not Found\n")
            return
        path = url.path[len(PREFIX) :]
        recursive = query.get("recursive", "").lower() == "true"
        snapshot: Callable[[], InstanceView] = self.server.snapshot  # type: ignore[attr-defined]
        found = resolve(snapshot(), path, recursive)
        if found is not None and query.get("wait_for_change", "").lower() == "true":
            found = self._wait_for_change(snapshot, path, recursive, found, query)
        if found is None:
            self._reply(404, "text/html", "Not Found\n")
            return
        self._reply(200, *found)

    def _wait_for_change(
        self,
        snapshot: Callable[[], InstanceView],
        path: str,
        recursive: bool,
        current: tuple[str, str],
        query: dict[str, str],
    ) -> tuple[str, str] | None:
        """Block until the value's ETag differs from ``last_etag`` (or from now)."""
        last = query.get("last_etag") or _etag(current[1])
        deadline = time.monotonic() + min(float(query.get("timeout_sec") or _MAX_WAIT_S), _MAX_WAIT_S)
        found: tuple[str, str] | None = current
        while found is not None and _etag(found[1]) == last and time.monotonic() < deadline:
            time.sleep(0.05)
            found = resolve(snapshot(), path, recursive)
        return found

    def _reply(self, code: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", content_type)
        self.send_header("ETag", _etag(body))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class MetadataServer:
    """One instance's metadata server, serving from a background thread."""

    def __init__(self, host: str, snapshot: Callable[[], InstanceView]) -> None:
        self._server = ThreadingHTTPServer((host, 0), _MetadataHandler)
        self._server.daemon_threads = True
        self._server.snapshot = snapshot  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``HOST:PORT``, the value for ``GCE_METADATA_HOST``."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
