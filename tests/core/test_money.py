"""Money: exact Decimal amounts in one currency; floats and mixed currencies refused; cents, halves to even."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import CurrencyMismatch, Money, total

AMOUNTS = st.decimals(min_value=-10**9, max_value=10**9, places=4, allow_nan=False, allow_infinity=False)


def test_arithmetic_in_one_currency() -> None:
    price = Money(Decimal("150"))
    assert price * 900 == Money(Decimal("135000"))
    assert price * 900 * 4 / 12 == Money(Decimal("45000"))
    assert price + Money(Decimal("0.10")) - Money(Decimal("50")) == Money(Decimal("100.10"))
    assert -price == Money(Decimal("-150"))
    assert Decimal(2) * price == Money(Decimal(300))
    assert Money(Decimal("1.00")) == Money(Decimal(1))
    one, two, three = Money(Decimal(1)), Money(Decimal(2)), Money(Decimal(3))
    assert one < two <= two and three > two >= two
    assert total([price, price], currency="EUR") == Money(Decimal(300))
    assert total([], currency="USD") == Money(Decimal(0), "USD")


@pytest.mark.parametrize("combine", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a < b, lambda a, b: a >= b,
    lambda a, b: total([a, b]),
])
def test_mixed_currencies_are_refused(combine: Callable[[Money, Money], object]) -> None:
    with pytest.raises(CurrencyMismatch, match="EUR and USD"):
        combine(Money(Decimal(1), "EUR"), Money(Decimal(1), "USD"))


@pytest.mark.parametrize("make", [
    lambda: Money(0.1),  # type: ignore[arg-type]
    lambda: Money(True),  # type: ignore[arg-type]
    lambda: Money("10"),  # type: ignore[arg-type]
    lambda: Money(Decimal(1)) * 1.5,  # type: ignore[operator]
    lambda: Money(Decimal(1)) / 2.0,  # type: ignore[operator]
    lambda: Money(Decimal(1)) + 1,  # type: ignore[operator]
])
def test_floats_and_non_money_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity")])
def test_non_finite_amounts_are_refused(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        Money(bad)


@pytest.mark.parametrize("code", ["eur", "EURO", "", "E1R"])
def test_currency_is_an_iso_code(code: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(Decimal(1), code)


def test_division_by_zero_is_refused() -> None:
    with pytest.raises(ZeroDivisionError):
        Money(Decimal(1)) / 0


@pytest.mark.parametrize(("amount", "cents"), [
    ("0.125", "0.12"),  # half to the even cent
    ("0.135", "0.14"),
    ("-0.125", "-0.12"),
    ("45000", "45000.00"),
    ("33.33333333", "33.33"),
])
def test_rounding_is_to_the_cent_half_even(amount: str, cents: str) -> None:
    rounded = Money(Decimal(amount)).rounded()
    assert str(rounded.amount) == cents
    assert str(Money(Decimal(amount))) == f"{cents} EUR"


def test_intermediate_sums_keep_full_precision() -> None:
    third = Money(Decimal(100)) / 3
    assert (third * 3).rounded() == Money(Decimal(100))
    assert (third.rounded() * 3).rounded() == Money(Decimal("99.99"))  # why rounding waits until the end


@given(a=AMOUNTS, b=AMOUNTS)
def test_addition_is_exact(a: Decimal, b: Decimal) -> None:
    assert (Money(a) + Money(b)).amount == a + b
    assert (Money(a) + Money(b) - Money(b)) == Money(a)
