"""Contract lines and their amendments, as stored (savings.md §3, §5); the seats the platforms report beside them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contracts import Contract, QuantityChange
from core.money import Money
from core.records import Platform
from db import models

__all__ = ["ContractRepository", "ObservedSeats", "contract_row_hash"]


@dataclass(frozen=True, slots=True)
class AmendmentRecord:
    """One recorded change of a contract's quantity, as the audit trail shows it (`delta` = after − before)."""

    contract_ref: str
    effective: date
    before: int
    after: int
    evidence: str
    recorded_by: str
    recorded_at: datetime

    @property
    def delta(self) -> int:
        return self.after - self.before


@dataclass(frozen=True, slots=True)
class ObservedSeats:
    """Seats a platform reports for one SKU: `prepaid` (Graph `prepaidUnits.enabled`, Webex `totalUnits`) when it
    shows them, else None; `assigned` (consumed units, Zoom licensed users)."""

    platform: Platform
    sku_key: str
    name: str
    prepaid: int | None
    assigned: int | None


def _row(tenant_id: str, contract: Contract) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "contract_ref": contract.contract_ref, "vendor": contract.vendor,
            "platform": contract.platform.value, "sku_key": contract.sku_key,
            "unit_price": contract.unit_price.amount if contract.unit_price is not None else None,
            "renewal_unit_price": (contract.renewal_unit_price.amount if contract.renewal_unit_price is not None
                                   else None),
            "currency": contract.currency, "billing_period_months": contract.billing_period_months,
            "committed_qty": contract.committed_qty, "commit_floor": contract.commit_floor,
            "term_start": contract.term_start, "term_end": contract.term_end, "renewal_date": contract.renewal_date,
            "notice_days": contract.notice_days, "auto_renew": contract.auto_renew,
            "true_down_dates": [day.isoformat() for day in contract.true_down_dates],
            "cancellation_window_days": contract.cancellation_window_days, "vat_included": contract.vat_included}


def contract_row_hash(row: dict[str, Any]) -> str:
    """A hash of a contract row's content (prices normalised, so that 12.5 and 12.50 are the same)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value.normalize())
        if isinstance(value, date):
            return value.isoformat()
        return value

    canonical = json.dumps({key: plain(value) for key, value in sorted(row.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ContractRepository:
    """One tenant's contract lines (upserted by reference from the tenant file) and amendments (append-only)."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def upsert(self, contracts: Sequence[Contract], *, now: datetime) -> dict[str, str]:
        """Insert or update each contract by reference; what happened to each: created, updated or unchanged.
        Lines no longer in the tenant file are kept (amendments refer to them) and reported by `refs()`."""
        table = models.Contract
        stored = {row.contract_ref: row for row in self._session.execute(
            select(table).where(table.tenant_id == self._tenant_id)).scalars()}
        outcome: dict[str, str] = {}
        for contract in contracts:
            row = _row(self._tenant_id, contract)
            digest = contract_row_hash(row)
            existing = stored.get(contract.contract_ref)
            if existing is None:
                self._session.add(table(**row, content_hash=digest, updated_at=now))
                outcome[contract.contract_ref] = "created"
            elif existing.content_hash != digest:
                for key, value in row.items():
                    setattr(existing, key, value)
                existing.content_hash = digest
                existing.updated_at = now
                outcome[contract.contract_ref] = "updated"
            else:
                outcome[contract.contract_ref] = "unchanged"
        self._session.flush()
        return outcome

    def refs(self) -> list[str]:
        table = models.Contract
        return list(self._session.execute(select(table.contract_ref).where(
            table.tenant_id == self._tenant_id).order_by(table.contract_ref)).scalars())

    def contracts(self) -> list[Contract]:
        table = models.Contract
        rows = self._session.execute(select(table).where(table.tenant_id == self._tenant_id)
                                     .order_by(table.contract_ref)).scalars()
        return [_contract(row) for row in rows]

    def get(self, contract_ref: str) -> Contract | None:
        table = models.Contract
        row = self._session.execute(select(table).where(
            table.tenant_id == self._tenant_id, table.contract_ref == contract_ref)).scalar_one_or_none()
        return _contract(row) if row is not None else None

    def add_amendment(self, change: QuantityChange, *, recorded_by: str, now: datetime) -> None:
        if change.evidence is None:
            raise ValueError("an amendment is stored with its evidence; a planned change is not an amendment")
        self._session.add(models.ContractAmendment(
            tenant_id=self._tenant_id, contract_ref=change.contract_ref, effective=change.effective,
            quantity=change.quantity, evidence=change.evidence, recorded_by=recorded_by, recorded_at=now))
        self._session.flush()

    def amendments(self) -> dict[str, list[QuantityChange]]:
        """Every amendment by contract reference, in the order they were recorded."""
        table = models.ContractAmendment
        found: dict[str, list[QuantityChange]] = {}
        for row in self._session.execute(select(table).where(table.tenant_id == self._tenant_id)
                                         .order_by(table.recorded_at, table.id)).scalars():
            found.setdefault(row.contract_ref, []).append(QuantityChange(
                contract_ref=row.contract_ref, effective=row.effective, quantity=row.quantity,
                evidence=row.evidence, recorded_by=row.recorded_by))
        return found

    def evidence(self) -> list[AmendmentRecord]:
        """The audit trail of realised figures (savings.md §4.7): every amendment with its document reference,
        effective date, the quantity before and after, who entered it and when; by contract, then effective date."""
        contracts = {contract.contract_ref: contract.committed_qty for contract in self.contracts()}
        table = models.ContractAmendment
        found: list[AmendmentRecord] = []
        previous: dict[str, int] = {}
        for row in self._session.execute(select(table).where(table.tenant_id == self._tenant_id)
                                         .order_by(table.contract_ref, table.effective, table.recorded_at,
                                                   table.id)).scalars():
            before = previous.get(row.contract_ref, contracts.get(row.contract_ref, row.quantity))
            found.append(AmendmentRecord(row.contract_ref, row.effective, before, row.quantity, row.evidence,
                                         row.recorded_by, row.recorded_at))
            previous[row.contract_ref] = row.quantity
        return found

    def observed_seats(self) -> list[ObservedSeats]:
        """The licence SKUs the last extraction saw (gone ones left out)."""
        table = models.LicenceSku
        rows = self._session.execute(select(table).where(table.tenant_id == self._tenant_id,
                                                         table.removed_at.is_(None))
                                     .order_by(table.platform, table.sku_key)).scalars()
        return [ObservedSeats(Platform(row.platform), row.sku_key, row.name, row.prepaid_units, row.consumed_units)
                for row in rows]


def _contract(row: models.Contract) -> Contract:
    price = Money(Decimal(row.unit_price), row.currency) if row.unit_price is not None else None
    renewal_price = (Money(Decimal(row.renewal_unit_price), row.currency) if row.renewal_unit_price is not None
                     else None)
    assert row.term_start is not None and row.renewal_date is not None  # stored from a validated Contract
    return Contract(vendor=row.vendor, contract_ref=row.contract_ref, platform=Platform(row.platform),
                    sku_key=row.sku_key, unit_price=price, committed_qty=row.committed_qty,
                    term_start=row.term_start, renewal_date=row.renewal_date, commit_floor=row.commit_floor,
                    billing_period_months=row.billing_period_months, term_end=row.term_end,
                    renewal_unit_price=renewal_price, notice_days=row.notice_days, auto_renew=row.auto_renew,
                    true_down_dates=tuple(date.fromisoformat(day) for day in row.true_down_dates or ()),
                    cancellation_window_days=row.cancellation_window_days, vat_included=row.vat_included)
