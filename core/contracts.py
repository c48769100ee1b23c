"""Licence contracts as dated facts, and the calendar of the dates that decide when a saving can be realised.

A `Contract` is one contract line of savings.md §5, validated when it is built (`ContractInvalid` names the field).
A `QuantityChange` is a dated change of its committed quantity: with evidence (an amendment, order or invoice
reference) it is booked; without, it is a plan and every figure computed from it is estimated. The committed
quantity as of a date is the contract's quantity with the changes effective by then applied in date order, never
below the commitment floor (a change asking for less is held at the floor: the contract does not allow it).

Dates, not instants: the term runs from `term_start` until `renewal_date`, the day the next term starts (renewal
usually = term end, §5). Microsoft's new-commerce cancellation window (7 days = 168 h after purchase or renewal,
§3) is counted in days: open on the day of the purchase or renewal and the 6 days after, closed from the 7th day
(the hour of the renewal is not recorded, so the last, partial day is not promised).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from core.money import Money
from core.records import Platform

__all__ = ["NCE_CANCELLATION_WINDOW_DAYS", "CalendarEntry", "Contract", "ContractInvalid", "QuantityChange",
           "committed_as_of", "contract_calendar", "counted_changes"]

NCE_CANCELLATION_WINDOW_DAYS = 7  # Microsoft new commerce: 168 h after purchase or renewal (savings.md §3)


class ContractInvalid(ValueError):
    """A contract line or quantity change that cannot be true; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Contract:
    """One contract line (savings.md §5): what is paid for one SKU, and when it can fall.

    - `vendor`, `contract_ref`: who bills, and the reference unique per tenant.
    - `platform`, `sku_key`: the SKU as the platform names it (Graph skuId, Zoom plan, Webex licence name + site).
    - `unit_price`: the contract price per seat per billing period, > 0; None when the tenant gave none (figures
      then use the €10/user/year benchmark and are estimated). Its currency is the contract's.
    - `renewal_unit_price`: the price per seat from `renewal_date` on, when it changes at renewal (realised
      savings after the renewal use it, §6); None: unchanged.
    - `billing_period_months`: 1, 12, 36…; `unit_price` covers that many months.
    - `committed_qty`, `commit_floor`: seats paid for, and the least the contract allows during the term
      (0 ≤ floor ≤ committed).
    - `term_start`, `renewal_date`: the term runs from its start until the renewal date, when the next term starts
      (`term_start < renewal_date`); `term_end` is the last day the contract states (defaults to the renewal date).
    - `notice_days`: notice before renewal (≥ 0); `notice_deadline` = renewal date − notice days.
    - `auto_renew`: renews unless notice is given by the deadline.
    - `true_down_dates`: dates (anniversaries) when a reduction may take effect, besides the renewal date;
      kept sorted, each once.
    - `cancellation_window_days`: days after purchase or renewal during which the quantity may be cancelled or
      reduced with a prorated refund (7 for Microsoft new commerce, else 0).
    - `vat_included`: whether prices include VAT (one convention per tenant).
    """

    vendor: str
    contract_ref: str
    platform: Platform
    sku_key: str
    unit_price: Money | None
    committed_qty: int
    term_start: date
    renewal_date: date
    commit_floor: int = 0
    billing_period_months: int = 12
    term_end: date | None = None
    renewal_unit_price: Money | None = None
    notice_days: int = 0
    auto_renew: bool = True
    true_down_dates: tuple[date, ...] = ()
    cancellation_window_days: int = 0
    vat_included: bool = False

    def __post_init__(self) -> None:
        for name in ("vendor", "contract_ref", "sku_key"):
            if not str(getattr(self, name)).strip():
                raise ContractInvalid(name, "must not be blank")
        self._check_prices()
        self._check_counts()
        self._check_dates()

    def _check_prices(self) -> None:
        for name in ("unit_price", "renewal_unit_price"):
            price = getattr(self, name)
            if price is not None and price.amount <= 0:
                raise ContractInvalid(name, f"must be greater than 0, not {price.amount}")
        if (self.unit_price is not None and self.renewal_unit_price is not None
                and self.unit_price.currency != self.renewal_unit_price.currency):
            raise ContractInvalid("renewal_unit_price", "must be in the currency of unit_price")

    def _check_counts(self) -> None:
        for name, least in (("committed_qty", 0), ("commit_floor", 0), ("notice_days", 0),
                            ("cancellation_window_days", 0), ("billing_period_months", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ContractInvalid(name, f"must be an integer, not {value!r}")
            if value < least:
                raise ContractInvalid(name, f"must be at least {least}, not {value}")
        if self.commit_floor > self.committed_qty:
            raise ContractInvalid("commit_floor", f"{self.commit_floor} is above committed_qty "
                                                  f"{self.committed_qty}")

    def _check_dates(self) -> None:
        if self.term_end is None:
            object.__setattr__(self, "term_end", self.renewal_date)
        assert self.term_end is not None
        if self.term_start >= self.term_end:
            raise ContractInvalid("term_start", f"{self.term_start} is not before term_end {self.term_end}")
        if self.term_start >= self.renewal_date:
            raise ContractInvalid("term_start", f"{self.term_start} is not before renewal_date {self.renewal_date}")
        object.__setattr__(self, "true_down_dates", tuple(sorted(set(self.true_down_dates))))

    @property
    def currency(self) -> str:
        """The contract's currency (EUR when no price is known: the benchmark is in euros)."""
        return self.unit_price.currency if self.unit_price is not None else "EUR"

    @property
    def notice_deadline(self) -> date:
        """The last day to give notice before the renewal: renewal date − notice days."""
        return self.renewal_date - timedelta(days=self.notice_days)

    def reduction_dates(self) -> tuple[date, ...]:
        """Dates when a reduction of the committed quantity may take effect: true-down dates and the renewal."""
        return tuple(sorted({*self.true_down_dates, self.renewal_date}))

    def next_true_down(self, on: date) -> date | None:
        """The first date on or after `on` when a reduction may take effect; None when the contract names none."""
        return next((day for day in self.reduction_dates() if day >= on), None)

    def cancellation_window_closes(self, on: date) -> date | None:
        """The first day the cancellation window is closed again, when one is open on `on`; else None.

        The window opens at the purchase (term start) or at a renewal that has passed (renewal date ≤ `on`).
        """
        if self.cancellation_window_days == 0:
            return None
        for opened in (self.renewal_date, self.term_start):
            closes = opened + timedelta(days=self.cancellation_window_days)
            if opened <= on < closes:
                return closes
        return None

    def cancellation_window_open(self, on: date) -> bool:
        """Whether the quantity may be cancelled or reduced on `on` with a prorated refund (NCE window)."""
        return self.cancellation_window_closes(on) is not None


@dataclass(frozen=True, slots=True)
class QuantityChange:
    """A change of a contract's committed quantity, effective on a date.

    - `contract_ref`: the contract it changes.
    - `effective`: the first day billed at the new quantity.
    - `quantity`: the committed quantity from that day (≥ 0; held at the floor if lower).
    - `evidence`: the amendment, order or invoice reference that proves it; None for a planned change (figures
      from it stay estimated).
    - `recorded_by`: who entered it, for the audit trail; None when unknown.
    """

    contract_ref: str
    effective: date
    quantity: int
    evidence: str | None = None
    recorded_by: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 0:
            raise ContractInvalid("quantity", f"must be an integer ≥ 0, not {self.quantity!r}")
        if self.evidence is not None and not self.evidence.strip():
            raise ContractInvalid("evidence", "must not be blank (None for a planned change)")

    @property
    def booked(self) -> bool:
        """Whether evidence backs this change."""
        return self.evidence is not None


def counted_changes(contract: Contract, changes: Iterable[QuantityChange], *,
                    on: date) -> list[tuple[QuantityChange, int, int]]:
    """Each change effective by `on`, in date order, with the quantity before it and after it (floor applied).

    Changes of the same day apply in the order given. A change for another contract is refused.
    """
    ordered = sorted(changes, key=lambda change: change.effective)
    steps: list[tuple[QuantityChange, int, int]] = []
    quantity = contract.committed_qty
    for change in ordered:
        if change.contract_ref != contract.contract_ref:
            raise ContractInvalid("contract_ref", f"change for {change.contract_ref!r} given with contract "
                                                  f"{contract.contract_ref!r}")
        if change.effective > on:
            break
        after = max(change.quantity, contract.commit_floor)
        steps.append((change, quantity, after))
        quantity = after
    return steps


def committed_as_of(contract: Contract, changes: Iterable[QuantityChange], *, on: date) -> int:
    """The committed quantity on `on`: the contract's, changed by what took effect by then, never below the floor."""
    steps = counted_changes(contract, changes, on=on)
    return steps[-1][2] if steps else contract.committed_qty


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """One contract's line in the "decision needed by" calendar (savings.md §4.3), as of a date.

    `next_true_down` and `nce_window_closes` are None when there is none ahead or no window is open;
    `next_deadline` is the earliest of the notice deadline, the next true-down and the window's close that is not
    past (None when all are).
    """

    contract: Contract
    committed_qty: int
    notice_deadline: date
    next_true_down: date | None
    nce_window_open: bool
    nce_window_closes: date | None
    next_deadline: date | None


def contract_calendar(contracts: Iterable[tuple[Contract, Sequence[QuantityChange]]], *,
                      on: date) -> list[CalendarEntry]:
    """The calendar of `contracts` as of `on`, sorted by next deadline (none last), then contract reference."""
    entries = [_calendar_entry(contract, changes, on=on) for contract, changes in contracts]
    return sorted(entries, key=lambda entry: (entry.next_deadline is None, entry.next_deadline or on,
                                              entry.contract.contract_ref))


def _calendar_entry(contract: Contract, changes: Sequence[QuantityChange], *, on: date) -> CalendarEntry:
    closes = contract.cancellation_window_closes(on)
    true_down = contract.next_true_down(on)
    ahead = [day for day in (contract.notice_deadline, true_down, closes) if day is not None and day >= on]
    return CalendarEntry(contract=contract, committed_qty=committed_as_of(contract, changes, on=on),
                         notice_deadline=contract.notice_deadline, next_true_down=true_down,
                         nce_window_open=closes is not None, nce_window_closes=closes,
                         next_deadline=min(ahead, default=None))
