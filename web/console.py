"""/console (role migration): the tenants and their readiness, the waves with state, progress, failures by reason
and flags, the identity conflicts to decide (read-only: decisions stay CSV + CLI, audited), open quarantine, and
links to the Prefect UI for the runs. Read through the repositories the CLI reports use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from core.readiness import ReadinessReport
from core.records import ActionState
from db.repositories import IdentityRepository, QuarantineRepository, TenantRepository
from db.waves import PlanRepository, WaveListing, WaveRepository
from web.auth import MigrationCaller
from web.pages import render

__all__ = ["ConsoleView", "WaveView", "read_console", "router"]

CONFLICTS_SHOWN = 50
# How each channel reaches a series' attendees (core.waves.Channel), as the migration team reads it.
CHANNEL_NAMES = {
    "calendar_in_place": "Dans l'agenda de l'organisateur, sous l'UID d'origine (le serveur prévient les participants)",
    "itip_original_uid": "Dans l'agenda de l'organisateur, et invitation envoyée par bascule sous l'UID d'origine",
    "mail_invented_uid": "Invitation envoyée sous un nouvel UID (uid_unknown : un second événement chez les "
                         "participants)",
}
DEPLOYMENTS = ("extract", "identities", "wave-cutover", "licences-release", "savings-snapshot")


@dataclass
class WaveView:
    """A wave with its progress and its failures by reason."""

    listing: WaveListing
    failures: dict[str, int]
    held: dict[str, int]

    @property
    def progress(self) -> int:
        return round(100 * self.listing.done / self.listing.actions) if self.listing.actions else 0


@dataclass
class ConsoleView:
    tenant_id: str
    name: str
    ready: bool | None
    readiness: ReadinessReport | None
    waves: list[WaveView] = field(default_factory=list)
    conflicts: dict[str, int] = field(default_factory=dict)
    conflict_rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant_id, "name": self.name, "ready": self.ready,
                "readiness": self.readiness.to_json() if self.readiness else None,
                "waves": [{"name": wave.listing.name, "state": wave.listing.state.value,
                           "persons": wave.listing.persons, "actions": wave.listing.actions,
                           "done": wave.listing.done, "held": wave.listing.held, "failed": wave.listing.failed,
                           "progress_percent": wave.progress, "failures_by_reason": wave.failures,
                           "cut_over_at": wave.listing.cut_over_at.isoformat() if wave.listing.cut_over_at else None}
                          for wave in self.waves],
                "open_conflicts": self.conflicts, "open_quarantine": self.quarantine}


def read_console(session: Session, tenant_id: str) -> ConsoleView:
    row = TenantRepository(session).get(tenant_id)
    readiness = None
    if row is not None and isinstance(row.readiness, dict) and row.readiness.get("checked_at"):
        readiness = ReadinessReport.from_json(row.readiness)
    view = ConsoleView(tenant_id, row.name if row else tenant_id, row.ready if row else None, readiness)
    waves, plans = WaveRepository(session, tenant_id), PlanRepository(session, tenant_id)
    for listing in waves.listing():
        wave_id = waves.id_of(listing.name)
        failures = plans.reasons(wave_id, states=[ActionState.FAILED]) if wave_id else {}
        held = plans.reasons(wave_id, states=[ActionState.HELD]) if wave_id else {}
        view.waves.append(WaveView(listing, failures, held))
    identities = IdentityRepository(session, tenant_id)
    view.conflicts = identities.open_conflict_counts()
    for index, conflict in enumerate(identities.iter_open_conflicts()):
        if index >= CONFLICTS_SHOWN:
            break
        view.conflict_rows.append({"kind": conflict.kind, "subject": conflict.subject, "value": conflict.value,
                                   "detail": conflict.detail, "first_seen": conflict.first_seen_at})
    view.quarantine = QuarantineRepository(session, tenant_id).open_counts()
    return view


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("")
    def console(request: Request, caller: MigrationCaller) -> Response:
        with request.app.state.sessions() as session:
            view = read_console(session, caller.tenant_id)
        return render(request, "console.html", {"title": "Pilotage de la migration", "caller": caller,
                                                "view": view, "deployments": DEPLOYMENTS,
                                                "shown": CONFLICTS_SHOWN})

    @routes.get("/waves/{name}")
    def wave(request: Request, caller: MigrationCaller, name: str) -> Response:
        with request.app.state.sessions() as session:
            waves = WaveRepository(session, caller.tenant_id)
            wave_id = waves.id_of(name[:128])
            listing = next((item for item in waves.listing() if item.name == name[:128]), None)
            if wave_id is None or listing is None:
                raise HTTPException(status_code=404, detail=f"no wave {name[:60]!r} in {caller.tenant_id}")
            plans = PlanRepository(session, caller.tenant_id)
            counts = plans.counts(wave_id)
            failures = plans.reasons(wave_id, states=[ActionState.FAILED])
            tally = plans.tally(wave_id)
            channels = plans.series_by_channel(wave_id)
        return render(request, "wave.html", {"title": f"Vague {listing.name}", "caller": caller, "wave": listing,
                                             "counts": counts, "failures": failures, "tally": tally,
                                             "channels": channels, "channel_names": CHANNEL_NAMES})

    return routes
