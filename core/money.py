"""Money as a value: a Decimal amount and an ISO 4217 currency; no floats, no mixed currencies.

Rounding rule (one, here): arithmetic keeps the full Decimal precision, so sums over many seats and fractions of
months do not drift; `rounded()` gives the amount to the cent with ROUND_HALF_EVEN (banker's rounding: halves go to
the even cent, so rounding many figures does not bias their total upwards). Round only to display or store, never
before summing. Every currency is rounded to two decimals (the ministries' contracts are in euros; a currency with
other minor units would need its own quantum, not worth guessing today).

A conversion is not arithmetic: an amount in another currency is converted at a rate stored with the snapshot
(savings.md §6), by the caller, never silently here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["CENT", "CurrencyMismatch", "Money", "total"]

CENT = Decimal("0.01")
_ISO_4217 = re.compile(r"[A-Z]{3}")


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"cannot combine {left} and {right}: convert at a stored rate first")
        self.left = left
        self.right = right


def _decimal(value: object, what: str) -> Decimal:
    # bool is an int; float is refused because 0.1 is not a tenth and money must be exact.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal or an int, not {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{what} must be finite, not {result}")
    return result


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency.

    `amount` is a Decimal (an int is accepted and converted; a float, a bool or a string is refused);
    `currency` is an ISO 4217 code in capitals (default EUR). Equal amounts compare equal whatever their exponent
    (`Money(Decimal("45000")) == Money(Decimal("45000.00"))`).
    """

    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _decimal(self.amount, "amount"))
        if not isinstance(self.currency, str) or not _ISO_4217.fullmatch(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code such as EUR, not {self.currency!r}")

    @classmethod
    def zero(cls, currency: str = "EUR") -> Money:
        """No money, in `currency`."""
        return cls(Decimal(0), currency)

    def rounded(self) -> Money:
        """This amount to the cent, halves to the even cent: the form to display and to store."""
        return Money(self.amount.quantize(CENT, rounding=ROUND_HALF_EVEN), self.currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * _decimal(factor, "factor"), self.currency)

    __rmul__ = __mul__

    def __truediv__(self, divisor: Decimal | int) -> Money:
        value = _decimal(divisor, "divisor")
        if value == 0:
            raise ZeroDivisionError("division of money by zero")
        return Money(self.amount / value, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __str__(self) -> str:
        return f"{self.rounded().amount} {self.currency}"


def total(amounts: Iterable[Money], *, currency: str = "EUR") -> Money:
    """The sum of `amounts` at full precision (zero in `currency` when there are none); one currency only."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
