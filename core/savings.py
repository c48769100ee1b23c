"""The savings engine: one function per formula of savings.md §2, each figure labelled booked or estimated.

A seat moves assigned → reclaimed (licence removed at the source) → reduced (committed quantity lowered,
effective). Potential covers the first arrow, stranded the wait between the two, realised only the second.

Counting rules (§6), as this module applies them:
- a seat is one id per SKU and contract; `tally_seats` keeps the last state seen for each id, so a seat observed
  twice counts once and a released-then-restored seat is assigned again (potential and stranded as before);
- the unassigned seats still committed (committed − assigned) are the reclaimed ones first (stranded), and only
  the rest are spare (in potential via `unassigned_spare`): each unassigned seat counts in exactly one of them;
- a person leaves licensed tools when their last source licence is released: counted once however many platforms
  they held (`count_users_left`); the benchmark (€10 per user per year) is a `Benchmark`, a type of its own that
  never adds up with contract figures.

Status: a figure is **booked** when it rests on facts only — a contract price and, for realised figures,
quantity changes with evidence; it is **estimated** when the €10 benchmark stands in for a missing price, when a
planned change without evidence counts, or when the unconfirmed Visio charge-back scenario is applied.

Durations: months between two dates are whole calendar months plus the rest in days over the days of the
following month (2026-11-01 → 2027-03-01 is exactly 4). The fiscal year is the calendar year (the French State's
budget year, LOLF). Amounts keep full precision; snapshot rows are rounded to the cent (`Money.rounded`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import TypeVar

from dateutil.relativedelta import relativedelta

from core.contracts import Contract, QuantityChange, committed_as_of, counted_changes
from core.licences import GOV_BENCHMARK_ANNUAL_UNIT_COST
from core.licences import annual_unit_cost as _annual_price
from core.money import Money, total
from core.records import Platform

__all__ = ["FORECAST_END", "Benchmark", "Figure", "FigureStatus", "ForecastMonth", "Scenario", "SeatCounts",
           "SeatState", "SnapshotRow", "allocate", "allocate_units", "annual_unit_cost", "count_users_left",
           "fiscal_year_end", "forecast", "gov_expected", "months_between", "net", "potential_annual", "realised_in_fy",
           "realised_run_rate", "reclaimable", "snapshot_row", "stranded", "tally_seats", "true_up", "utilisation",
           "waste"]

K = TypeVar("K", bound=Hashable)
FORECAST_END = date(2027, 12, 1)  # the last month of the forecast (savings.md §4.6: to the end of 2027)


class FigureStatus(StrEnum):
    """How finance may read a figure: booked (facts and evidence) or estimated (benchmark, plan or scenario)."""

    BOOKED = "booked"
    ESTIMATED = "estimated"


def _status(*booked: bool) -> FigureStatus:
    return FigureStatus.BOOKED if all(booked) else FigureStatus.ESTIMATED


@dataclass(frozen=True, slots=True)
class Figure:
    """An amount with its status; `evidence` lists the references it rests on (realised figures), in date order."""

    amount: Money
    status: FigureStatus
    evidence: tuple[str, ...] = ()

    @property
    def booked(self) -> bool:
        """Whether finance may book it."""
        return self.status is FigureStatus.BOOKED


@dataclass(frozen=True, slots=True)
class Benchmark:
    """The State benchmark (€10 per user per year × users left × years): shown beside contract figures, never added."""

    amount: Money
    users_left: int
    years: Decimal


class SeatState(StrEnum):
    """Where one seat of a SKU is: held and still needed, held by someone who no longer needs it, or released."""

    REQUIRED = "required"        # assigned to a user not yet migrated, or exempted
    RECLAIMABLE = "reclaimable"  # assigned to a user migrated to Visio: the licence can be removed
    RECLAIMED = "reclaimed"      # licence removed at the source; the seat is paid until the quantity falls


@dataclass(frozen=True, slots=True)
class SeatCounts:
    """Seat counts of one SKU under one contract at one date.

    `assigned` seats are held by users (`required_remaining` of them by users not migrated or exempted);
    `reclaimed` licences were removed at the source and not restored; `active` and `never_active` are assigned
    seats used within the tool's activity threshold, or never used.
    """

    assigned: int = 0
    required_remaining: int = 0
    reclaimed: int = 0
    active: int = 0
    never_active: int = 0

    def __post_init__(self) -> None:
        for name in ("assigned", "required_remaining", "reclaimed", "active", "never_active"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.required_remaining > self.assigned:
            raise ValueError("required_remaining must not exceed assigned")
        if self.active + self.never_active > self.assigned:
            raise ValueError("active + never_active must not exceed assigned")

    def unassigned_but_committed(self, committed: int) -> int:
        """Reclaimed seats still paid for: the unassigned committed seats, up to the number reclaimed."""
        return min(self.reclaimed, max(0, committed - self.assigned))

    def unassigned_spare(self, committed: int) -> int:
        """Committed seats nobody held nor released (spare): counted in potential, never as stranded too."""
        return max(0, committed - self.assigned) - self.unassigned_but_committed(committed)


def tally_seats(seats: Iterable[tuple[str, SeatState]], *, active: Iterable[str] = (),
                never_active: Iterable[str] = ()) -> SeatCounts:
    """Seat counts from a stream of (seat id, state) observations, the last one of each id winning.

    Holds one small entry per seat of one SKU (its id and state), never the records; `active` and `never_active`
    name seat ids (ids not assigned at the end are ignored, each id counts once).
    """
    last: dict[str, SeatState] = {}
    for seat_id, state in seats:
        last[seat_id] = SeatState(state)  # the latest observation of a seat is its state
    assigned = {seat for seat, state in last.items() if state is not SeatState.RECLAIMED}
    return SeatCounts(assigned=len(assigned),
                      required_remaining=sum(1 for state in last.values() if state is SeatState.REQUIRED),
                      reclaimed=len(last) - len(assigned),
                      active=len(assigned.intersection(active)),
                      never_active=len(assigned.intersection(never_active) - assigned.intersection(active)))


def months_between(start: date, end: date) -> Decimal:
    """Months from `start` to `end` (0 when `end` is not after `start`): whole months, then days pro rata."""
    if end <= start:
        return Decimal(0)
    delta = relativedelta(end, start)
    whole = delta.years * 12 + delta.months
    anchor = start + relativedelta(months=whole)
    if anchor == end:
        return Decimal(whole)
    following = start + relativedelta(months=whole + 1)
    return whole + Decimal((end - anchor).days) / Decimal((following - anchor).days)


def fiscal_year_end(year: int) -> date:
    """The day after the fiscal year `year` ends: the French State's budget year is the calendar year."""
    return date(year + 1, 1, 1)


def annual_unit_cost(contract: Contract, *, on: date | None = None) -> Figure:
    """`unit_price × 12 / billing_period_months` with the contract price (the renewal price from the renewal on).

    No contract price: the €10 per user per year benchmark, estimated. Rounded as `core.licences` rounds it (to a
    hundredth of a cent).
    """
    price = contract.unit_price
    if on is not None and on >= contract.renewal_date and contract.renewal_unit_price is not None:
        price = contract.renewal_unit_price
    if price is None:
        return Figure(Money(GOV_BENCHMARK_ANNUAL_UNIT_COST, "EUR"), FigureStatus.ESTIMATED)
    return Figure(Money(_annual_price(price.amount, contract.billing_period_months), price.currency),
                  FigureStatus.BOOKED)


def reclaimable(*, assigned: int, required_remaining: int, unassigned_spare: int) -> int:
    """`assigned − required_remaining + unassigned_spare`: seats that can go (held by migrated users, or spare)."""
    if min(assigned, required_remaining, unassigned_spare) < 0 or required_remaining > assigned:
        raise ValueError("seat counts must be ≥ 0 and required_remaining ≤ assigned")
    return assigned - required_remaining + unassigned_spare


def potential_annual(lines: Iterable[tuple[SeatCounts, Contract, int]], *, on: date,
                     currency: str = "EUR") -> Figure:
    """`Σ_s reclaimable(s) × annual_unit_cost(s)`, as of `on`; per SKU: (counts, contract, committed quantity)."""
    amounts: list[Money] = []
    booked = True
    for counts, contract, committed in lines:
        unit_cost = annual_unit_cost(contract, on=on)
        seats = reclaimable(assigned=counts.assigned, required_remaining=counts.required_remaining,
                            unassigned_spare=counts.unassigned_spare(committed))
        amounts.append(unit_cost.amount * seats)
        booked = booked and unit_cost.booked
    return Figure(total(amounts, currency=currency), _status(booked))


def stranded(lines: Iterable[tuple[SeatCounts, Contract, int]], *, on: date, currency: str = "EUR") -> Figure:
    """`Σ_s unassigned_but_committed(s) × annual_unit_cost(s) × months_to_term_end(c) / 12`, as of `on`.

    Per SKU: (counts, contract, committed quantity on `on`). The term ends when the next one starts (the renewal).
    """
    amounts: list[Money] = []
    booked = True
    for counts, contract, committed in lines:
        unit_cost = annual_unit_cost(contract, on=on)
        months = months_between(on, contract.renewal_date)
        amounts.append(unit_cost.amount * counts.unassigned_but_committed(committed) * months / 12)
        booked = booked and unit_cost.booked
    return Figure(total(amounts, currency=currency), _status(booked))


def realised_run_rate(contract: Contract, changes: Iterable[QuantityChange], *, on: date) -> Figure:
    """`Σ (committed_before − committed_after) × annual_unit_cost` for the changes effective by `on`.

    Each change counts from its effective date only, never below the commitment floor, at the price that applies
    from that date (the renewal price after renewal). A quantity raised again counts negative. Booked only when
    every counted change has evidence and the price is the contract's.
    """
    amount = Money.zero(contract.currency)
    booked: list[bool] = []
    evidence: list[str] = []
    for change, before, after in counted_changes(contract, changes, on=on):
        unit_cost = annual_unit_cost(contract, on=change.effective)
        amount = amount + unit_cost.amount * (before - after)
        booked += [change.booked, unit_cost.booked]
        evidence += [change.evidence] if change.evidence is not None else []
    return Figure(amount, _status(*booked), tuple(evidence))


def realised_in_fy(contract: Contract, changes: Iterable[QuantityChange], *, fiscal_year: int,
                   on: date | None = None) -> Figure:
    """`Σ Δqty × annual_unit_cost × months(effective_date → FY end) / 12` for the fiscal year `fiscal_year`.

    Counts the changes effective by `on` (default: the end of the year); a change effective before the year saves
    the whole year, one effective after saves nothing in it.
    """
    start, end = date(fiscal_year, 1, 1), fiscal_year_end(fiscal_year)
    amount = Money.zero(contract.currency)
    booked: list[bool] = []
    evidence: list[str] = []
    for change, before, after in counted_changes(contract, changes, on=min(on or end, end)):
        if change.effective >= end:
            continue
        unit_cost = annual_unit_cost(contract, on=change.effective)
        months = months_between(max(change.effective, start), end)
        amount = amount + unit_cost.amount * (before - after) * months / 12
        booked += [change.booked, unit_cost.booked]
        evidence += [change.evidence] if change.evidence is not None else []
    return Figure(amount, _status(*booked), tuple(evidence))


@dataclass(frozen=True, slots=True)
class Scenario:
    """Inputs finance toggles, not facts.

    - `visio_cost_per_user`: the annual Visio charge-back per migrated user; None = off (its existence is
      unconfirmed: the press reports only that the State "could" charge).
    - `one_off_costs_amortised`: migration costs per year; None = none.
    - `reduction_delay_months`: renewal timing — planned changes (no evidence) taking effect this many months
      later than planned; booked changes never move.
    """

    visio_cost_per_user: Money | None = None
    one_off_costs_amortised: Money | None = None
    reduction_delay_months: int = 0


def net(realised: Figure, *, migrated_users: int, scenario: Scenario = Scenario()) -> Figure:
    """`realised_run_rate − visio_cost_per_user × migrated_users − one_off_migration_costs_amortised`.

    Estimated whenever the charge-back is applied (unconfirmed) or the realised figure is.
    """
    amount = realised.amount
    booked = realised.booked
    if scenario.visio_cost_per_user is not None:
        amount = amount - scenario.visio_cost_per_user * migrated_users
        booked = False
    if scenario.one_off_costs_amortised is not None:
        amount = amount - scenario.one_off_costs_amortised
    return Figure(amount, _status(booked), realised.evidence)


def utilisation(*, active: int, assigned: int) -> Decimal | None:
    """`active / assigned`; None when no seat is assigned (nothing to utilise)."""
    if active < 0 or active > assigned:
        raise ValueError("active must be between 0 and assigned")
    return Decimal(active) / assigned if assigned else None


def waste(*, active: int, assigned: int, unit_cost: Figure) -> Figure:
    """`(assigned − active) × annual_unit_cost`: the yearly cost of assigned seats nobody uses."""
    if active < 0 or active > assigned:
        raise ValueError("active must be between 0 and assigned")
    return Figure(unit_cost.amount * (assigned - active), unit_cost.status)


def true_up(contract: Contract, changes: Iterable[QuantityChange], *, peak_qty: int, on: date) -> Figure:
    """`max(0, peak_or_actual_qty − committed_qty) × unit_price × remaining_term_fraction`, as of `on`.

    The price of a seat for the rest of the term is taken as its annual cost × months left / 12 (for the usual
    annual billing, exactly unit price × remaining fraction of the year). A reduction (true-down) takes effect only
    at `contract.next_true_down(on)`.
    """
    extra = max(0, peak_qty - committed_as_of(contract, changes, on=on))
    unit_cost = annual_unit_cost(contract, on=on)
    return Figure(unit_cost.amount * extra * months_between(on, contract.renewal_date) / 12, unit_cost.status)


def count_users_left(holdings: Iterable[tuple[str, Platform, bool]]) -> int:
    """Persons whose last source licence was released, once each, from (person, platform, still licensed) rows.

    A person still licensed on any platform has not left; one released on several platforms counts once.
    """
    released: set[str] = set()
    holding: set[str] = set()
    for person, _platform, licensed in holdings:
        (holding if licensed else released).add(person)
    return len(released - holding)


def gov_expected(users_left: int, *, years: Decimal | int = 1) -> Benchmark:
    """`users_left × 10 € × years`: the State benchmark, beside the contract figures."""
    if users_left < 0 or years < 0:
        raise ValueError("users_left and years must not be negative")
    return Benchmark(Money(GOV_BENCHMARK_ANNUAL_UNIT_COST * users_left * Decimal(years), "EUR"), users_left,
                     Decimal(years))


@dataclass(frozen=True, slots=True)
class ForecastMonth:
    """The run-rate in force on the first day of `month` (annual), what the month saves, and the net run-rate."""

    month: date
    run_rate: Figure
    saved_in_month: Money
    net_run_rate: Figure


def forecast(lines: Iterable[tuple[Contract, Sequence[QuantityChange]]], *, start: date,
             end: date = FORECAST_END, migrated_users: int = 0, scenario: Scenario = Scenario(),
             currency: str = "EUR") -> list[ForecastMonth]:
    """Monthly realised run-rate from the month of `start` to `end` (December 2027) with the planned reductions.

    `lines` are the contracts with their booked and planned changes, read once; planned changes move by the
    scenario's renewal delay. The net applies the charge-back and amortised costs of the scenario.
    """
    months = list(_months(start, end))
    sums = [Money.zero(currency) for _ in months]
    booked = [True for _ in months]
    for contract, changes in lines:
        shifted = [_delayed(change, scenario.reduction_delay_months) for change in changes]
        for index, month in enumerate(months):
            figure = realised_run_rate(contract, shifted, on=month)
            sums[index] = sums[index] + figure.amount
            booked[index] = booked[index] and figure.booked
    result: list[ForecastMonth] = []
    for month, amount, is_booked in zip(months, sums, booked, strict=True):
        run_rate = Figure(amount, _status(is_booked))
        result.append(ForecastMonth(month=month, run_rate=run_rate, saved_in_month=amount / 12,
                                    net_run_rate=net(run_rate, migrated_users=migrated_users, scenario=scenario)))
    return result


def _months(start: date, end: date) -> Iterator[date]:
    month = start.replace(day=1)
    while month <= end:
        yield month
        month += relativedelta(months=1)


def _delayed(change: QuantityChange, months: int) -> QuantityChange:
    if change.booked or months == 0:
        return change
    return QuantityChange(change.contract_ref, change.effective + relativedelta(months=months), change.quantity,
                          None, change.recorded_by)


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One savings snapshot row: tenant × platform × SKU × contract × month, with exactly the fields of §6.

    Amounts are rounded to the cent (the stored form); figures are as of the first day of `month`. `status` is the
    realised figure's (booked only with evidence); `evidence_refs` are the references of the changes counted;
    `gov_expected` is the benchmark for the users attributed to this row, a year's worth, never part of `net`.
    `computed_at` is given by the caller (core reads no clock), so recomputing with the same inputs gives the
    same row.
    """

    tenant: str
    platform: Platform
    sku_key: str
    contract_ref: str
    month: date
    assigned: int
    active: int
    never_active: int
    reclaimed: int
    committed: int
    commit_floor: int
    annual_unit_cost: Money
    potential_annual: Money
    stranded: Money
    realised_run_rate: Money
    realised_in_fy: Money
    net: Money
    gov_expected: Money
    status: FigureStatus
    evidence_refs: tuple[str, ...]
    computed_at: datetime


def snapshot_row(*, tenant: str, contract: Contract, counts: SeatCounts, changes: Sequence[QuantityChange],
                 month: date, users_left: int, migrated_users: int, computed_at: datetime,
                 scenario: Scenario = Scenario()) -> SnapshotRow:
    """The snapshot row of one SKU under `contract` for `month` (its first day), from counts and changes.

    `users_left` are the persons this row is credited with for the benchmark (each person credited to one row
    only, by the caller); `migrated_users` those whose Visio charge-back the scenario applies to.
    """
    if month.day != 1:
        raise ValueError("a snapshot month is given by its first day")
    if computed_at.tzinfo is None:
        raise ValueError("computed_at must be timezone-aware")
    committed = committed_as_of(contract, changes, on=month)
    unit_cost = annual_unit_cost(contract, on=month)
    realised = realised_run_rate(contract, changes, on=month)
    return SnapshotRow(
        tenant=tenant, platform=contract.platform, sku_key=contract.sku_key, contract_ref=contract.contract_ref,
        month=month, assigned=counts.assigned, active=counts.active, never_active=counts.never_active,
        reclaimed=counts.reclaimed, committed=committed, commit_floor=contract.commit_floor,
        annual_unit_cost=unit_cost.amount.rounded(),
        potential_annual=potential_annual([(counts, contract, committed)], on=month, currency=contract.currency)
        .amount.rounded(),
        stranded=stranded([(counts, contract, committed)], on=month, currency=contract.currency).amount.rounded(),
        realised_run_rate=realised.amount.rounded(),
        realised_in_fy=realised_in_fy(contract, changes, fiscal_year=month.year, on=month).amount.rounded(),
        net=net(realised, migrated_users=migrated_users, scenario=scenario).amount.rounded(),
        gov_expected=gov_expected(users_left).amount.rounded(),
        status=realised.status, evidence_refs=realised.evidence, computed_at=computed_at)


def allocate_units(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """`total` whole units (cents, seats) split pro rata of `weights`, adding up to it exactly (the units left
    over go to the largest remainders, ties to the first key); all to nothing when no weight."""
    total_weight = sum(weights.values())
    if any(weight < 0 for weight in weights.values()):
        raise ValueError("weights must not be negative")
    if total_weight == 0 or not weights:
        return {key: 0 for key in weights}
    shares = {key: Decimal(total) * weight / total_weight for key, weight in weights.items()}
    floors = {key: int(share.to_integral_value(rounding=ROUND_FLOOR)) for key, share in shares.items()}
    left = total - sum(floors.values())
    for key in sorted(weights, key=lambda item: (-(shares[item] - floors[item]), list(weights).index(item)))[:left]:
        floors[key] += 1
    return floors


def allocate(amount: Money, weights: Mapping[K, int]) -> dict[K, Money]:
    """`amount` (rounded to the cent) split pro rata of `weights`, to the cent, the parts adding up to it exactly
    (the cents left over go to the largest remainders, ties to the first key); all to nothing when no weight."""
    cents = int((amount.rounded().amount * 100).to_integral_value())
    floors = allocate_units(cents, weights)
    return {key: Money(Decimal(value) / 100, amount.currency) for key, value in floors.items()}
