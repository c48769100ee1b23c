"""The web application's composition root: settings from the environment, each tenant's mail sender (helpdesk
resend) and LiveKit webhook receiver, and the server — `bascule web serve` in the foreground, `WebServer` in a
thread of this process (the demo's `--serve`, the browser tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import uvicorn

from flows.errors import OperatorError
from flows.tenant import TenantConfig
from web.app import WebServices, create_app
from web.settings import WebSettings

__all__ = ["WebServer", "listen", "web_services", "web_settings"]


def web_settings(database_url: str, **overrides: Any) -> WebSettings:
    """BASCULE_WEB_* from the environment, the state database, and `overrides` (e.g. public_url)."""
    return WebSettings(database_url=database_url, **overrides)


def web_services(database_url: str, tenants: Sequence[TenantConfig]) -> WebServices:
    """Each tenant's sender of calendar updates ([mail]) and, with [visio.livekit], its webhook receiver mounted at
    /adoption/{tenant}/livekit/webhook."""
    from connectors.livekit import WebhookVerifier
    from flows.secrets import read_secret
    from flows.wiring import build_mail_sender
    from web.adoption import adoption_app

    senders = {tenant.id: sender for tenant in tenants if (sender := build_mail_sender(tenant)) is not None}
    mounts: list[tuple[str, Any]] = []
    for tenant in tenants:
        livekit = tenant.visio.livekit if tenant.visio else None
        if livekit is None:
            continue
        try:
            secret = read_secret(livekit.api_secret_env).get_secret_value()
        except OperatorError:
            continue   # no signing secret here: the receiver cannot verify, so it is not mounted (the CLI says so)
        verifier = WebhookVerifier(api_key=livekit.api_key, api_secret=secret)
        mounts.append((f"/adoption/{tenant.id}", adoption_app(database_url, tenant.id, verifier)))
    return WebServices(senders=senders, mounts=mounts)


class WebServer:
    """The web application on loopback in a background thread (uvicorn), until stop()."""

    def __init__(self, settings: WebSettings, services: WebServices | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, listener: socket.socket | None = None) -> None:
        self.app = create_app(settings, services)
        self.host = host
        self._listener = listener or listen(host, port)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                     timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._listener]},
                                        daemon=True, name="bascule-web")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web application did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port) for uvicorn, with TCP_NODELAY (no delayed-ACK stalls)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    return listener


def app_from_environment() -> Any:
    """The app of one uvicorn worker (`bascule web serve --workers N`): everything from BASCULE_WEB_* and the
    tenant files named in BASCULE_WEB_TENANT_FILES (os.pathsep-separated)."""
    import os
    from pathlib import Path

    settings = WebSettings()  # type: ignore[call-arg]  # database_url comes from the environment
    files = [Path(item) for item in os.environ.get("BASCULE_WEB_TENANT_FILES", "").split(os.pathsep) if item]
    return create_app(settings, web_services(settings.database_url, [TenantConfig.load(path) for path in files]))
