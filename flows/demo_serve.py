"""The demo's web application: who may open what (three synthetic agents granted finance, helpdesk and migration on
the demo's tenant), and `bascule demo --serve` — the sandbox (with its ProConnect), the SMTP sink and the web
application kept up on the demo's data until Ctrl-C.

The agents are the first ones the sandbox's ProConnect login page lists, so that a person finds them at the top of
the page; the web application is registered with that ProConnect as a client whose redirect and logout URIs are the
ones it serves (exact match, as ProConnect checks)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.access import Role

__all__ = ["DEMO_ROLES", "DEMO_WEB_PORT", "DemoWeb", "grant_demo_roles", "serve_demo"]

DEMO_ROLES = (Role.FINANCE, Role.HELPDESK, Role.MIGRATION)
DEMO_WEB_PORT = 8080
DEMO_WEB_CLIENT_ID = "bascule-demo-web"


@dataclass(frozen=True, slots=True)
class DemoWeb:
    """Where the demo's web application answers and who logs in to it."""

    url: str
    agents: dict[str, str]          # role → the synthetic agent's e-mail

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "dashboard": f"{self.url}/finance", "helpdesk": f"{self.url}/helpdesk",
                "console": f"{self.url}/console", "agents": self.agents}


def grant_demo_roles(database_url: str, tenant_id: str, sandbox: Any, *, now: datetime | None = None
                     ) -> dict[str, str]:
    """Grant each of DEMO_ROLES to one of the first agents the sandbox's ProConnect lists (audited, as `bascule
    access grant` does); returns role → e-mail."""
    from db.access import AccessRepository
    from db.engine import make_engine, make_session_factory
    from sandbox.proconnect import provider_of

    agents = provider_of(sandbox).agents(limit=len(DEMO_ROLES), offset=0)
    granted = {role.value: agent.email for role, agent in zip(DEMO_ROLES, agents, strict=False)}
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            access = AccessRepository(session)
            for role, email in granted.items():
                access.grant(tenant_id, email, Role(role), actor="bascule demo", now=now or datetime.now(UTC))
    finally:
        engine.dispose()
    return granted


def serve_demo(data_dir: Path, database_url: str, summary: dict[str, Any], *, port: int = DEMO_WEB_PORT,
               announce: Callable[[str], None] = print, stop: Callable[[], bool] | None = None) -> None:
    """Serve the demo's ministry (sandbox with ProConnect, SMTP sink spooling to DATA_DIR/mail) and the web
    application over the demo's database until `stop()` is true (default: the operator's Ctrl-C). The tenant file
    names the served ports while it runs and `bascule sandbox serve`'s default ports again afterwards."""
    from flows.demo import SANDBOX_SMTP_PORT, free_or_any, render_sandbox_tenant
    from flows.runtime import stop_was_requested
    from flows.tenant import TenantConfig
    from flows.webapp import WebServer, listen, web_services, web_settings
    from sandbox.proconnect import ProConnectClient, provider_of
    from sandbox.server import SandboxConfig, SandboxServer
    from sandbox.smtp import SmtpSink

    where = summary["where"]
    ministry, tenant_file = Path(where["ministry"]), Path(where["tenant_file"])
    manifest = json.loads((ministry / "manifest.json").read_text(encoding="utf-8"))
    config = SandboxConfig(data_dir=ministry, tls_dir=ministry / "tls", rate_limits=False,
                           port=free_or_any(8700), tls_port=free_or_any(8701), outlook_calendars=True)
    web_port = free_or_any(port)
    resting = tenant_file.read_text(encoding="utf-8")
    with SandboxServer(config) as server, SmtpSink(spool=data_dir / "mail",
                                                   port=free_or_any(SANDBOX_SMTP_PORT)) as sink:
        tenant_file.write_text(render_sandbox_tenant(manifest, ldif_path="ministry/directory.ldif",
                                                     sandbox_url=server.url, tls_url=server.tls_url,
                                                     ca_file=str(server.ca_file), smtp_port=sink.port,
                                                     outlook_calendars=True), encoding="utf-8")
        try:
            listener = listen("127.0.0.1", web_port)
            base = f"http://127.0.0.1:{listener.getsockname()[1]}"
            secret = secrets.token_urlsafe(32)
            provider_of(server.sandbox).register_client(ProConnectClient(
                DEMO_WEB_CLIENT_ID, secret, (f"{base}/login/callback",), (f"{base}/logout/callback",),
                extra_scopes=("organizational_unit",)))
            settings = web_settings(
                database_url, public_url=base,
                oidc_discovery_url=f"{server.url}/proconnect/api/v2/.well-known/openid-configuration",
                oidc_client_id=DEMO_WEB_CLIENT_ID, oidc_client_secret=secret)
            services = web_services(database_url, [TenantConfig.load(tenant_file)])
            with WebServer(settings, services, listener=listener) as web:
                agents = summary.get("web", {}).get("agents", {})
                announce(render_serving(web.url, server.url, agents, data_dir / "mail"))
                done = stop or stop_was_requested
                try:
                    while not done():
                        time.sleep(0.2)
                except KeyboardInterrupt:   # a second Ctrl-C: stop all the same
                    pass
                announce("bascule demo --serve: stopped")
        finally:
            tenant_file.write_text(resting, encoding="utf-8")


def render_serving(web_url: str, sandbox_url: str, agents: dict[str, str], spool: Path) -> str:
    """What `demo --serve` says once everything answers."""
    who = {"finance": "the savings dashboard", "helpdesk": "old link → Visio link, resend an invitation",
           "migration": "the migration console"}
    lines = [
        "",
        "bascule demo --serve: the demo's data, served until Ctrl-C",
        f"  dashboard            {web_url}/finance",
        f"  helpdesk             {web_url}/helpdesk",
        f"  console              {web_url}/console",
        "  log in               the pages send you to the sandbox's ProConnect login page: choose",
        *(f"                         {email}  ({role}: {who.get(role, role)})" for role, email in agents.items()),
        f"  mail                 every invitation sent or resent lands in {spool} (.eml)",
        f"  sandbox              {sandbox_url} (Zoom, Graph, Webex, Visio, LiveKit, ProConnect)",
    ]
    return "\n".join(lines)
