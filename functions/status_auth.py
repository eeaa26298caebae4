"""Who is calling ``/status``, and whether they may change a job: one code path, locally and in the cloud.

A request is accepted when its ``Authorization: Bearer`` token is either

* the shared token ``STATUS_TOKEN`` (unset by default; the local cloud sets a
  random one per start and gives clients the same value as ``AVMONITOR_TOKEN``):
  its holder reads and writes, as the identity ``status-token``; or
* the shared read-only token ``STATUS_VIEWER_TOKEN`` (unset by default; the
  local cloud sets one per start, given to clients as ``DASHBOARD_VIEWER_TOKEN``):
  its holder reads, as ``viewer-token``, and may change nothing; or
* a Google-signed ID token whose audience is one of ``STATUS_AUDIENCE``
  (comma-separated; unset by default, which accepts no ID token): the function's
  URL, ``https://REGION-PROJECT.cloudfunctions.net/status`` (and its run.app
  URL, if callers use that). Any verified identity reads; only the emails in
  ``STATUS_OPERATORS`` (comma-separated, case-insensitive; unset by default:
  nobody) write.

In the cloud, IAM (the invoker role) already refuses a caller without a valid
token before the request reaches the function; verifying it again here gives
the function the caller's identity, for the operator check and the job's
timeline, and keeps the function safe should it ever be deployed open by mistake.

No token at all is 401, always; there is no anonymous read and no anonymous
write. Tokens travel only in the ``Authorization`` header, never in a cookie or
the URL: a browser does not attach that header on its own, and another site's
page can only add it through a CORS preflight this function never approves,
so a cross-site request cannot borrow an operator's credentials (no CSRF). The
dashboard (``dashboard/``) keeps its token in the tab's sessionStorage and sends
it the same way. One more guard for a caller that adds credentials on its own
(a proxy such as ``gcloud run services proxy``, which puts the operator's ID
token on every request it forwards): a POST the browser marks as coming from
another site (``Sec-Fetch-Site``) is refused (403) whatever it carries.
"""

from __future__ import annotations

import functools
import hmac
import os
from dataclasses import dataclass

SHARED_TOKEN_IDENTITY = "status-token"
VIEWER_TOKEN_IDENTITY = "viewer-token"


class AuthError(Exception):
    """The request is refused: ``status`` is 401 (who are you?), 403 (not allowed) or 503 (cannot tell now)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Identity:
    name: str  # an email, SHARED_TOKEN_IDENTITY or VIEWER_TOKEN_IDENTITY
    can_write: bool


@dataclass(frozen=True)
class AuthSettings:
    token: str  # "" accepts no shared token
    audiences: tuple[str, ...]  # () accepts no ID token
    operators: frozenset[str]  # lowercased emails
    viewer_token: str = ""  # "" accepts no read-only shared token

    @classmethod
    def from_env(cls) -> AuthSettings:
        return cls(
            token=os.environ.get("STATUS_TOKEN", "").strip(),
            viewer_token=os.environ.get("STATUS_VIEWER_TOKEN", "").strip(),
            audiences=_split(os.environ.get("STATUS_AUDIENCE", "")),
            operators=frozenset(email.lower() for email in _split(os.environ.get("STATUS_OPERATORS", ""))),
        )


def _split(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.replace(" ", ",").split(",") if item.strip())


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header; AuthError(401) without one."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "no credentials: send Authorization: Bearer <token>")
    return token.strip()


def authenticate(authorization: str | None, settings: AuthSettings | None = None) -> Identity:
    """The caller's identity from the ``Authorization`` header; AuthError(401) if the token is not accepted."""
    settings = settings or AuthSettings.from_env()
    token = bearer_token(authorization)
    # Constant time: how much of a guess matched must not show in the answer's timing.
    if settings.token and hmac.compare_digest(token.encode(), settings.token.encode()):
        return Identity(SHARED_TOKEN_IDENTITY, can_write=True)
    if settings.viewer_token and hmac.compare_digest(token.encode(), settings.viewer_token.encode()):
        return Identity(VIEWER_TOKEN_IDENTITY, can_write=False)
    # Only a JWT (three dot-separated parts) is worth Google's certificates (one fetch each).
    if settings.audiences and token.count(".") == 2:
        email = _verified_email(token, settings.audiences)
        if email:
            return Identity(email, can_write=email.lower() in settings.operators)
    raise AuthError(401, "the bearer token is not accepted")


def require_writer(identity: Identity) -> None:
    """AuthError(403) unless the identity may change jobs."""
    if not identity.can_write:
        why = "the viewer token reads only" if identity.name == VIEWER_TOKEN_IDENTITY else "not in STATUS_OPERATORS"
        raise AuthError(403, f"{identity.name} may read but not change jobs ({why})")


def refuse_cross_site(sec_fetch_site: str | None) -> None:
    """AuthError(403) for a request a browser made on another site's behalf.

    Browsers send ``Sec-Fetch-Site`` with every request: ``same-origin`` from the
    dashboard itself, ``cross-site`` or ``same-site`` from another page's form or
    script. Clients that are not browsers (curl, avmonitor) send none, and pass.
    """
    if sec_fetch_site and sec_fetch_site.strip().lower() not in ("same-origin", "none"):
        raise AuthError(403, f"refused: a {sec_fetch_site.strip().lower()} request may not change jobs")


def _verified_email(token: str, audiences: tuple[str, ...]) -> str | None:
    """The verified email of a Google-signed ID token for one of ``audiences``; None if it is not one."""
    from google.auth import exceptions
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_oauth2_token(token, _transport(), audience=list(audiences))
    except exceptions.TransportError as error:  # not the caller's fault: say so, not "not accepted"
        raise AuthError(503, f"could not fetch Google's certificates to verify the token: {type(error).__name__}") from None
    except (ValueError, exceptions.GoogleAuthError):  # bad signature, expired, wrong audience or issuer
        return None
    if not claims.get("email") or not claims.get("email_verified"):
        return None  # an identity we cannot name is no operator, and is not logged as one
    return str(claims["email"])


@functools.lru_cache(maxsize=1)
def _transport():
    """One HTTP session for fetching Google's certificates, kept across requests."""
    import google.auth.transport.requests

    return google.auth.transport.requests.Request()
