"""Contracts (savings.md §3, §5): the tenant file's contract lines stored, quantity amendments recorded with their
evidence, and the contract calendar with the seats the platforms report beside each contract.

No Prefect: these are short database writes and reads an operator runs by hand.

- `sync_contracts`: the `[[contracts]]` lines, validated (tenant file) and converted to `core.contracts.Contract`,
  upserted by reference. An `sku_key` that the tenant's cost model and the extracted licence SKUs of its platform do
  not know is refused (nothing written); when neither lists any SKU of that platform yet (before the first
  extraction), it cannot be checked and is stored with a warning.
- `amend_contract`: one quantity change, refused (nothing written) for an unknown contract (nearest references
  suggested), a blank evidence, a quantity below the commitment floor, an effective date before the term start.
- `contract_listing`: `contract_calendar` as of a date, amendments, and observed seats that disagree with the
  committed quantity (reported, never corrected).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from core.contracts import Contract, ContractInvalid, QuantityChange, committed_as_of, contract_calendar
from core.records import Platform
from db.contracts import ContractRepository, ObservedSeats
from db.repositories import AuditRepository, TenantRepository
from flows.errors import OperatorError
from flows.runtime import transaction
from flows.tenant import TenantConfig

__all__ = ["ContractRefused", "SyncResult", "amend_contract", "contract_listing", "render_listing",
           "sync_contracts"]


class ContractRefused(OperatorError, ValueError):
    """A contract line or amendment that cannot be recorded; nothing was written (message on one line)."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What `sync_contracts` did to each contract reference, and the warnings it gave."""

    outcome: dict[str, str]
    warnings: list[str]


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _matches(contract: Contract, seats: ObservedSeats) -> bool:
    """Whether an extracted SKU is the contract's: same platform, and the contract's `sku_key` is the SKU's key
    (Graph skuId, Zoom `zoom:type:N`, Webex licence id) or its name (Graph skuPartNumber, Webex licence name)."""
    wanted = contract.sku_key.strip().lower()
    return seats.platform == contract.platform and wanted in {seats.sku_key.lower(), seats.name.strip().lower()}


def sync_contracts(database_url: str, config: TenantConfig, path: Path, *,
                   now: datetime | None = None) -> SyncResult:
    """Store the tenant file's contract lines (upsert by reference, content hash); ContractRefused, nothing
    written, when a line cannot be a contract or names an SKU the tenant does not know."""
    at = _now(now)
    contracts: list[Contract] = []
    for line in config.contracts:
        try:
            contracts.append(line.to_contract())
        except (ContractInvalid, ValueError) as exc:
            raise ContractRefused(f"tenant file {path}: contracts[{line.contract_ref}]: {exc}") from None
    with transaction(database_url) as session:
        tenants = TenantRepository(session)
        repository = ContractRepository(session, config.id)
        observed = repository.observed_seats() if tenants.get(config.id) is not None else []
        warnings = _check_skus(config, contracts, observed, path)
        if tenants.get(config.id) is None:
            tenants.ensure(config.id, name=config.name, siret=config.siret, config_path=str(path),
                           config_hash=TenantConfig.file_hash(path), now=at)
        outcome = repository.upsert(contracts, now=at)
    return SyncResult(outcome, warnings)


def _check_skus(config: TenantConfig, contracts: list[Contract], observed: list[ObservedSeats],
                path: Path) -> list[str]:
    known: dict[Platform, set[str]] = {}
    for sku in config.cost_model.skus:
        known.setdefault(Platform(sku.platform), set()).add(sku.sku_key.strip().lower())
    for seats in observed:
        known.setdefault(seats.platform, set()).update({seats.sku_key.lower(), seats.name.strip().lower()})
    warnings = []
    for contract in contracts:
        keys = known.get(contract.platform)
        if not keys:
            warnings.append(f"contracts[{contract.contract_ref}]: sku_key {contract.sku_key!r} not checked: no "
                            f"{contract.platform.value} SKU is known yet (run bascule extract, or add "
                            "[[cost_model.skus]])")
        elif contract.sku_key.strip().lower() not in keys:
            nearest = difflib.get_close_matches(contract.sku_key.strip().lower(), sorted(keys), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(nearest)}?)" if nearest else ""
            raise ContractRefused(f"tenant file {path}: contracts[{contract.contract_ref}]: sku_key "
                                  f"{contract.sku_key!r} is neither in [[cost_model.skus]] nor among the extracted "
                                  f"{contract.platform.value} licence SKUs{hint}")
    return warnings


def amend_contract(database_url: str, tenant_id: str, contract_ref: str, *, quantity: int, effective: date,
                   evidence: str, recorded_by: str, now: datetime | None = None) -> dict[str, Any]:
    """Record a change of a contract's committed quantity with its evidence (audited); ContractRefused, nothing
    written, when it cannot be true."""
    if not evidence.strip():
        raise ContractRefused(f"contract {contract_ref}: --evidence must name the amendment, order or invoice that "
                              "proves the change (e.g. \"order 2027-114\")")
    if quantity < 0:
        raise ContractRefused(f"contract {contract_ref}: --quantity must be 0 or more, not {quantity}")
    at = _now(now)
    with transaction(database_url) as session:
        repository = ContractRepository(session, tenant_id)
        contract = repository.get(contract_ref)
        if contract is None:
            refs = repository.refs()
            nearest = difflib.get_close_matches(contract_ref, refs, n=3, cutoff=0.4)
            hint = (f"; did you mean {', '.join(nearest)}?" if nearest
                    else f"; known: {', '.join(refs)}" if refs else "; none is recorded: run bascule contracts sync")
            raise ContractRefused(f"no contract {contract_ref!r} for tenant {tenant_id}{hint}")
        if quantity < contract.commit_floor:
            raise ContractRefused(f"contract {contract_ref}: --quantity {quantity} is below the commitment floor "
                                  f"{contract.commit_floor} (the contract does not allow it during the term)")
        if effective < contract.term_start:
            raise ContractRefused(f"contract {contract_ref}: --effective {effective} is before the term start "
                                  f"{contract.term_start}")
        try:
            change = QuantityChange(contract_ref=contract_ref, effective=effective, quantity=quantity,
                                    evidence=evidence.strip(), recorded_by=recorded_by)
        except ContractInvalid as exc:
            raise ContractRefused(f"contract {contract_ref}: {exc}") from None
        changes = repository.amendments().get(contract_ref, [])
        before = committed_as_of(contract, changes, on=effective)
        repository.add_amendment(change, recorded_by=recorded_by, now=at)
        after = {"committed_qty": quantity, "effective": effective.isoformat(), "evidence": change.evidence}
        AuditRepository(session, tenant_id).record(
            actor=recorded_by, action="contract.amend", target_kind="contract", target_id=contract_ref, now=at,
            before={"committed_qty": before, "effective": effective.isoformat()}, after=after)
    return {"contract_ref": contract_ref, "before": before, **after, "recorded_by": recorded_by}


def _observed(contract: Contract, observed: list[ObservedSeats]) -> dict[str, Any] | None:
    """The seats the platform reports for the contract's SKU: paid seats when it shows them (Graph
    prepaidUnits.enabled, Webex totalUnits), else licensed users (Zoom's Meeting API shows no plan seats)."""
    found = [seats for seats in observed if _matches(contract, seats)]
    if not found:
        return None
    prepaid = [seats.prepaid for seats in found if seats.prepaid is not None]
    if prepaid:
        return {"seats": sum(prepaid), "basis": "paid seats", "skus": [seats.sku_key for seats in found]}
    assigned = [seats.assigned for seats in found if seats.assigned is not None]
    if assigned:
        return {"seats": sum(assigned), "basis": "licensed users", "skus": [seats.sku_key for seats in found]}
    return None


def contract_listing(database_url: str, tenant_id: str, *, on: date) -> dict[str, Any]:
    """The contract calendar of a tenant as of `on`, with amendments and observed seats (one JSON object)."""
    with transaction(database_url) as session:
        repository = ContractRepository(session, tenant_id)
        contracts = repository.contracts()
        amendments = repository.amendments()
        observed = repository.observed_seats()
    calendar = contract_calendar([(contract, amendments.get(contract.contract_ref, [])) for contract in contracts],
                                 on=on)
    rows = []
    for entry in calendar:
        contract = entry.contract
        seen = _observed(contract, observed)
        mismatch = None
        if seen is not None and seen["seats"] != entry.committed_qty:
            mismatch = {"observed": seen["seats"], "basis": seen["basis"], "committed": entry.committed_qty,
                        "difference": seen["seats"] - entry.committed_qty}
        rows.append({
            "vendor": contract.vendor, "contract_ref": contract.contract_ref, "platform": contract.platform.value,
            "sku_key": contract.sku_key, "committed_qty": entry.committed_qty,
            "contract_qty": contract.committed_qty, "commit_floor": contract.commit_floor,
            "unit_price": str(contract.unit_price.amount) if contract.unit_price is not None else None,
            "renewal_unit_price": (str(contract.renewal_unit_price.amount)
                                   if contract.renewal_unit_price is not None else None),
            "currency": contract.currency, "billing_period_months": contract.billing_period_months,
            "term_start": contract.term_start.isoformat(),
            "term_end": contract.term_end.isoformat() if contract.term_end is not None else None,
            "renewal_date": contract.renewal_date.isoformat(), "auto_renew": contract.auto_renew,
            "notice_deadline": entry.notice_deadline.isoformat(),
            "next_true_down": entry.next_true_down.isoformat() if entry.next_true_down else None,
            "nce_window_open": entry.nce_window_open,
            "nce_window_closes": entry.nce_window_closes.isoformat() if entry.nce_window_closes else None,
            "next_deadline": entry.next_deadline.isoformat() if entry.next_deadline else None,
            "amendments": [{"effective": change.effective.isoformat(), "quantity": change.quantity,
                            "evidence": change.evidence, "recorded_by": change.recorded_by}
                           for change in sorted(amendments.get(contract.contract_ref, []),
                                                key=lambda change: change.effective)],
            "observed": seen, "mismatch": mismatch})
    return {"tenant": tenant_id, "as_of": on.isoformat(), "contracts": rows,
            "mismatches": [row["contract_ref"] for row in rows if row["mismatch"] is not None]}


def render_listing(listing: dict[str, Any]) -> str:
    """The listing for people: one block per contract, sorted by next deadline."""
    rows = listing["contracts"]
    if not rows:
        return f"tenant {listing['tenant']}: no contract recorded (run bascule contracts sync --tenant FILE)"
    lines = [f"tenant {listing['tenant']}: {len(rows)} contracts as of {listing['as_of']}"]
    for row in rows:
        price = (f"{row['unit_price']} {row['currency']}/seat per {row['billing_period_months']} months"
                 if row["unit_price"] is not None else "no price (estimated at the benchmark)")
        renewal = "auto-renews" if row["auto_renew"] else "ends"
        lines.append(f"{row['contract_ref']}  {row['vendor']}  {row['platform']} {row['sku_key']}")
        lines.append(f"  committed {row['committed_qty']} (floor {row['commit_floor']}), {price}")
        lines.append(f"  term {row['term_start']} to {row['term_end']}, {renewal} {row['renewal_date']}, "
                     f"notice by {row['notice_deadline']}"
                     + (f", next true-down {row['next_true_down']}" if row["next_true_down"] else ""))
        if row["nce_window_open"]:
            lines.append(f"  NCE cancellation window OPEN until {row['nce_window_closes']} (closed from that day)")
        for change in row["amendments"]:
            lines.append(f"  amended: {change['quantity']} seats from {change['effective']} "
                         f"(evidence: {change['evidence']}; by {change['recorded_by']})")
        mismatch = row["mismatch"]
        if mismatch is not None:
            lines.append(f"  MISMATCH: the platform reports {mismatch['observed']} {mismatch['basis']}, the "
                         f"contract commits {mismatch['committed']} ({mismatch['difference']:+d}): contract data "
                         "out of date or seats bought outside it; not corrected")
    return "\n".join(lines)
