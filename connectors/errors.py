"""The connector error tree; every SDK or transport error is wrapped into one of these (`raise … from`).

    ConnectorError(system)
    ├── TransientConnectorError        retry later: timeouts, 5xx, dropped connections
    │   └── RateLimited(retry_after)   429 / throttled; wait `retry_after` seconds
    └── PermanentConnectorError        retrying will not help
        ├── ConnectorAuthError         bad credentials, expired consent, missing scope
        └── NotFound                   the object does not exist (any more)

Messages carry opaque ids only: never tokens, query strings or e-mail addresses.
"""

from __future__ import annotations


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


class PermanentConnectorError(ConnectorError):
    """Retrying will not help."""


class ConnectorAuthError(PermanentConnectorError):
    """Credentials refused, or they lack a scope."""


class NotFound(PermanentConnectorError):
    """The object does not exist."""
