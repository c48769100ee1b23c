"""Meetings stored and read back whole: recurrence zone, exclusions, exceptions, unknown invitees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core import Meeting, MeetingKind, OccurrenceChange, Platform, Recurrence
from db import models
from db.engine import make_engine, make_session_factory
from db.models import table_of
from db.repositories import MeetingRepository, TenantRepository
from db.waves import meeting_from_row

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def test_a_series_reads_back_with_its_exceptions_and_zone(migrated_url: str) -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    week = timedelta(days=7)
    series = Meeting(Platform.TEAMS, "evt-1", "host-1", "host@culture.gouv.fr", "Comité", MeetingKind.WEEKLY,
                     "UTC", "https://teams.microsoft.com/l/meetup-join/x", "teams:x", start=start,
                     duration_minutes=60, recurrence=Recurrence("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", "Europe/Paris"),
                     exclusions=(start + week,),
                     exceptions=(OccurrenceChange(start + 2 * week, start + 2 * week + timedelta(hours=1), 30),),
                     invitees_known=False)
    plain = Meeting(Platform.TEAMS, "evt-2", "host-1", "host@culture.gouv.fr", "Point", MeetingKind.ONE_OFF,
                    "Europe/Paris", "https://teams.microsoft.com/l/meetup-join/y", "teams:y", start=start,
                    recurrence=None)
    sessions = make_session_factory(make_engine(migrated_url))
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        MeetingRepository(session, "t1", Platform.TEAMS).upsert([series, plain], now=NOW, pass_id="p1")
    with sessions() as session:
        table = table_of(models.Meeting)
        rows = {row["external_id"]: row for row in session.execute(select(table)).mappings()}
        assert meeting_from_row(rows["evt-1"]) == series
        assert meeting_from_row(rows["evt-2"]) == plain
        assert rows["evt-1"]["rrule_timezone"] == "Europe/Paris" and rows["evt-2"]["rrule_timezone"] is None
