"""`bascule web`: the web application (finance dashboard, helpdesk, migration console) over the state database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import fail, load_tenant, state_database

app = typer.Typer(help="The web application: finance dashboard, helpdesk and migration console (ProConnect login).",
                  no_args_is_help=True)


@app.command("serve")
def web_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    tenant: Annotated[list[Path] | None, typer.Option(
        "--tenant", help="Tenant files whose mail relay (helpdesk resend) and LiveKit webhooks the app serves; "
                         "repeat for several.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes (set BASCULE_WEB_SESSION_SECRET "
                                                     "so that they share sessions).")] = 1,
) -> None:
    """Serve the web application until interrupted. Settings come from BASCULE_WEB_* (public URL, ProConnect
    client, theme, session key, Prefect UI); the ProConnect client secret only from the environment."""
    import os

    import uvicorn
    from pydantic import ValidationError

    from flows.webapp import web_services, web_settings

    database = state_database()
    configs = [load_tenant(path) for path in tenant or []]
    public = os.environ.get("BASCULE_WEB_PUBLIC_URL") or f"http://{host}:{port}"
    try:
        settings = web_settings(database, public_url=public)
    except ValidationError as error:
        fail("BASCULE_WEB_* settings: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                   for e in error.errors()))
    if workers > 1 and not os.environ.get("BASCULE_WEB_SESSION_SECRET"):
        fail("several workers need one session key: set BASCULE_WEB_SESSION_SECRET")
    services = web_services(database, configs)
    from web.app import create_app

    print(f"bascule web: {settings.base}/ (finance {settings.base}/finance, helpdesk {settings.base}/helpdesk, "
          f"console {settings.base}/console); login "
          + ("with ProConnect" if settings.login_enabled else "DISABLED (BASCULE_WEB_OIDC_* not set)")
          + (f"; LiveKit webhooks at {', '.join(f'{settings.base}{p}/livekit/webhook' for p, _ in services.mounts)}"
             if services.mounts else "") + " — Ctrl-C stops", flush=True)
    if workers > 1:
        os.environ["BASCULE_WEB_DATABASE_URL"] = database
        os.environ.setdefault("BASCULE_WEB_PUBLIC_URL", public)
        os.environ["BASCULE_WEB_TENANT_FILES"] = os.pathsep.join(str(path.resolve()) for path in tenant or [])
        uvicorn.run("flows.webapp:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
    else:
        uvicorn.run(create_app(settings, services), host=host, port=port, log_level="warning", access_log=False)
