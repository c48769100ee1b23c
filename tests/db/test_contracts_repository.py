"""ContractRepository: contract lines round-trip as core.contracts.Contract, upserted by reference and content
hash; amendments come back as QuantityChanges (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.contracts import Contract, QuantityChange
from core.money import Money
from core.records import Platform
from db.contracts import ContractRepository
from db.repositories import TenantRepository
from flows.runtime import transaction

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

CONTRACT = Contract(vendor="Cisco Webex", contract_ref="WEBEX-1", platform=Platform.WEBEX,
                    sku_key="Meeting - Webex Meeting Center", unit_price=Money(Decimal("132.00"), "USD"),
                    renewal_unit_price=Money(Decimal("140.50"), "USD"), committed_qty=500, commit_floor=400,
                    term_start=date(2024, 7, 1), term_end=date(2027, 6, 30), renewal_date=date(2027, 7, 1),
                    billing_period_months=36, notice_days=120, auto_renew=False,
                    true_down_dates=(date(2026, 7, 1), date(2025, 7, 1)), cancellation_window_days=0,
                    vat_included=True)


def _tenant(url: str) -> None:
    with transaction(url) as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)


def test_a_contract_round_trips_and_is_upserted_by_reference(migrated_url: str) -> None:
    _tenant(migrated_url)
    with transaction(migrated_url) as session:
        assert ContractRepository(session, "t1").upsert([CONTRACT], now=NOW) == {"WEBEX-1": "created"}
    with transaction(migrated_url) as session:
        repository = ContractRepository(session, "t1")
        assert repository.contracts() == [CONTRACT]
        assert repository.get("WEBEX-1") == CONTRACT and repository.get("WEBEX-2") is None
        same_price = replace(CONTRACT, unit_price=Money(Decimal("132"), "USD"))
        assert repository.upsert([same_price], now=NOW) == {"WEBEX-1": "unchanged"}
        assert repository.upsert([replace(CONTRACT, committed_qty=450)], now=NOW) == {"WEBEX-1": "updated"}
    with transaction(migrated_url) as session:
        assert [c.committed_qty for c in ContractRepository(session, "t1").contracts()] == [450]
        assert ContractRepository(session, "other").contracts() == []


def test_amendments_come_back_as_quantity_changes(migrated_url: str) -> None:
    _tenant(migrated_url)
    changes = [QuantityChange("WEBEX-1", date(2026, 7, 1), 420, "order 1", "alice"),
               QuantityChange("WEBEX-1", date(2025, 7, 1), 450, "order 2", "bob")]
    with transaction(migrated_url) as session:
        repository = ContractRepository(session, "t1")
        repository.upsert([CONTRACT], now=NOW)
        for change in changes:
            repository.add_amendment(change, recorded_by=change.recorded_by or "x", now=NOW)
        with pytest.raises(ValueError, match="evidence"):
            repository.add_amendment(QuantityChange("WEBEX-1", date(2026, 7, 1), 420), recorded_by="x", now=NOW)
    with transaction(migrated_url) as session:
        assert ContractRepository(session, "t1").amendments() == {"WEBEX-1": changes}
