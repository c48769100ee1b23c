"""Licence pricing: the annual unit cost formula (savings.md §2) and the cost model's lookup order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.licences import GOV_BENCHMARK_ANNUAL_UNIT_COST, CostModel, PricedSku, annual_unit_cost, price_licences
from core.records import LicenceSku, Platform


@pytest.mark.parametrize(("unit_price", "months", "expected"), [
    (Decimal("150"), 12, Decimal("150")),  # savings.md worked example: Zoom Business €150/user/year
    (Decimal("12.50"), 1, Decimal("150")),  # monthly billing: 12 × 12.50
    (Decimal("100"), 24, Decimal("50")),
    (Decimal("100"), 36, Decimal("33.3333")),  # 1200 / 36 = 33.333… to a hundredth of a cent
    (Decimal("200"), 36, Decimal("66.6667")),  # 2400 / 36 = 66.666… rounds up
    (Decimal("7.99"), 1, Decimal("95.88")),
    (Decimal("0"), 12, Decimal("0")),
])
def test_annual_unit_cost(unit_price: Decimal, months: int, expected: Decimal) -> None:
    result = annual_unit_cost(unit_price, months)
    assert result == expected
    assert isinstance(result, Decimal)


@pytest.mark.parametrize(("unit_price", "months", "error"), [
    (Decimal("10"), 0, ValueError),
    (Decimal("10"), -12, ValueError),
    (Decimal("-1"), 12, ValueError),
    (Decimal("10"), True, TypeError),
    (Decimal("10"), 1.5, TypeError),
])
def test_annual_unit_cost_refuses_nonsense(unit_price: Decimal, months: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        annual_unit_cost(unit_price, months)


E3 = LicenceSku(Platform.TEAMS, "6fd2c87f-b296-42f0-b197-1e91e994b900", "Office 365 E3", includes_meetings=True)
TEAMS_ENT = LicenceSku(Platform.TEAMS, "7e31c0d9-9551-471d-836f-32ee72be4a01", "Microsoft Teams Enterprise",
                       includes_meetings=True)
EXCHANGE = LicenceSku(Platform.TEAMS, "4b9405b0-7788-4568-add1-99614e613b69", "Exchange Online (Plan 1)",
                      includes_meetings=False)
ZOOM_BUSINESS = LicenceSku(Platform.ZOOM, "2", "Zoom Business", includes_meetings=True)
WEBEX_MEETING = LicenceSku(Platform.WEBEX, "MC_8a1f_culture-gouv.webex.com", "Meeting - Webex Enterprise Edition",
                           includes_meetings=True, site_url="culture-gouv.webex.com")

MODEL = CostModel(
    default_annual_unit_cost=GOV_BENCHMARK_ANNUAL_UNIT_COST,
    prices={
        (Platform.TEAMS, "6FD2C87F-B296-42F0-B197-1E91E994B900"): Decimal("276"),  # skuId in another case
        (Platform.TEAMS, "Microsoft Teams Enterprise"): Decimal("63.60"),  # by licence name
        (Platform.ZOOM, "Zoom Business"): Decimal("150"),
        (Platform.ZOOM, "2"): Decimal("149"),  # the sku_key beats the name
        (Platform.TEAMS, "MC_8a1f_culture-gouv.webex.com"): Decimal("999"),  # another platform's key never matches
    },
)


@pytest.mark.parametrize(("sku", "cost", "estimated"), [
    (E3, Decimal("276"), False),
    (TEAMS_ENT, Decimal("63.60"), False),
    (ZOOM_BUSINESS, Decimal("149"), False),
    (WEBEX_MEETING, Decimal("10"), True),  # no contract price: the €10 benchmark, flagged estimated
    (EXCHANGE, Decimal("0"), False),  # no meetings: leaving Teams saves nothing on it
    (LicenceSku(Platform.WEBEX, "x", "  zoom business ", includes_meetings=True), Decimal("10"), True),  # Zoom's
    (LicenceSku(Platform.ZOOM, "99", "  zoom BUSINESS ", includes_meetings=True), Decimal("150"), False),
])
def test_price_licences(sku: LicenceSku, cost: Decimal, estimated: bool) -> None:
    [priced] = price_licences([sku], MODEL)
    assert priced.annual_unit_cost == cost
    assert priced.estimated is estimated
    assert priced.sku.annual_unit_cost == cost  # the record carries its price
    assert priced.sku.sku_key == sku.sku_key


def test_price_licences_keeps_order_and_every_sku() -> None:
    skus = [WEBEX_MEETING, E3, EXCHANGE, E3]
    priced = price_licences(iter(skus), MODEL)
    assert [entry.sku.name for entry in priced] == [sku.name for sku in skus]
    assert all(isinstance(entry, PricedSku) for entry in priced)


def test_a_price_given_for_a_sku_without_meetings_is_used() -> None:
    model = CostModel(Decimal("10"), {(Platform.TEAMS, "Exchange Online (Plan 1)"): Decimal("48")})
    [priced] = price_licences([EXCHANGE], model)
    assert (priced.annual_unit_cost, priced.estimated) == (Decimal("48"), False)


def test_the_default_follows_the_model() -> None:
    [priced] = price_licences([WEBEX_MEETING], CostModel(Decimal("12.5"), {}))
    assert (priced.annual_unit_cost, priced.estimated) == (Decimal("12.5"), True)


@pytest.mark.parametrize("prices", [
    {(Platform.ZOOM, "Zoom Pro"): Decimal("-1")},
    {(Platform.ZOOM, "Zoom Pro"): Decimal("100"), (Platform.ZOOM, "zoom pro"): Decimal("120")},
])
def test_cost_model_refuses_negative_or_contradictory_prices(prices: dict[tuple[Platform, str], Decimal]) -> None:
    with pytest.raises(ValueError):
        CostModel(Decimal("10"), prices)


def test_cost_model_refuses_a_negative_default() -> None:
    with pytest.raises(ValueError):
        CostModel(Decimal("-10"), {})
