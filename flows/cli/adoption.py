"""`bascule adoption`: evidence that people use Visio (LiveKit webhooks)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import TenantOption, fail, load_tenant, state_database

app = typer.Typer(help="Adoption evidence: who uses Visio (LiveKit webhooks).", no_args_is_help=True)


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
