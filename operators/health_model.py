"""What ``avmonitor health`` reports, and how one probe becomes a line of it.

Shared by ``operators.health`` (the checks of each component) and
``operators.health_runtime`` (where the functions run), which imports nothing
from ``operators.health``. ``Check`` is one line of the report; ``_probe`` runs
one call and turns its answer or its error into a ``Check`` (``_Bad`` for an
unhealthy answer), except an unreachable service (``_UNREACHABLE``), which ends
the whole component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from google.api_core import exceptions
from google.auth.exceptions import TransportError

RESTART = "restart the local cloud (`python -m infra.local down && python -m infra.local up`)"
APPLY = f"run `terraform -chdir=infra/terraform apply` (cloud) or {RESTART}"
# component -> heading, the variable that points it elsewhere than Google, Google's endpoint.
COMPONENTS = {
    "pubsub": ("Pub/Sub", "PUBSUB_EMULATOR_HOST", "pubsub.googleapis.com"),
    "storage": ("Cloud Storage", "STORAGE_EMULATOR_HOST", "storage.googleapis.com"),
    "firestore": ("Firestore", "FIRESTORE_EMULATOR_HOST", "firestore.googleapis.com"),
    "compute": ("Compute Engine API", "COMPUTE_API_ENDPOINT", "compute.googleapis.com"),
    "vertex": ("Vertex AI API", "VERTEX_API_ENDPOINT", "aiplatform.googleapis.com"),
    "functions": ("Functions", "", "cloudfunctions.googleapis.com"),
    "catalog": ("GPU catalog", "", ""),
    "worker": ("Worker", "", ""),
}
_UNREACHABLE = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError, requests.ConnectionError,
                requests.Timeout, TransportError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Check:
    """One line of the report: ``fix`` says what to do when ``ok`` is False."""

    component: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


class _Bad(Exception):
    """This resource is unhealthy: ``detail`` is what is wrong, ``fix`` what to do."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def _reason(error: BaseException) -> str:
    """An error's gist in one short line (the clients' messages run to paragraphs)."""
    text = " ".join(str(error).split())
    if "Connection refused" in text:
        return "connection refused"
    if "Connection reset" in text or "Stream removed" in text:  # a client whose open connection the server dropped
        return "connection reset (the server went away)"
    if isinstance(error, (exceptions.DeadlineExceeded, requests.Timeout, TimeoutError)) or "timed out" in text:
        return "no answer before the deadline"
    return text[:200] or type(error).__name__


def _probe(component: str, name: str, fetch: Callable[[], str], missing: str, fix: str) -> Check:
    """``fetch`` returns the healthy line's detail or raises; the Check for either.

    An unreachable service is not caught here: it ends the whole component (``_component``).
    """
    api = COMPONENTS[component][2]
    try:
        return Check(component, name, True, fetch())
    except _UNREACHABLE:
        raise
    except _Bad as bad:
        return Check(component, name, False, bad.detail, bad.fix)
    except exceptions.NotFound:
        return Check(component, name, False, missing, fix)
    except (exceptions.PermissionDenied, exceptions.Unauthenticated, exceptions.Forbidden) as error:
        text = str(error)
        if "SERVICE_DISABLED" in text or "has not been used" in text or "is disabled" in text:
            access = f"enable it: `gcloud services enable {api}`"
        elif isinstance(error, exceptions.Unauthenticated):
            access = "the credentials were refused: `gcloud auth application-default login`"
        else:
            access = f"grant this account read access to {api} (a viewer role), or use other credentials"
        return Check(component, name, False, f"refused: {_reason(error)}", access)
    except exceptions.GoogleAPICallError as error:
        return Check(component, name, False, _reason(error), "see the error; run again in a minute if it is transient")



def _exists(get: Callable[..., Any], request: dict[str, str], t: float) -> str:
    get(request=request, timeout=t, retry=None)
    return "exists"
