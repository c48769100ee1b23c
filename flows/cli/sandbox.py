"""`bascule sandbox`: the synthetic ministry and the stand-ins of external systems."""

from __future__ import annotations

import contextlib
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import fail

app = typer.Typer(help="The synthetic ministry and the local stand-ins of external systems.",
                  no_args_is_help=True)


@app.command("generate")
def sandbox_generate(
    out: Annotated[Path, typer.Option(help="Directory to write the ministry into.")],
    agents: Annotated[int, typer.Option(min=1, help="Number of agents.")] = 2000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 42,
    flavour: Annotated[str, typer.Option(help="Directory flavour: ad or supann.")] = "ad",
    as_of: Annotated[str | None, typer.Option(help="Reference date YYYY-MM-DD (default: today, UTC).")] = None,
    base_dn: Annotated[str | None, typer.Option(help="Base DN of the directory export.")] = None,
) -> None:
    """Write a synthetic ministry: LDIF directory, platform datasets (JSON Lines) and manifest.json."""
    from sandbox.generator.directory import Flavour
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry

    try:
        chosen = Flavour(flavour)
        reference = date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        fail(str(exc))
    options = GeneratorOptions(agents=agents, seed=seed, flavour=chosen, base_dn=base_dn, as_of=reference)
    manifest = generate_ministry(out, options)
    identity = manifest["identity"]
    assert isinstance(identity, dict)
    print(f"{out}: {manifest['directory']['people']} people, "  # type: ignore[index]
          f"{identity['source_accounts_mapped']} source accounts, manifest.json written")


@app.command("serve")
def sandbox_serve(
    data: Annotated[Path, typer.Option(help="A ministry written by `bascule sandbox generate`.")],
    port: Annotated[int, typer.Option(help="Plain HTTP port (Zoom, Graph, Webex APIs).")] = 8700,
    tls_port: Annotated[int, typer.Option(help="TLS port (Entra token endpoint for azure-identity).")] = 8701,
    smtp_port: Annotated[int, typer.Option(help="SMTP sink port (calendar updates land in DATA/mail/*.eml).")]
    = 8725,
    rate_limits: Annotated[bool, typer.Option(help="Enforce the vendors' published rate limits.")] = True,
    zoom_plan: Annotated[str, typer.Option(help="Zoom plan whose limits apply: free, pro or business.")] = "business",
    faults: Annotated[str, typer.Option(help="Injected faults, e.g. throttle=0.02,server_error=0.01,timeout=0.005,"
                                             "truncate=0.01,seed=7 (rates per request). An injected timeout holds "
                                             "the answer until the client gives up (at most timeout_cap_seconds, "
                                             "120), then processes the request anyway; timeout_seconds=S makes it a "
                                             "fixed delay instead.")] = "",
    meet_application: Annotated[list[str] | None, typer.Option(
        help="Another Visio External API application, as ID:SECRET[:DOMAINS][:inactive] (repeatable). DOMAINS: "
             "comma-separated e-mail domains it may act for (default: the ministry's; '*': any domain); 'inactive': "
             "its token requests get 401 \"Application is inactive\". The default application "
             "(bascule-sandbox-visio-application-000001) stays unless an option gives its id.")] = None,
    meet_inactive_user: Annotated[list[str] | None, typer.Option(
        help="A Visio user whose account is disabled (repeatable): tokens are issued for it, room calls get 401 "
             "\"User account is disabled.\" (a logged-in user is created when no directory entry has the address).")]
    = None,
    meet_no_base_url: Annotated[bool, typer.Option(
        "--meet-no-base-url",
        help="Visio without APPLICATION_BASE_URL: room bodies have no `url` and a 201 no Location.")] = False,
    meet_version: Annotated[str, typer.Option(
        help="The Meet version Visio behaves as: v1.27.0 (the release: the token endpoint refuses form bodies) or "
             "main (later: it refuses multipart instead).")] = "v1.27.0",
    graph_without_premium: Annotated[bool, typer.Option(
        "--graph-without-premium",
        help="An Entra tenant without ID P1/P2: selecting signInActivity is a 403 (Teams activity not known).")]
    = False,
    outlook_calendars: Annotated[bool, typer.Option(
        help="The organisers' Zoom and Webex events in their Outlook mailboxes (the ministry keeps its calendars in "
             "Exchange Online, as the demo's tenant says with [calendar] system = \"graph\").")] = True,
) -> None:
    """Serve the ministry as Zoom, Graph, Webex, Visio (Meet + LiveKit) and an SMTP sink on loopback until
    interrupted."""
    import signal
    import threading

    from sandbox.meet import VERSIONS, MeetOptions
    from sandbox.server import SandboxConfig, SandboxServer

    if not (data / "manifest.json").exists():
        fail(f"no generated ministry in {data} (run `bascule sandbox generate --out {data}` first)")
    if zoom_plan not in ("free", "pro", "business"):
        fail("--zoom-plan must be free, pro or business")
    from sandbox.faults import FaultRates

    try:
        changes: dict[str, Any] = {key.strip(): (int(value) if key.strip() in ("seed", "retry_after_seconds")
                                                  else float(value))
                                   for key, _, value in (part.partition("=") for part in faults.split(",") if part)}
        rates = FaultRates(**changes)
    except (TypeError, ValueError) as exc:
        fail(f"--faults: {exc}")
    if meet_version not in VERSIONS:
        fail(f"--meet-version must be one of {', '.join(VERSIONS)}")
    try:
        applications = _meet_applications(meet_application or [])
    except ValueError as exc:
        fail(f"--meet-application: {exc}")
    meet = MeetOptions(applications=applications, inactive_users=tuple(meet_inactive_user or ()),
                       base_url=None if meet_no_base_url else MeetOptions().base_url, version=meet_version)
    config = SandboxConfig(data_dir=data, port=port, tls_port=tls_port, tls_dir=data / "tls", rate_limits=rate_limits,
                           zoom_plan=zoom_plan, faults=rates, meet=meet,  # type: ignore[arg-type]
                           graph_premium=not graph_without_premium, outlook_calendars=outlook_calendars)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from sandbox.smtp import SmtpSink

    with SandboxServer(config) as server, SmtpSink(port=smtp_port, spool=data / "mail") as sink:
        print(f"sandbox serving {data}: {server.url} (Zoom /zoom/v2, Graph /graph/v1.0, Webex /webex/v1/, "
              f"Meet /meet/ as {meet_version}, LiveKit /livekit/), Entra token endpoint {server.tls_url} "
              f"(CA {server.ca_file}), "
              f"SMTP sink {sink.host}:{sink.port} (mail in {data / 'mail'}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


def _meet_applications(specs: list[str]) -> Any:
    """`ID:SECRET[:DOMAINS][:inactive]` options → the Meet applications, the default one first (None: it alone)."""
    from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, MeetApplication

    if not specs:
        return None
    applications = {SANDBOX_CLIENT_ID: MeetApplication(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)}
    for spec in specs:
        client_id, _, rest = spec.partition(":")
        secret, _, rest = rest.partition(":")
        if not client_id or not secret:
            raise ValueError("expected ID:SECRET[:DOMAINS][:inactive]")
        parts = rest.split(":") if rest else []
        active = True
        if parts and parts[-1] == "inactive":
            active = False
            parts.pop()
        if len(parts) > 1:
            raise ValueError("expected ID:SECRET[:DOMAINS][:inactive] (DOMAINS comma-separated)")
        domains: tuple[str, ...] | None = None
        if parts and parts[0] == "*":
            domains = ()
        elif parts and parts[0]:
            domains = tuple(domain.strip().lower() for domain in parts[0].split(",") if domain.strip())
        applications[client_id] = MeetApplication(client_id, secret, active=active, domains=domains)
    return tuple(applications.values())


@app.command("login")
def sandbox_login(
    emails: Annotated[list[str], typer.Argument(help="Agents' e-mail addresses.")],
    url: Annotated[str, typer.Option(help="Where `bascule sandbox serve` answers.")] = "http://127.0.0.1:8700",
) -> None:
    """An agent logs in to the sandbox's Visio once, through its ProConnect stand-in (a held host then gets their
    room at the next `wave cutover --apply`)."""
    import httpx

    refused = 0
    for email in emails:
        try:
            response = httpx.post(f"{url.rstrip('/')}/_sandbox/meet/login", json={"email": email}, timeout=10)
        except httpx.HTTPError as exc:
            fail(f"no sandbox answers at {url} ({type(exc).__name__}): start `bascule sandbox serve` first")
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        if response.status_code == 200:
            print(f"{email}: logged in to Visio" + (" (new user)" if body.get("created") else ""))
        else:
            refused += 1
            print(f"{email}: login refused: {body.get('refused') or body.get('error') or response.status_code}",
                  file=sys.stderr)
    if refused:
        raise typer.Exit(1)
