"""Sandbox Graph: placeholder until the graph stand-in is written."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from sandbox.server import Sandbox, SystemMount


def mount(sandbox: Sandbox) -> SystemMount:
    def throttled(retry_after: int) -> Response:
        return JSONResponse({"message": "throttled"}, status_code=429, headers={"Retry-After": str(retry_after)})

    def server_error() -> Response:
        return JSONResponse({"message": "error"}, status_code=500)

    return SystemMount(name="graph", prefix="/graph", app=Starlette(routes=[]), throttled=throttled,
                       server_error=server_error)
