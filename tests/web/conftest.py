"""What the web tests share: a state database holding the savings test's ministry, its month computed and stored,
a mapped and a reverted link, and one agent per role."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from core.access import Role
from db import models
from db.access import AccessRepository
from db.engine import make_engine, make_session_factory
from db.models import table_of

TENANT = "min-savings-test"
FINANCE, HELPDESK, MIGRATION, ADMIN = ("fin@chiffre.gouv.fr", "help@chiffre.gouv.fr", "mig@chiffre.gouv.fr",
                                       "admin@chiffre.gouv.fr")
NOW = datetime(2026, 11, 15, 9, tzinfo=UTC)


def grant(url: str, email: str, role: Role) -> None:
    with make_session_factory(make_engine(url)).begin() as session:
        AccessRepository(session).grant(TENANT, email, role, actor="test", now=NOW)


@pytest.fixture
def state(migrated_url: str, tmp_path: Path) -> str:
    """The savings test's ministry (1,000 Zoom seats, 900 released, one verified wave), its month computed and
    stored; a mapped and a reverted link; one agent per role."""
    from tests.flows.test_savings_report import NOVEMBER, _snapshots, _state, _sync, _tenant

    tenant = _tenant(tmp_path)
    _state(migrated_url)
    _sync(migrated_url, tenant)
    _snapshots(migrated_url, tenant, NOVEMBER)
    engine = make_engine(migrated_url)
    with make_session_factory(engine).begin() as session:
        session.execute(insert(table_of(models.Room)), [{
            "tenant_id": TENANT, "meet_id": "room-1", "action_key": "a1", "slug": "abc-defg-hij",
            "url": "https://visio.example.gouv.fr/abc-defg-hij", "access_level": "trusted",
            "owner_email": "person-00001@chiffre.gouv.fr", "created_at": NOW}])
        room_id = session.execute(select(models.Room.id)).scalar_one()
        session.execute(insert(table_of(models.Link)), [
            {"tenant_id": TENANT, "old_key": "zoom:81234567890", "platform": "zoom",
             "old_url": "https://zoom.us/j/81234567890", "meeting_external_id": "81234567890", "topic": "Point RH",
             "host_anchor": None, "room_id": room_id, "wave_id": None, "status": "mapped", "updated_at": NOW},
            {"tenant_id": TENANT, "old_key": "zoom:81234567891", "platform": "zoom",
             "old_url": "https://zoom.us/j/81234567891", "meeting_external_id": "81234567891", "topic": "Revue",
             "host_anchor": None, "room_id": None, "wave_id": None, "status": "reverted", "updated_at": NOW}])
    engine.dispose()
    for email, role in ((FINANCE, Role.FINANCE), (HELPDESK, Role.HELPDESK), (MIGRATION, Role.MIGRATION),
                        (ADMIN, Role.ADMIN)):
        grant(migrated_url, email, role)
    return migrated_url


