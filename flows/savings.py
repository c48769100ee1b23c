"""The savings ledger: monthly snapshots per platform × SKU × contract, their breakdowns, the report (issue 12, 5).

`compute_snapshots` reads the stored contracts (with their amendments), counts seats in SQL (db.savings: assigned,
held by people not migrated yet, released by bascule, active, never active), credits each person who left the
licensed tools (and each migrated person) to one row, and computes every figure with core.savings, one function per
formula of savings.md. The month's rows are upserted (recomputing gives the same rows), and its breakdowns by
direction, wave, tool, SKU and contract are stored beside them: the dashboard reads them, never recomputes.

A contract names its SKU as the tenant wrote it (a Graph skuId or part number, a Zoom type key, a Webex licence id
or name): it covers every extracted SKU whose key or name matches, ignoring case. SKUs bascule releases that no
contract covers get a row of their own (contract `-`), priced by the tenant's cost model, else at the €10 benchmark
(estimated), as if paid until the end of the fiscal year. Teams inside a Microsoft suite is never released: such a
SKU counts only when a contract names it.

Breakdowns by direction and wave split each row's figures pro rata, to the cent, the parts adding up to the row:
potential by the seats held by migrated people (spare seats are their own group), stranded, realised and the
benchmark by the seats released; a figure with nothing to split by stays at `(contract level)`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from sqlalchemy import select

from core.contracts import Contract, QuantityChange, committed_as_of, contract_calendar
from core.money import Money
from core.records import Platform
from core.savings import (
    FigureStatus,
    Scenario,
    SeatCounts,
    SnapshotRow,
    allocate,
    allocate_units,
    annual_unit_cost,
    fiscal_year_end,
    forecast,
    gov_expected,
    net,
    realised_in_fy,
    snapshot_row,
    utilisation,
)
from db import models
from db.contracts import ContractRepository
from db.savings import GroupSeats, SavingsRepository, SkuKey
from flows.budget import one_per_tenant
from flows.runtime import run_name, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

__all__ = ["DIMENSIONS", "SUMMARY_PARTS", "SavingsReport", "compute_snapshots", "render_report", "savings_report",
           "write_csv"]

DIMENSIONS = ("direction", "wave", "tool", "sku", "contract")
SUMMARY_PARTS = ("headline", "calendar", "forecast", "utilisation", "funnel")   # stored beside the rows
NO_CONTRACT = "-"
SPARE = "(spare seats)"
CONTRACT_LEVEL = "(contract level)"
CENT = Decimal("0.01")


@dataclass
class SavingsReport:
    """One month of one tenant: headline figures, the rows, the breakdowns, the calendar and the forecast.
    Amounts are strings (exact decimals) in the JSON; every figure with a status says booked or estimated."""

    tenant: str
    month: date
    computed_at: datetime
    currency: str
    headline: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    breakdowns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calendar: list[dict[str, Any]] = field(default_factory=list)
    forecast: list[dict[str, Any]] = field(default_factory=list)
    utilisation: list[dict[str, Any]] = field(default_factory=list)
    months: list[dict[str, Any]] = field(default_factory=list)
    funnel: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Line:
    """A contract (or a SKU no contract covers) and the extracted SKU keys it covers."""

    contract: Contract
    changes: list[QuantityChange]
    keys: list[SkuKey]
    covered: bool = True


def _fold(text: str) -> str:
    return text.strip().casefold()


def _lines(session: Any, tenant: TenantConfig, month: date) -> list[_Line]:
    contracts = ContractRepository(session, tenant.id)
    amendments = contracts.amendments()
    skus = models.LicenceSku
    catalogue = [(row.platform, row.sku_key, row.name, bool(row.includes_meetings)) for row in session.execute(
        select(skus).where(skus.tenant_id == tenant.id, skus.removed_at.is_(None))).scalars()]
    lines: list[_Line] = []
    taken: set[SkuKey] = set()
    for contract in contracts.contracts():
        wanted = _fold(contract.sku_key)
        keys = [(platform, key) for platform, key, name, _ in catalogue if platform == contract.platform.value
                and wanted in (_fold(key), _fold(name)) and (platform, key) not in taken]
        taken.update(keys)
        lines.append(_Line(contract, list(amendments.get(contract.contract_ref, [])), keys))
    standalone = {_fold(name) for name in tenant.release.teams_standalone_skus}
    prices = {(price.platform, _fold(price.sku_key)): price.annual_unit_cost for price in tenant.cost_model.skus}
    for platform, key, name, meetings in catalogue:
        if (platform, key) in taken or not meetings:
            continue
        if platform == Platform.TEAMS.value and not {_fold(key), _fold(name)} & standalone:
            continue   # Teams in a suite: removing it saves nothing (savings.md §3)
        price = prices.get((platform, _fold(key)), prices.get((platform, _fold(name))))
        contract = Contract(vendor="(no contract)", contract_ref=NO_CONTRACT, platform=Platform(platform),
                            sku_key=key, unit_price=Money(price, tenant.cost_model.currency) if price else None,
                            committed_qty=0, term_start=date(month.year, 1, 1),
                            renewal_date=fiscal_year_end(month.year))
        lines.append(_Line(contract, [], [(platform, key)], covered=False))
    return lines


def _sum_counts(counts: Sequence[SeatCounts]) -> SeatCounts:
    return SeatCounts(assigned=sum(c.assigned for c in counts), required_remaining=sum(c.required_remaining
                                                                                       for c in counts),
                      reclaimed=sum(c.reclaimed for c in counts), active=sum(c.active for c in counts),
                      never_active=sum(c.never_active for c in counts))


def _active_since(tenant: TenantConfig, month: date) -> dict[str, datetime]:
    start = datetime(month.year, month.month, month.day, tzinfo=UTC)
    settings = tenant.savings
    return {tool: start - timedelta(days=days + (settings.zoom_activity_buffer_days if tool == "zoom" else 0))
            for tool, days in {"zoom": 90, "teams": 90, "webex": 90, **settings.activity_days}.items()}


def _scenario(tenant: TenantConfig) -> Scenario:
    settings, currency = tenant.savings, tenant.cost_model.currency
    return Scenario(
        visio_cost_per_user=Money(settings.visio_cost_per_user, currency)
        if settings.visio_cost_per_user is not None else None,
        one_off_costs_amortised=Money(settings.one_off_costs_amortised, currency)
        if settings.one_off_costs_amortised is not None else None,
        reduction_delay_months=settings.reduction_delay_months)


def compute_snapshots(database: str, tenant: TenantConfig, *, month: date, now: datetime) -> SavingsReport:
    """Compute, store and report the month's snapshots and breakdowns (idempotent for the same inputs)."""
    if month.day != 1:
        raise ValueError("a month is given by its first day")
    scenario = _scenario(tenant)
    with transaction(database) as session:
        lines = _lines(session, tenant, month)
        store = SavingsRepository(session, tenant.id)
        targets = sorted({key for line in lines for key in line.keys})
        seats = store.seats(targets, active_since=_active_since(tenant, month))
        left = store.credited(targets, who="left")
        migrated = store.credited(targets, who="migrated")
        rows: list[SnapshotRow] = []
        for line in lines:
            counts = _sum_counts([seats.get(key, SeatCounts()) for key in line.keys])
            contract = line.contract
            if not line.covered:   # what is paid without a contract: the seats held and not yet given back
                contract = Contract(**{**_fields(contract), "committed_qty": counts.assigned + counts.reclaimed})
            if not line.covered and not counts.assigned + counts.reclaimed:
                continue   # a SKU nobody holds and no contract names: nothing to say
            row = snapshot_row(tenant=tenant.id, contract=contract, counts=counts, changes=line.changes,
                               month=month, users_left=sum(left.get(key, 0) for key in line.keys),
                               migrated_users=sum(migrated.get(key, 0) for key in line.keys),
                               computed_at=now, scenario=scenario)
            if contract.unit_price is None:   # the benchmark stands in for a price: nothing of the row is booked
                row = replace(row, status=FigureStatus.ESTIMATED)
            rows.append(row)
        store.write_snapshots(rows)
        store.drop_snapshots_except(month, [(row.platform.value, row.sku_key, row.contract_ref) for row in rows])
        row_of = {(row.platform.value, row.contract_ref, row.sku_key): index for index, row in enumerate(rows)}
        owner = {key: row_of[(line.contract.platform.value, line.contract.contract_ref, line.contract.sku_key)]
                 for line in lines for key in line.keys
                 if (line.contract.platform.value, line.contract.contract_ref, line.contract.sku_key) in row_of}
        grouped = {dimension: store.seats_by(targets, dimension) for dimension in ("direction", "wave")}
        breakdown_rows = _breakdowns(rows, grouped, owner)
        store.write_breakdowns(month, breakdown_rows, computed_at=now)
        history = store.month_totals()
        funnel = store.funnel()
        reduced = _reduced_by_wave(rows, lines, grouped["wave"], owner)
        released: dict[str, int] = {}
        for item in grouped["wave"]:
            released[item.group] = released.get(item.group, 0) + item.reclaimed
    report = SavingsReport(tenant=tenant.id, month=month, computed_at=now, currency=tenant.cost_model.currency)
    report.rows = [_row_json(row) for row in rows]
    report.breakdowns = {dimension: [_plain(item) for item in breakdown_rows if item["dimension"] == dimension]
                         for dimension in DIMENSIONS}
    report.headline = _headline(rows, lines, month=month, users_left=sum(left.values()),
                                migrated_users=sum(migrated.values()), scenario=scenario, currency=report.currency)
    covered = [(line.contract, line.changes) for line in lines if line.covered]
    report.calendar = [{"contract": entry.contract.contract_ref, "vendor": entry.contract.vendor,
                        "platform": entry.contract.platform.value, "sku": entry.contract.sku_key,
                        "committed": entry.committed_qty, "floor": entry.contract.commit_floor,
                        "unit_price": str(entry.contract.unit_price.amount) if entry.contract.unit_price else None,
                        "renewal": entry.contract.renewal_date.isoformat(),
                        "notice_deadline": entry.notice_deadline.isoformat(),
                        "next_true_down": entry.next_true_down.isoformat() if entry.next_true_down else None,
                        "nce_window_open": entry.nce_window_open,
                        "next_deadline": entry.next_deadline.isoformat() if entry.next_deadline else None}
                       for entry in contract_calendar(covered, on=now.date())]
    report.forecast = [{"month": item.month.isoformat(), "run_rate": str(item.run_rate.amount.rounded().amount),
                        "status": item.run_rate.status.value,
                        "net_run_rate": str(item.net_run_rate.amount.rounded().amount)}
                       for item in forecast(covered, start=month, migrated_users=sum(migrated.values()),
                                            scenario=scenario, currency=report.currency)]
    report.utilisation = [{"platform": row.platform.value, "sku": row.sku_key, "contract": row.contract_ref,
                           "assigned": row.assigned, "active": row.active, "never_active": row.never_active,
                           "utilisation": _ratio(utilisation(active=row.active, assigned=row.assigned))}
                          for row in rows]
    report.months = [{"month": when.isoformat(), "potential_annual": str(potential), "stranded": str(stranded_),
                      "realised_run_rate": str(realised), "reclaimed": seats_} for when, potential, stranded_,
                     realised, seats_ in history]
    report.funnel = [{"wave": stage.wave, "state": stage.state, "in_scope": stage.in_scope,
                      "seen_in_visio": stage.seen_in_visio, "released_people": stage.released_people,
                      "released_seats": released.get(stage.wave, 0),
                      "contract_reduced_seats": reduced.get(stage.wave, 0)} for stage in funnel]
    with transaction(database) as session:   # what the dashboard shows beside the rows; recomputed with them
        SavingsRepository(session, tenant.id).write_summary(
            month, currency=report.currency, computed_at=now,
            document={name: getattr(report, name) for name in SUMMARY_PARTS})
    return report


def _reduced_by_wave(rows: Sequence[SnapshotRow], lines: Sequence[_Line], seats: Sequence[GroupSeats],
                     owner: Mapping[SkuKey, int]) -> dict[str, int]:
    """The seats each wave released that a lowered contract quantity covers: per row, the quantity removed (at
    most the seats released) split by each wave's released seats, in whole seats adding up exactly."""
    base = {(line.contract.platform.value, line.contract.contract_ref, line.contract.sku_key):
            line.contract.committed_qty for line in lines if line.covered}
    reduced: dict[str, int] = {}
    for index, row in enumerate(rows):
        removed = max(0, base.get((row.platform.value, row.contract_ref, row.sku_key), row.committed) - row.committed)
        weights: dict[str, int] = {}
        for item in seats:
            if owner.get((item.platform, item.sku_key)) == index and item.reclaimed:
                weights[item.group] = weights.get(item.group, 0) + item.reclaimed
        for wave, count in allocate_units(min(removed, sum(weights.values())), weights).items():
            reduced[wave] = reduced.get(wave, 0) + count
    return reduced


def _fields(contract: Contract) -> dict[str, Any]:
    return {name: getattr(contract, name) for name in Contract.__dataclass_fields__}


def _ratio(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.0001")))


def _row_json(row: SnapshotRow) -> dict[str, Any]:
    return {"platform": row.platform.value, "sku": row.sku_key, "contract": row.contract_ref,
            "month": row.month.isoformat(), "assigned": row.assigned, "active": row.active,
            "never_active": row.never_active, "reclaimed": row.reclaimed, "committed": row.committed,
            "commit_floor": row.commit_floor, "annual_unit_cost": str(row.annual_unit_cost.amount),
            "potential_annual": str(row.potential_annual.amount), "stranded": str(row.stranded.amount),
            "realised_run_rate": str(row.realised_run_rate.amount), "realised_in_fy": str(row.realised_in_fy.amount),
            "net": str(row.net.amount), "gov_expected": str(row.gov_expected.amount), "status": row.status.value,
            "evidence": list(row.evidence_refs)}


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in item.items()}


def _headline(rows: Sequence[SnapshotRow], lines: Sequence[_Line], *, month: date, users_left: int,
              migrated_users: int, scenario: Scenario, currency: str) -> dict[str, Any]:
    def total(name: str) -> Decimal:
        return sum((getattr(row, name).amount for row in rows), Decimal(0)).quantize(CENT)

    realised_booked = all(row.status is FigureStatus.BOOKED for row in rows)
    benchmark = gov_expected(users_left).amount.amount
    fy = sum((realised_in_fy(line.contract, line.changes, fiscal_year=month.year).amount.amount for line in lines
              if line.covered), Decimal(0)).quantize(CENT)
    realised = total("realised_run_rate")
    net_figure = net(_figure(realised, currency, realised_booked), migrated_users=migrated_users, scenario=scenario)
    baseline: dict[str, Decimal] = {}
    for line in lines:
        committed = committed_as_of(line.contract, line.changes, on=month) if line.covered else sum(
            row.committed for row in rows if row.contract_ref == NO_CONTRACT and row.sku_key == line.contract.sku_key)
        cost = annual_unit_cost(line.contract, on=month).amount.amount
        platform = line.contract.platform.value
        baseline[platform] = baseline.get(platform, Decimal(0)) + (cost * committed).quantize(CENT)
    estimated_prices = any(row.contract_ref == NO_CONTRACT or row.status is FigureStatus.ESTIMATED for row in rows)
    return {
        "baseline_annual_by_tool": {tool: str(amount) for tool, amount in sorted(baseline.items())},
        "potential_annual": str(total("potential_annual")),
        "potential_status": "estimated" if estimated_prices else "booked",
        "reclaimed_seats": sum(row.reclaimed for row in rows),
        "stranded": str(total("stranded")),
        "realised_run_rate": str(realised),
        "realised_status": "booked" if realised_booked else "estimated",
        "realised_in_fy": str(fy),
        "net": str(net_figure.amount.rounded().amount),
        "net_status": net_figure.status.value,
        "benchmark_annual": str(benchmark.quantize(CENT)),
        "users_left": users_left,
        "migrated_users": migrated_users,
        "gap_to_benchmark": str((realised - benchmark).quantize(CENT)),
    }


def _figure(amount: Decimal, currency: str, booked: bool) -> Any:
    from core.savings import Figure

    return Figure(Money(amount, currency), FigureStatus.BOOKED if booked else FigureStatus.ESTIMATED)


def _breakdowns(rows: Sequence[SnapshotRow], grouped: Mapping[str, Sequence[GroupSeats]],
                owner: Mapping[SkuKey, int]) -> list[dict[str, Any]]:
    """Every dimension's rows; each adds up to the snapshot totals."""
    sums: dict[tuple[str, str], dict[str, Any]] = {}

    def add(dimension: str, key: str, *, assigned: int = 0, reclaimed: int = 0, status: FigureStatus,
            **amounts: Money) -> None:
        item = sums.setdefault((dimension, key), {"dimension": dimension, "key": key, "assigned": 0, "reclaimed": 0,
                                                  "potential_annual": Decimal(0), "stranded": Decimal(0),
                                                  "realised_run_rate": Decimal(0), "gov_expected": Decimal(0),
                                                  "status": FigureStatus.BOOKED.value})
        item["assigned"] += assigned
        item["reclaimed"] += reclaimed
        for name, amount in amounts.items():
            item[name] += amount.amount
        if status is FigureStatus.ESTIMATED:
            item["status"] = FigureStatus.ESTIMATED.value

    for row in rows:
        figures = {"potential_annual": row.potential_annual, "stranded": row.stranded,
                   "realised_run_rate": row.realised_run_rate, "gov_expected": row.gov_expected}
        contract_key = row.contract_ref if row.contract_ref != NO_CONTRACT else (
            f"(no contract) {row.platform.value}:{row.sku_key}")
        for dimension, key in (("tool", row.platform.value), ("sku", f"{row.platform.value}:{row.sku_key}"),
                               ("contract", contract_key)):
            add(dimension, key, assigned=row.assigned, reclaimed=row.reclaimed, status=row.status, **figures)
    for dimension, seats in grouped.items():
        for index, row in enumerate(rows):
            mine = [item for item in seats if owner.get((item.platform, item.sku_key)) == index]
            held: dict[str, int] = {}
            moved: dict[str, int] = {}
            freed: dict[str, int] = {}
            for item in mine:
                held[item.group] = held.get(item.group, 0) + item.assigned
                moved[item.group] = moved.get(item.group, 0) + item.migrated
                freed[item.group] = freed.get(item.group, 0) + item.reclaimed
            potential_weights = dict(moved)
            spare = _spare_seats(row)
            if spare:
                potential_weights[SPARE] = potential_weights.get(SPARE, 0) + spare
            parts = {"potential_annual": _split(row.potential_annual, potential_weights),
                     **{name: _split(getattr(row, name), freed) for name in ("stranded", "realised_run_rate",
                                                                              "gov_expected")}}
            for group in sorted({*held, *freed, *(key for split in parts.values() for key in split)}):
                add(dimension, group, assigned=held.get(group, 0), reclaimed=freed.get(group, 0), status=row.status,
                    **{name: split.get(group, Money.zero(row.potential_annual.currency))
                       for name, split in parts.items()})
    return [{**item, **{name: item[name].quantize(CENT) for name in ("potential_annual", "stranded",
                                                                      "realised_run_rate", "gov_expected")}}
            for _key, item in sorted(sums.items())]


def _spare_seats(row: SnapshotRow) -> int:
    counts = SeatCounts(assigned=row.assigned, reclaimed=row.reclaimed)
    return counts.unassigned_spare(row.committed)


def _split(amount: Money, weights: Mapping[str, int]) -> dict[str, Money]:
    """`amount` split by `weights`; all of it at `(contract level)` when there is nothing to split by."""
    if not amount.amount:
        return {}
    if not any(weights.values()):
        return {CONTRACT_LEVEL: amount.rounded()}
    return allocate(amount, {key: weight for key, weight in weights.items() if weight})


# ----------------------------------------------------------------------------------------------- flow, output

def _month_of(text: str | None, now: datetime) -> date:
    if text is None:
        return now.date().replace(day=1)
    try:
        year, month = (int(part) for part in text.split("-")[:2])
        return date(year, month, 1)
    except ValueError:
        raise ValueError(f"--month {text!r}: not a month (YYYY-MM)") from None


@flow(name="savings-snapshot", flow_run_name=run_name("savings-snapshot"), log_prints=False)
@one_per_tenant("savings")
def savings_report(tenant_file: str, month: str | None = None, now: str | None = None) -> SavingsReport:
    """Compute and store the month's snapshots (the current month by default) and return the report."""
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    at = datetime.fromisoformat(now) if now else datetime.now(UTC)
    report = compute_snapshots(settings.database, tenant, month=_month_of(month, at), now=at)
    create_markdown_artifact(key=f"savings-{tenant.id}", markdown=render_report(report, markdown=True),
                             description=f"Savings of {tenant.id}, {report.month:%Y-%m}")
    get_run_logger().info("tenant %s %s: %d snapshot rows, realised %s (%s)", tenant.id, report.month,
                          len(report.rows), report.headline["realised_run_rate"], report.headline["realised_status"])
    return report


def report_json(report: SavingsReport) -> dict[str, Any]:
    return asdict(report)


def write_csv(report: SavingsReport, directory: Path) -> list[Path]:
    """One CSV per table (snapshots, each breakdown, calendar, forecast, utilisation), a header row each."""
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[dict[str, Any]]] = {"snapshots": report.rows, "calendar": report.calendar,
                                               "forecast": report.forecast, "utilisation": report.utilisation,
                                               "months": report.months, "funnel": report.funnel}
    tables.update({f"by-{dimension}": rows for dimension, rows in report.breakdowns.items()})
    written = []
    for name, rows in tables.items():
        path = directory / f"savings-{report.tenant}-{report.month:%Y-%m}-{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            columns = list(rows[0]) if rows else ["(empty)"]
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({key: ";".join(value) if isinstance(value, list) else value
                                 for key, value in row.items()})
        written.append(path)
    return written


def _eur(text: str | Decimal) -> str:
    return f"€{Decimal(text):,.2f}".replace(",", " ")


def render_report(report: SavingsReport, *, markdown: bool = False, shown: int = 10) -> str:
    """The report as finance reads it: headline figures with their status, contracts, next deadlines, forecast."""
    head = report.headline
    lines = [f"{'# ' if markdown else ''}Savings — tenant {report.tenant}, {report.month:%Y-%m} "
             f"(computed {report.computed_at:%Y-%m-%d %H:%M} UTC; amounts {report.currency} excluding VAT unless "
             "the contracts say otherwise)", "",
             "Baseline (licensed spend in scope, a year): " + (", ".join(
                 f"{tool} {_eur(amount)}" for tool, amount in head["baseline_annual_by_tool"].items()) or "none"),
             f"Potential          {_eur(head['potential_annual']):>16} a year  ({head['potential_status']}) — "
             "seats held by migrated agents, and spare seats",
             f"Reclaimed seats    {head['reclaimed_seats']:>16}         licences released at the source",
             f"Stranded           {_eur(head['stranded']):>16}         still paid until the contracts let them go",
             f"Realised run-rate  {_eur(head['realised_run_rate']):>16} a year  ({head['realised_status']}) — "
             "contract quantities lowered, from their effective dates",
             f"Realised in {report.month.year}    {_eur(head['realised_in_fy']):>16}",
             f"Net                {_eur(head['net']):>16} a year  ({head['net_status']})",
             f"Benchmark          {_eur(head['benchmark_annual']):>16} a year  — €10 × {head['users_left']} users "
             "who left every licensed tool (beside the figures above, never added to them)",
             f"Realised − benchmark {_eur(head['gap_to_benchmark']):>14}", ""]
    lines.append("Per contract:")
    for row in report.rows:
        lines.append(f"  {row['contract']:<22} {row['platform']:<6} {row['sku'][:26]:<26} assigned {row['assigned']:>6}"
                     f" reclaimed {row['reclaimed']:>6} committed {row['committed']:>6} (floor {row['commit_floor']})"
                     f"  realised {_eur(row['realised_run_rate'])} ({row['status']})"
                     + (f" — evidence: {'; '.join(row['evidence'])}" if row["evidence"] else ""))
    upcoming = [entry for entry in report.calendar if entry["next_deadline"]][:shown]
    if upcoming:
        lines += ["", "Decisions needed by:"]
        lines += [f"  {entry['next_deadline']}  {entry['contract']} ({entry['vendor']}): notice "
                  f"{entry['notice_deadline']}, renewal {entry['renewal']}"
                  + ("  — Microsoft's 7-day window OPEN" if entry["nce_window_open"] else "") for entry in upcoming]
    if report.forecast:
        last = report.forecast[-1]
        lines += ["", f"Forecast: run-rate {_eur(last['run_rate'])} a year by {last['month'][:7]} ({last['status']}), "
                      f"net {_eur(last['net_run_rate'])}"]
    lines += ["", "Booked: a contract price and, for realised figures, an amendment with its evidence. Estimated: the "
                  "€10 benchmark for a missing price, a planned reduction, or a scenario. `--csv DIR` writes every "
                  "table; `--json` the same as data."]
    return "\n".join(lines)
