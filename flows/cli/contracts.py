"""`bascule contracts`: the tenant's contract lines, their quantity amendments, and the contract calendar."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from typing import Annotated

import typer

from flows.cli.common import TenantOption, fail, load_tenant, state_database

app = typer.Typer(help="Licence contracts: store them from the tenant file, record amendments, see the calendar.",
                  no_args_is_help=True)


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r}: not a date (YYYY-MM-DD)")


@app.command("sync")
def contracts_sync(tenant: TenantOption) -> None:
    """Store the tenant file's [[contracts]] lines (upsert by contract_ref); an unknown sku_key is refused."""
    from flows.contracts import ContractRefused, sync_contracts

    config = load_tenant(tenant)
    database = state_database()
    try:
        result = sync_contracts(database, config, tenant)
    except ContractRefused as exc:
        fail(str(exc))
    for warning in result.warnings:
        print(f"bascule: warning: {warning}", file=sys.stderr)
    counts = {state: sum(1 for done in result.outcome.values() if done == state)
              for state in ("created", "updated", "unchanged")}
    print(f"tenant {config.id}: {len(result.outcome)} contracts: " + ", ".join(
        f"{count} {state}" for state, count in counts.items()))


@app.command("amend")
def contracts_amend(
    tenant: TenantOption,
    contract: Annotated[str, typer.Option("--contract", help="The contract_ref to amend.")],
    quantity: Annotated[int, typer.Option("--quantity", help="The committed quantity from the effective date.")],
    effective: Annotated[str, typer.Option("--effective", help="First day billed at that quantity (YYYY-MM-DD).")],
    evidence: Annotated[str, typer.Option("--evidence", help="The amendment, order or invoice reference, e.g. "
                                                             "\"order 2027-114\".")],
    by: Annotated[str | None, typer.Option("--by", help="Who records it (audit); default: $USER.")] = None,
) -> None:
    """Record a change of a contract's committed quantity with its evidence (audited)."""
    from flows.contracts import ContractRefused, amend_contract

    config = load_tenant(tenant)
    day = _date(effective, "--effective")
    if not evidence.strip():
        fail(f"contract {contract}: --evidence must name the amendment, order or invoice that proves the change")
    database = state_database()
    try:
        done = amend_contract(database, config.id, contract, quantity=quantity, effective=day, evidence=evidence,
                              recorded_by=by or os.environ.get("USER") or "unknown")
    except ContractRefused as exc:
        fail(str(exc))
    print(f"contract {contract}: {done['before']} -> {done['committed_qty']} seats from {done['effective']} "
          f"(evidence: {done['evidence']}; by {done['recorded_by']})")


@app.command("list")
def contracts_list(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="The calendar as of this day (default: "
                                                              "today).")] = None,
) -> None:
    """The contract calendar: quantities, floors, prices, terms, notice deadlines, NCE windows open now,
    amendments, and observed seats that disagree with the contract (reported, not corrected)."""
    from flows.contracts import contract_listing, render_listing

    config = load_tenant(tenant)
    day = _date(as_of, "--as-of") if as_of is not None else datetime.now(UTC).date()
    listing = contract_listing(state_database(), config.id, on=day)
    print(json.dumps(listing, sort_keys=True, ensure_ascii=False) if as_json else render_listing(listing))
