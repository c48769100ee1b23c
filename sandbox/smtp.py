"""Sandbox mail relay: an aiosmtpd server on loopback that keeps every message it accepts, in memory.

    with SmtpSink() as sink:
        sink.host, sink.port          # 127.0.0.1 and the port the system gave (port 0 asks for a free one)
        ...                           # send with smtplib
        sink.messages                 # CapturedMessage: envelope sender, recipients, raw bytes, parsed e-mail

Tests can make it refuse chosen recipients (550, as a relay does for an unknown mailbox), answer the next DATA
commands with a failure (451 by default: temporary; any reply, e.g. a 554 rejection), and require AUTH LOGIN/PLAIN
with given credentials (over plain text: the sink is loopback only). `bascule sandbox serve` runs one that spools
each message to a directory as an `.eml` file instead of keeping it in memory (`SmtpSink(spool=DIR)`), its envelope
in `Return-Path` and `X-Original-To` headers as a delivering MTA writes them, numbered after what the spool holds.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["CapturedMessage", "SmtpSink"]

_SERVER_NAME = "sandbox-smtp.localhost"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One accepted message: the SMTP envelope and the e-mail as received."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage = field(compare=False)
    authenticated_as: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")


class _Handler:
    """aiosmtpd hooks: refuse some recipients, fail some DATA commands, keep the rest."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.casefold() in self._sink.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._sink.take_failure()
        if failure is not None:
            return failure
        raw = envelope.original_content or cast(bytes, envelope.content) or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self._sink.keep(CapturedMessage(mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos),
                                        data=raw, message=parsed, authenticated_as=login))
        return "250 2.0.0 Message accepted for delivery"


class _BoundController(Controller):
    """aiosmtpd's threaded controller on a socket bound beforehand, so port 0 gives a known real port."""

    def __init__(self, handler: _Handler, listener: socket.socket, **smtp: Any) -> None:
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, server_hostname=_SERVER_NAME, **smtp)
        self._listener = listener

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)


class SmtpSink:
    """A capturing SMTP server in a background thread of this process."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, refuse: Collection[str] = (),
                 credentials: tuple[str, str] | None = None, spool: Path | None = None) -> None:
        self.host = host
        self.spool = spool
        self._spooled = 0
        self.port = port
        self.refused = frozenset(address.casefold() for address in refuse)
        self._credentials = credentials
        self._messages: list[CapturedMessage] = []
        self._failures: deque[str] = deque()
        self._lock = threading.Lock()
        self._controller: _BoundController | None = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self.spool is not None and self.spool.is_dir():   # a sink started again over its spool appends to it
            self._spooled = max((int(path.stem) for path in self.spool.glob("*.eml") if path.stem.isdigit()),
                                default=self._spooled)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        self.port = int(listener.getsockname()[1])
        smtp: dict[str, Any] = {}
        if self._credentials is not None:
            smtp |= {"auth_required": True, "auth_require_tls": False, "authenticator": self._authenticate}
        self._controller = _BoundController(_Handler(self), listener, **smtp)
        self._controller.start()

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    # ------------------------------------------------------------------------------------------ for tests

    @property
    def messages(self) -> list[CapturedMessage]:
        """Every message accepted so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    def with_message_id(self, message_id: str) -> list[CapturedMessage]:
        """The messages that carry `message_id` (more than one: the same e-mail was sent again)."""
        return [captured for captured in self.messages if captured.message_id == message_id]

    def fail_next(self, count: int = 1, *, reply: str = TEMPORARY_FAILURE) -> None:
        """Answer the next `count` DATA commands with `reply` (default 451, a temporary failure)."""
        with self._lock:
            self._failures.extend([reply] * count)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    # ------------------------------------------------------------------------------------------ handler side

    def keep(self, captured: CapturedMessage) -> None:
        with self._lock:
            if self.spool is None:
                self._messages.append(captured)
                return
            self._spooled += 1
            self.spool.mkdir(parents=True, exist_ok=True)
            # The envelope as a delivering MTA records it (Postfix: Return-Path, one X-Original-To per recipient):
            # a message sent again to one address keeps its headers; only the envelope says who it went to.
            envelope = f"Return-Path: <{captured.mail_from}>\r\n" + "".join(
                f"X-Original-To: {recipient}\r\n" for recipient in captured.rcpt_tos)
            (self.spool / f"{self._spooled:07d}.eml").write_bytes(envelope.encode() + captured.data)

    def take_failure(self) -> str | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        expected = self._credentials
        if expected is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == expected
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
