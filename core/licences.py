"""Licence SKUs priced by the tenant's cost model (shared/contracts/savings.md sections 1, 2 and 6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from core.records import LicenceSku, Platform

__all__ = ["GOV_BENCHMARK_ANNUAL_UNIT_COST", "CostModel", "PricedSku", "ReleaseRefusal", "ReleaseResult",
           "RestoreResult",
           "annual_unit_cost", "price_licences"]

GOV_BENCHMARK_ANNUAL_UNIT_COST = Decimal("10")  # €1 000 000 per year per 100 000 users (savings.md §1)
_UNIT_COST_QUANTUM = Decimal("0.0001")  # a hundredth of a cent per seat: sums over 200 000 seats stay exact to €20


@dataclass(frozen=True, slots=True)
class CostModel:
    """Annual unit prices per (platform, SKU key or licence name), and the benchmark used when none is known.

    Keys match ignoring case and surrounding blanks (Graph skuIds and part numbers, Zoom plan names, Webex
    licence names are all written in varying case); two keys that then collide must carry the same price.
    """

    default_annual_unit_cost: Decimal
    prices: Mapping[tuple[Platform, str], Decimal]

    def __post_init__(self) -> None:
        if self.default_annual_unit_cost < 0:
            raise ValueError("default_annual_unit_cost must not be negative")
        seen: dict[tuple[Platform, str], Decimal] = {}
        for (platform, key), price in self.prices.items():
            if price < 0:
                raise ValueError(f"negative price for {platform}/{key}")
            folded = (platform, _fold(key))
            if seen.setdefault(folded, price) != price:
                raise ValueError(f"{platform}/{key} is priced twice with different prices")


@dataclass(frozen=True, slots=True)
class PricedSku:
    """A SKU with its annual unit cost; `estimated` when the benchmark stood in for a contract price."""

    sku: LicenceSku
    annual_unit_cost: Decimal
    estimated: bool


def annual_unit_cost(unit_price: Decimal, billing_period_months: int) -> Decimal:
    """`unit_price × 12 / billing_period_months` (savings.md §2), to a hundredth of a cent."""
    if isinstance(billing_period_months, bool) or not isinstance(billing_period_months, int):
        raise TypeError("billing_period_months must be an integer number of months")
    if billing_period_months < 1:
        raise ValueError("billing_period_months must be at least 1")
    if unit_price < 0:
        raise ValueError("unit_price must not be negative")
    return (Decimal(unit_price) * 12 / billing_period_months).quantize(_UNIT_COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def price_licences(skus: Iterable[LicenceSku], model: CostModel) -> list[PricedSku]:
    """Each SKU priced by `model`: its sku_key first, then its name, else the default (estimated).

    A SKU without meetings (Exchange, Power BI…) is not left when people move to Visio: with no contract price it
    costs 0 for the savings, not the benchmark, and is not marked estimated.
    """
    index: dict[tuple[Platform, str], Decimal] = {}
    for (platform, key), contract_price in model.prices.items():
        index.setdefault((platform, _fold(key)), contract_price)
    priced: list[PricedSku] = []
    for sku in skus:
        found = index.get((sku.platform, _fold(sku.sku_key)))
        if found is None:
            found = index.get((sku.platform, _fold(sku.name)))
        if found is not None:
            price, estimated = found, False
        elif sku.includes_meetings:
            price, estimated = model.default_annual_unit_cost, True
        else:
            price, estimated = Decimal(0), False
        priced.append(PricedSku(replace(sku, annual_unit_cost=price), price, estimated))
    return priced


def _fold(key: str) -> str:
    return key.strip().casefold()


class ReleaseRefusal(StrEnum):
    """Why a source refused to release a person's licence (the person is held with this reason)."""

    NOT_FOUND = "NOT_FOUND"                          # the account no longer exists at the source
    ROOM_OR_ADMIN = "ROOM_OR_ADMIN"                  # Zoom code 200: a Zoom Room (or admin) user cannot be freed
    UPCOMING_EVENTS = "UPCOMING_EVENTS"              # Zoom code 300: upcoming Zoom Events block the downgrade
    NOT_PERMITTED = "NOT_PERMITTED"                  # Zoom code 1108: the application may not change this user
    PENDING_USER = "PENDING_USER"                    # Zoom code 1120: an invitation never accepted
    BASIC_USER_CAP = "BASIC_USER_CAP"                # Zoom codes 2033/3412: the account's Basic-user cap is reached
    GROUP_INHERITED = "GROUP_INHERITED"              # Graph: the licence comes from a group; remove them from it
    REFUSED = "REFUSED"                              # another documented refusal (the detail says which)
    NOT_APPLIED = "NOT_APPLIED"                      # accepted, but the re-read shows the licence still there


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """What one release did, as read back from the source afterwards (the only proof a seat is free)."""

    account_external_id: str
    released: bool
    before: str | None = None                         # the licence as read before (e.g. "zoom:type:2")
    after: str | None = None                          # as read back afterwards
    refusal: ReleaseRefusal | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What giving a licence back did, as read back from the source (the same SKU granted again)."""

    account_external_id: str
    restored: bool
    after: str | None = None
    refusal: ReleaseRefusal | None = None
    detail: str | None = None
