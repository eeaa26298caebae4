"""The local cloud's HTTP functions (``http_functions:`` in the topology): how each is served and reached.

In the cloud, IAM lets only invokers reach an HTTP function, and the function
checks the Google-signed ID token they send. Locally there is no IAM and no
Google to sign tokens, so the local cloud makes one random bearer token per
start (``new_token``), hands it to each HTTP function as ``STATUS_TOKEN`` and
to clients (the ``avmonitor`` CLI, the tests) as ``AVMONITOR_TOKEN``, beside
the function's URL (``STATUS_URL`` for the function ``status``). A request
without it is refused as in the cloud; the token changes with every ``up``,
so one that leaked from an old session opens nothing. A second token, for
reading only, is made beside it (``STATUS_VIEWER_TOKEN`` for the function,
``DASHBOARD_VIEWER_TOKEN`` for clients): what to give someone who may watch the
dashboard but not press its controls.

Only the HTTP functions get ``STATUS_TOKEN`` and no other process gets
``AVMONITOR_TOKEN``: the event functions and the stand-ins have no business
holding a client's credential.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from infra.local.ports import HOST, Ports
from infra.local.topology import HttpFunction, Topology

FUNCTION_TOKEN_VAR = "STATUS_TOKEN"  # what functions/status_auth.py reads
CLIENT_TOKEN_VAR = "AVMONITOR_TOKEN"  # what a client sends as ``Authorization: Bearer``
FUNCTION_VIEWER_TOKEN_VAR = "STATUS_VIEWER_TOKEN"  # read-only, also read by functions/status_auth.py
CLIENT_VIEWER_TOKEN_VAR = "DASHBOARD_VIEWER_TOKEN"  # a read-only client's bearer token


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe (it travels in a header)."""
    return secrets.token_urlsafe(32)


def url_var(function: HttpFunction) -> str:
    """The client variable holding the function's URL: ``STATUS_URL`` for ``status``."""
    return f"{function.name.upper().replace('-', '_')}_URL"


def function_url(function: HttpFunction, ports: Ports) -> str:
    """``http://127.0.0.1:PORT/NAME``: the cloud's ``https://REGION-PROJECT.cloudfunctions.net/NAME``, locally."""
    return f"http://{HOST}:{ports.functions[function.name]}/{function.name}"


def client_env(topology: Topology, ports: Ports, token: str, viewer_token: str = "") -> dict[str, str]:
    """What a client of the HTTP functions sets: each one's URL, and the tokens to send (an operator's, a viewer's)."""
    if not topology.http_functions:
        return {}
    viewer = {CLIENT_VIEWER_TOKEN_VAR: viewer_token} if viewer_token else {}
    return {**{url_var(f): function_url(f, ports) for f in topology.http_functions}, CLIENT_TOKEN_VAR: token, **viewer}


def function_env(token: str, viewer_token: str = "") -> dict[str, str]:
    """What an HTTP function gets on top of every process's environment."""
    return {FUNCTION_TOKEN_VAR: token, **({FUNCTION_VIEWER_TOKEN_VAR: viewer_token} if viewer_token else {})}


def framework_argv(executable: Path, source: Path, target: str, port: int, *, http: bool) -> list[str]:
    """functions-framework serving ``target`` of ``source``: an HTTP function, or a CloudEvent one (the pushes)."""
    return [
        str(Path(executable).parent / "functions-framework"),
        "--source", str(source),
        "--target", target,
        "--signature-type", "http" if http else "cloudevent",
        "--host", HOST,
        "--port", str(port),
    ]
