"""Money: an integer count of minor units plus an ISO 4217 currency code. Never float."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ordertrail.domain.errors import CurrencyMismatch, InvalidValue

_CURRENCY = re.compile(r"^[A-Z]{3}$")
#: Codes seen to match ``_CURRENCY`` (an order makes dozens of amounts: each is checked by
#: a set lookup; the set is bounded, as only 26**3 codes could ever match).
_VALID_CURRENCIES: set[str] = set()

#: Amounts above this are refused as implausible (and stay far inside 64-bit integers).
MAX_MINOR_UNITS = 10**15


@dataclass(frozen=True, order=False)
class Money:
    """An amount of one currency, in minor units (cents, fen). Amounts may be negative."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise InvalidValue(
                "money amount must be an integer count of minor units", amount=self.amount
            )
        if abs(self.amount) > MAX_MINOR_UNITS:
            raise InvalidValue("money amount is out of range", amount=self.amount)
        if type(self.currency) is not str or self.currency not in _VALID_CURRENCIES:
            if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
                raise InvalidValue(
                    "currency must be a three-letter ISO 4217 code", currency=self.currency
                )
            if len(_VALID_CURRENCIES) < 1_000:
                _VALID_CURRENCIES.add(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _check_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} with {other.currency}",
                left=self.currency,
                right=other.currency,
            )

    def __add__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise InvalidValue("money can only be multiplied by an integer", factor=factor)
        return Money(self.amount * factor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check_same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check_same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._check_same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._check_same_currency(other)
        return self.amount >= other.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} (minor units)"


def total(amounts: list[Money] | tuple[Money, ...], currency: str) -> Money:
    """The sum of ``amounts``, all of which must be in ``currency``."""
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
