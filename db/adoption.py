"""Adoption evidence as stored: LiveKit webhook events, once each (the event id is the key)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.adoption import AdoptionEvent
from db import models
from db.models import table_of
from db.upsert import upsert_plain


class AdoptionRepository:
    """One tenant's adoption events. Never commits: the caller's transaction does."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def record(self, events: Sequence[AdoptionEvent]) -> int:
        """Store events not seen before; a duplicate or late delivery of a known event id changes nothing (the
        first stored stays). Returns how many were new. `occurred_at` is when LiveKit says the event happened."""
        if not events:
            return 0
        before = self.count()
        rows = [{"tenant_id": self._tenant_id, "event_id": event.event_id, "event": str(event.event),
                 "room_meet_id": event.room_name, "participant_identity": event.participant_identity,
                 "authenticated": bool(event.authenticated), "room_role": str(event.room_role) if event.room_role
                 else None, "occurred_at": event.created_at} for event in events]
        upsert_plain(self._session, table_of(models.AdoptionEvent), rows, key=["tenant_id", "event_id"], update=[])
        return self.count() - before

    def count(self) -> int:
        table = table_of(models.AdoptionEvent)
        return int(self._session.execute(select(func.count()).select_from(table)
                                         .where(table.c.tenant_id == self._tenant_id)).scalar_one())
