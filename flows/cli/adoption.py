"""`bascule adoption`: evidence that people use Visio (LiveKit webhooks or polling) and the per-person summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, fail, flow_function, load_tenant, settings, state_database

app = typer.Typer(help="Adoption evidence: who uses Visio (LiveKit webhooks or polling).", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("poll")
def adoption_poll(
    tenant: TenantOption,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Migrated rooms per RoomService batch.")] = 500,
    as_json: JsonOption = False,
) -> None:
    """Ask Visio's LiveKit who is in the tenant's migrated rooms now, and store the logged-in participants as
    adoption evidence (for instances whose operators send no webhooks). Polling again the same day changes nothing;
    guests are not evidence. Run it on a schedule (every few minutes during working hours)."""
    def work() -> None:
        from flows.runtime import configure_prefect

        configure_prefect(settings())
        report = flow_function("flows.adoption", "poll_adoption")(tenant_file=str(tenant), batch_size=batch_size)
        if not hasattr(report, "rooms"):  # the run was stopped: Prefect's Cancelled state
            raise typer.Exit(130)
        from flows.adoption import render_poll

        print(json.dumps(asdict(report), sort_keys=True, default=str) if as_json else render_poll(report))

    as_job(work, tenant=tenant)


@app.command("report")
def adoption_report(
    tenant: TenantOption,
    wave: Annotated[str | None, typer.Option("--wave", help="Only this wave's people.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Per person of the tenant's waves: first seen in Visio, days active, whether they hosted their migrated room,
    last activity on each old platform (as extraction stored it); counts first, then the first rows."""
    def work() -> None:
        from flows.runtime import configure_prefect

        configure_prefect(settings())
        report = flow_function("flows.adoption", "adoption_report")(tenant_file=str(tenant), wave=wave)
        from flows.adoption import render_report

        print(json.dumps(asdict(report), sort_keys=True, default=str) if as_json else render_report(report))

    as_job(work, tenant=tenant)


@app.command("serve")
def adoption_serve(
    tenant: TenantOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8780,
) -> None:
    """Receive LiveKit's webhooks for the tenant's Visio instance: each delivery verified against its signing key
    before it is read, each event stored once by its id (Visio's operators add the printed URL to LiveKit's webhook
    list). Runs until interrupted."""
    import uvicorn

    from connectors.livekit import WebhookVerifier
    from flows.errors import OperatorError
    from flows.secrets import read_secret
    from web.adoption import WEBHOOK_PATH, adoption_app

    config = load_tenant(tenant)
    livekit = config.visio.livekit if config.visio else None
    if livekit is None:
        fail(f"{tenant}: no [visio.livekit] section (url, api_key, api_secret_env): the LiveKit API key whose "
             "secret signs the webhooks is needed to verify them")
    try:
        secret = read_secret(livekit.api_secret_env).get_secret_value()
    except OperatorError as exc:
        fail(str(exc))
    database = state_database()
    verifier = WebhookVerifier(api_key=livekit.api_key, api_secret=secret)
    print(f"receiving LiveKit webhooks for tenant {config.id} at http://{host}:{port}{WEBHOOK_PATH} "
          "(Ctrl-C stops)", flush=True)
    uvicorn.run(adoption_app(database, config.id, verifier), host=host, port=port, log_level="warning")
