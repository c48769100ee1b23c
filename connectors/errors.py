"""The connector error tree; every SDK or transport error is wrapped into one of these (`raise … from`).

    ConnectorError(system)
    ├── TransientConnectorError        retry later: timeouts, 5xx, dropped connections
    │   ├── RateLimited(retry_after)   429 / throttled; wait `retry_after` seconds
    │   └── Unreachable(origin)        no connection at all (refused, unknown host): retried briefly, then told
    └── PermanentConnectorError        retrying will not help
        ├── ConnectorAuthError         bad credentials, expired consent, missing scope
        ├── NotFound                   the object does not exist (any more)
        ├── SyncTokenExpired           a delta/sync token the server no longer knows: list everything again
        └── UnexpectedResponse         an HTTP status the system's contract does not document (status, excerpt)

Messages carry opaque ids only: never tokens, query strings or e-mail addresses.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"<(?!e-mail>|redacted>)[^>]*>")  # markup, but not the placeholders of an already redacted text
_EMAIL_LIKE = re.compile(r"[^\s@\"'<>()\[\],;:]+@[^\s@\"'<>()\[\],;:]+")
# A JWT, or a long run of key-like characters (tokens, secrets, signatures; a hyphenated UUID stays readable).
_SECRET_LIKE = re.compile(r"\b[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b|[A-Za-z0-9+/_=]{32,}")
EXCERPT_CHARS = 200


class ConnectorError(Exception):
    """A failure talking to an external system."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system


class TransientConnectorError(ConnectorError):
    """Worth retrying after a while."""


class RateLimited(TransientConnectorError):
    """The system asked us to slow down for `retry_after` seconds (None: it did not say)."""

    def __init__(self, system: str, message: str, *, retry_after: float | None) -> None:
        super().__init__(system, message)
        self.retry_after = retry_after


class Unreachable(TransientConnectorError):
    """No connection could be opened to `origin` (scheme://host:port): refused, unknown host, no route.

    Retried a few times within seconds (a service restarting), not for minutes: a wrong URL or a stopped service
    is told at once, naming where bascule tried to connect.
    """

    def __init__(self, system: str, origin: str, cause: str) -> None:
        super().__init__(system, f"cannot connect to {origin} ({cause})")
        self.origin = origin


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL: where a connection goes, without path, query or credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class PermanentConnectorError(ConnectorError):
    """Retrying will not help."""


class ConnectorAuthError(PermanentConnectorError):
    """Credentials refused, or they lack a scope."""


class PreconditionFailed(PermanentConnectorError):
    """The item changed since it was read (HTTP 412 on If-Match): read it again and apply the change to the fresh
    copy; never write the stale one over it."""


class NotFound(PermanentConnectorError):
    """The object does not exist."""


class SyncTokenExpired(PermanentConnectorError):
    """The change-tracking token is no longer known to the server (Graph's 410 on a delta link, a CalDAV
    DAV:valid-sync-token refusal): list everything again and start from a new token."""


class UnexpectedResponse(PermanentConnectorError):
    """An HTTP status the system's contract does not document; `status` and a short, redacted `body` excerpt.

    The excerpt (markup removed, whitespace collapsed, e-mail addresses and token-like strings replaced, at most
    EXCERPT_CHARS characters) is what a report shows of the answer: enough to recognise "Unsupported media type" or
    a proxy's error page, never an address or a secret.
    """

    def __init__(self, system: str, where: str, *, status: int, body: str = "") -> None:
        self.status = status
        self.body = _excerpt(body)
        super().__init__(system, f"{where}: unexpected HTTP {status}" + (f": {self.body}" if self.body else ""))


def _excerpt(text: str) -> str:
    flat = " ".join(_TAG.sub(" ", text).split())
    flat = _SECRET_LIKE.sub("<redacted>", _EMAIL_LIKE.sub("<e-mail>", flat))
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


class ActivityUnavailable(PermanentConnectorError):
    """The source does not give its users' last activity to this application (Graph: no AuditLog.Read.All, or no
    Entra ID P1/P2 licence): activity stays not known, and nothing else fails."""
