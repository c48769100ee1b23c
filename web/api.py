"""The JSON API under /api (OpenAPI document at /api/openapi.json): the same reads as the pages, the same guards.
Anonymous callers get 401, callers without the role 403 (web.app)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from core.links import MAX_REFERENCE
from db.helpdesk import HelpdeskRepository
from web.auth import FinanceCaller, HelpdeskCaller, MigrationCaller
from web.console import read_console
from web.savings_view import parse_month, read_dashboard

__all__ = ["router"]

Tenant = Annotated[str | None, Query(max_length=64, description="Tenant id (default: the first one the caller "
                                                                  "holds the role for).")]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (default: the latest stored).")]
Reference = Annotated[str, Query(min_length=1, max_length=MAX_REFERENCE,
                                 description="An old link, a meeting id or number, a SIP address, a host's e-mail "
                                             "or name.")]
ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Not logged in"},
                                           403: {"description": "The caller lacks the role for the tenant"}}


def router() -> APIRouter:
    routes = APIRouter(tags=["bascule"], responses=ERRORS)

    @routes.get("/savings", summary="The stored savings of a month (headline, rows, breakdowns, calendar, …)",
                responses={404: {"description": "No month computed yet"}})
    def savings(request: Request, caller: FinanceCaller, tenant: Tenant = None, month: Month = None
                ) -> dict[str, Any]:
        with request.app.state.sessions() as session:
            dash = read_dashboard(session, caller.tenant_id, parse_month(month))
        if dash is None:
            raise HTTPException(status_code=404, detail="no savings computed for this month yet")
        return dash.as_json()

    @routes.get("/links/lookup", summary="Old meeting link → Visio link, or where the meeting stands")
    def lookup(request: Request, caller: HelpdeskCaller, q: Reference, tenant: Tenant = None) -> dict[str, Any]:
        with request.app.state.sessions() as session:
            return HelpdeskRepository(session, caller.tenant_id).lookup(q).as_json()

    @routes.get("/console", summary="Readiness, waves, failures by reason, open conflicts and quarantine")
    def console(request: Request, caller: MigrationCaller, tenant: Tenant = None) -> dict[str, Any]:
        with request.app.state.sessions() as session:
            return read_console(session, caller.tenant_id).as_json()

    return routes
