"""The sandbox servers: one ASGI app on loopback serving a generated ministry as Zoom, Graph, Webex, Visio (La
Suite Meet's External API) and LiveKit.

    with SandboxServer(SandboxConfig(data_dir=ministry)) as sandbox:
        sandbox.url        # http://127.0.0.1:PORT — /zoom/v2, /zoom/oauth/token, /graph/v1.0, /webex/v1/,
                           #   /meet/external-api/v1.0/, /livekit/twirp/…
        sandbox.tls_url    # https://127.0.0.1:PORT — the same app over TLS (azure-identity insists on https)
        sandbox.ca_file    # the self-signed certificate to trust for tls_url

Each system is a module (`sandbox.zoom`, `sandbox.graph`, `sandbox.webex`, `sandbox.meet`, `sandbox.livekit`)
whose `mount(sandbox)` returns a SystemMount: its routes, and how it answers when the fault injector throttles it
or makes it fail. The middleware here applies latency, faults and request counting to every system's API routes;
`/_sandbox/…` is the sandbox's own control and inspection API (faults at runtime, counters), clearly outside any
vendor's namespace.

An injected timeout outlasts any client's timeout (sandbox.faults): the request's body is read, the answer is held
until the client disconnects (or `timeout_cap_seconds`, or the server stops), then the request is processed anyway
— answered late to a client still there, into the void otherwise. Stopping the server releases held requests at
once, and uvicorn's graceful shutdown is capped (`SHUTDOWN_GRACE_SECONDS`), so a stop never hangs on them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.faults import Fault, FaultInjector, FaultRates
from sandbox.tls import self_signed_certificate

if TYPE_CHECKING:
    from sandbox.livekit import LiveKitOptions
    from sandbox.meet import MeetOptions
    from sandbox.proconnect import ProConnectOptions

SANDBOX_PORT = 8700
SHUTDOWN_GRACE_SECONDS = 5.0   # uvicorn waits this long for open requests when it stops, then cancels them
HOLD_POLL_SECONDS = 0.05       # how often a held request looks whether the server is stopping


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the sandbox accepts, and the permissions each credential carries (all fake, all local)."""

    zoom_client_id: str = "sandbox-zoom-client"
    zoom_client_secret: str = "sandbox-zoom-secret"  # noqa: S105 — a sandbox value, published on purpose
    zoom_scopes: tuple[str, ...] = ("user:read:admin", "meeting:read:admin", "webinar:read:admin",
                                    "user:write:admin")
    graph_client_id: str = "sandbox-graph-client"
    graph_client_secret: str = "sandbox-graph-secret"  # noqa: S105
    graph_roles: tuple[str, ...] = ("User.Read.All", "Organization.Read.All", "Calendars.ReadWrite",
                                    "LicenseAssignment.ReadWrite.All", "AuditLog.Read.All")
    webex_access_token: str = "sandbox-webex-token"  # noqa: S105
    webex_scopes: tuple[str, ...] = ("spark-admin:people_read", "spark-admin:licenses_read",
                                     "meeting:admin_schedule_read", "spark-admin:people_write")


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox behaves."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0                      # 0: any free port
    tls_port: int | None = 0           # None: no TLS listener
    tls_dir: Path | None = None        # keep the certificate here (reused across runs); default: a temp directory
    credentials: Credentials = field(default_factory=Credentials)
    faults: FaultRates = field(default_factory=FaultRates)
    rate_limits: bool = True
    zoom_plan: Literal["free", "pro", "business"] = "business"
    graph_mailbox_concurrency: int = 4
    # Whether the Entra tenant has an Entra ID P1/P2 licence: without one, selecting signInActivity is a 403
    # Authentication_RequestFromNonPremiumTenantOrB2CTenant (graph.md 3.1), whatever the application's permissions.
    graph_premium: bool = True
    webex_rate_per_second: float | None = None
    token_lifetime_seconds: int = 3599
    latency_seconds: float = 0.0
    # Deliberate bugs, to see contract suites and flows cope: "repeat_page_token", "endless_page_token" (a new
    # cursor forever), "refuse_meetings_of:<host id>" (400 on that host's listing), "malformed_meetings_of:<host id>",
    # "reuse_room_id:<uuid>" / "reuse_room_slug:<slug>" (Visio hands that id or slug to the next room, once),
    # "edit_event_after_read:<event id>" (an Outlook organiser edits the event right after a client read it, once),
    # "expire_event_delta[:<mailbox id>]" (the next calendarView deltaLink is answered 410: sync state dropped).
    broken: frozenset[str] = frozenset()
    now: datetime | None = None        # the sandbox's "now"; default: the generated ministry's as-of date, 08:00 UTC
    meet: MeetOptions | None = None    # the Visio instance's settings (sandbox.meet); None: Meet's defaults
    livekit: LiveKitOptions | None = None  # LiveKit's keys and webhook receivers (sandbox.livekit)
    proconnect: ProConnectOptions | None = None  # ProConnect's clients, strictness, code lifetime (sandbox.proconnect)
    systems: frozenset[str] | None = None  # mount only these systems (e.g. {"livekit"}); None: all of them
    # The ministry keeps its calendars in Exchange Online: the generated organisers' Zoom and Webex events appear in
    # their Outlook mailboxes (sandbox.outlook), beside the Teams meetings.
    outlook_calendars: bool = False


class Sandbox:
    """Shared state of the servers: the generated ministry, the clock, faults, counters."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.manifest: dict[str, Any] = json.loads((config.data_dir / "manifest.json").read_text(encoding="utf-8"))
        as_of = datetime.fromisoformat(self.manifest["generator"]["as_of"])
        self.now_fixed = config.now or datetime(as_of.year, as_of.month, as_of.day, 8, tzinfo=UTC)
        self._started = time.monotonic()
        self.faults = FaultInjector(config.faults)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self.stopping = threading.Event()  # set by SandboxServer.stop: held requests are released
        self.bugs: set[str] = set(config.broken)

    def now(self) -> datetime:
        """The sandbox clock: the ministry's reference instant, moving forward with real time."""
        from datetime import timedelta

        return self.now_fixed + timedelta(seconds=time.monotonic() - self._started)

    def count(self, key: str, amount: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += amount

    def broken(self, bug: str, subject: str | None = None) -> bool:
        """Whether a deliberate bug is on: `bug`, or `bug:subject` for one subject (e.g. one host's listing)."""
        with self._stats_lock:
            return bug in self.bugs or (subject is not None and f"{bug}:{subject}" in self.bugs)

    def bugs_snapshot(self) -> frozenset[str]:
        """The deliberate bugs on now."""
        with self._stats_lock:
            return frozenset(self.bugs)

    def set_bugs(self, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> frozenset[str]:
        """Turn deliberate bugs on or off while serving (POST /_sandbox/broken does it over HTTP)."""
        with self._stats_lock:
            self.bugs |= set(add)
            self.bugs -= set(remove)
            return frozenset(self.bugs)


@dataclass(frozen=True, slots=True)
class SystemMount:
    """One vendor's API inside the sandbox."""

    name: str
    prefix: str
    app: ASGIApp
    throttled: Callable[[int], Response]        # the system's own 429, given Retry-After seconds
    server_error: Callable[[], Response]        # the system's own 5xx
    fault_exempt: Callable[[str], bool] = lambda _path: False  # e.g. token endpoints
    root_routes: Sequence[BaseRoute] = ()       # routes outside the prefix (Entra's /{tenant}/oauth2/v2.0/token)


def _mounts(sandbox: Sandbox) -> list[SystemMount]:
    from sandbox import graph, livekit, meet, proconnect, webex, zoom

    config = sandbox.config
    builders: dict[str, Callable[[], SystemMount]] = {
        "zoom": lambda: zoom.mount(sandbox), "graph": lambda: graph.mount(sandbox),
        "webex": lambda: webex.mount(sandbox), "meet": lambda: meet.mount(sandbox, config.meet),
        "livekit": lambda: livekit.mount(sandbox, config.livekit),
        "proconnect": lambda: proconnect.mount(sandbox, config.proconnect)}
    return [build() for name, build in builders.items() if config.systems is None or name in config.systems]


class _FaultMiddleware:
    """Latency, injected faults and counters for the systems' API routes."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox, systems: list[SystemMount]) -> None:
        self._app = app
        self._sandbox = sandbox
        self._systems = systems

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        system = next((s for s in self._systems if path.startswith(s.prefix + "/")), None)
        if system is None or system.fault_exempt(path[len(system.prefix):]):
            await self._app(scope, receive, send)
            return
        sandbox = self._sandbox
        sandbox.count(f"{system.name}:requests")
        if sandbox.config.latency_seconds:
            await asyncio.sleep(sandbox.config.latency_seconds)
        fault = sandbox.faults.draw()
        if fault is Fault.THROTTLE:
            sandbox.count(f"{system.name}:injected:throttle")
            await system.throttled(sandbox.faults.rates.retry_after_seconds)(scope, receive, send)
            return
        if fault is Fault.SERVER_ERROR:
            sandbox.count(f"{system.name}:injected:server_error")
            await system.server_error()(scope, receive, send)
            return
        if fault is Fault.TIMEOUT:
            sandbox.count(f"{system.name}:injected:timeout")
            await self._time_out(system.name, scope, receive, send)
            return
        if fault is Fault.TRUNCATE:
            sandbox.count(f"{system.name}:injected:truncate")
            await self._app(scope, receive, _truncating(send))
            return
        await self._app(scope, receive, send)

    async def _time_out(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """No answer until the client gives up (or the cap, or a stop); then the request is processed all the same."""
        sandbox = self._sandbox
        rates = sandbox.faults.rates
        if rates.timeout_seconds is not None:
            await asyncio.sleep(rates.timeout_seconds)
            await self._app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            sandbox.count(f"{name}:timeout:gone_before_body")
            return
        replay = _replaying(body, receive)
        if await self._client_gave_up(receive, cap=rates.timeout_cap_seconds):
            sandbox.count(f"{name}:timeout:client_gave_up")
            await self._app(scope, replay, _discard)
            return
        sandbox.count(f"{name}:timeout:answered_late")
        await self._app(scope, replay, send)

    async def _client_gave_up(self, receive: Receive, *, cap: float) -> bool:
        """Wait for the client to disconnect: True when it did, False at the cap or when the server stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cap
        waiter: asyncio.Future[Message] = asyncio.ensure_future(receive())
        try:
            while not self._sandbox.stopping.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                done, _pending = await asyncio.wait({waiter}, timeout=min(HOLD_POLL_SECONDS, remaining))
                if done:
                    if waiter.result()["type"] == "http.disconnect":
                        return True
                    waiter = asyncio.ensure_future(receive())
            return False
        finally:
            if not waiter.done():
                waiter.cancel()


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnected while sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then defers to the connection's own."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def _discard(_message: Message) -> None:
    """Where the answer to a client that gave up goes."""


def _truncating(send: Send) -> Send:
    """A `send` that holds the response back and delivers half of its body, with a matching Content-Length."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            cut = body[: len(body) // 2]
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(cut)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": cut})
            return
        await send(message)

    return wrapped


def build_app(sandbox: Sandbox) -> ASGIApp:
    """The whole sandbox as one ASGI app."""
    systems = _mounts(sandbox)

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "systems": [s.name for s in systems],
                             "now": sandbox.now().isoformat(), "ministry": sandbox.manifest["generator"]})

    async def stats(_request: Request) -> Response:
        return JSONResponse({"requests": dict(sandbox.stats), "faults": sandbox.faults.injected})

    async def broken(request: Request) -> Response:
        if request.method == "POST":
            changes = await request.json()
            bugs = sandbox.set_bugs(add=changes.get("add", ()), remove=changes.get("remove", ()))
        else:
            bugs = frozenset(sandbox.bugs)
        return JSONResponse({"broken": sorted(bugs)})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            changes = await request.json()
            rates = sandbox.faults.update(**changes)
        else:
            rates = sandbox.faults.rates
        return JSONResponse({name: getattr(rates, name) for name in rates.__dataclass_fields__})

    routes = [Route("/_sandbox/health", health), Route("/_sandbox/stats", stats),
              Route("/_sandbox/faults", faults, methods=["GET", "POST"]),
              Route("/_sandbox/broken", broken, methods=["GET", "POST"]),
              *(route for system in systems for route in system.root_routes),
              *(Mount(system.prefix, app=system.app) for system in systems)]
    return _FaultMiddleware(Starlette(routes=routes), sandbox, systems)


class SandboxServer:
    """The sandbox on loopback, in background threads of this process (plain HTTP and TLS)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.sandbox = Sandbox(config)
        self._app = build_app(self.sandbox)
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.url = ""
        self.tls_url = ""
        self.ca_file: Path | None = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.sandbox.stopping.clear()
        port = self._serve(self.config.port, tls=None)
        self.url = f"http://{self.config.host}:{port}"
        if self.config.tls_port is not None:
            if self.config.tls_dir is not None:
                self.config.tls_dir.mkdir(parents=True, exist_ok=True)
                cert, key = self.config.tls_dir / "cert.pem", self.config.tls_dir / "key.pem"
                if not (cert.exists() and key.exists()):
                    cert, key = self_signed_certificate(self.config.tls_dir, host=self.config.host)
            else:
                self._tempdir = tempfile.TemporaryDirectory(prefix="bascule-sandbox-tls-")
                cert, key = self_signed_certificate(Path(self._tempdir.name), host=self.config.host)
            tls_port = self._serve(self.config.tls_port, tls=(cert, key))
            self.tls_url = f"https://{self.config.host}:{tls_port}"
            self.ca_file = cert

    def _serve(self, port: int, *, tls: tuple[Path, Path] | None) -> int:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets of that protocol, and without
        # it every response waits ~40 ms for the client's delayed ACK (Nagle).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind((self.config.host, port))
        options: dict[str, Any] = {"log_level": "warning", "lifespan": "off", "access_log": False,
                                   "timeout_keep_alive": 30, "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS}
        if tls is not None:
            options |= {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
        server = uvicorn.Server(uvicorn.Config(self._app, **options))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True,
                                  name=f"sandbox-{'tls' if tls else 'http'}")
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        self._servers.append((server, thread))
        return int(listener.getsockname()[1])

    def stop(self) -> None:
        self.sandbox.stopping.set()
        for server, _thread in self._servers:
            server.should_exit = True
        for _server, thread in self._servers:
            thread.join(timeout=10)
        self._servers.clear()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
