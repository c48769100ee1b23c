"""Page cursors that must move forward: a repeated one means the server is looping, and we stop."""

from __future__ import annotations

from connectors.errors import PermanentConnectorError


class CursorGuard:
    """Remembers the cursors of one listing and refuses a repeat (Singer SDK's rule, kept here)."""

    def __init__(self, system: str, stream: str) -> None:
        self._system = system
        self._stream = stream
        self._seen: set[str] = set()

    def check(self, cursor: str | None) -> None:
        if not cursor:
            return
        if cursor in self._seen:
            raise PermanentConnectorError(self._system, f"{self._stream}: the server repeated a page cursor")
        self._seen.add(cursor)
