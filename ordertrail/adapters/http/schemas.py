"""Shared request and response shapes (msgspec), validated at the edge.

They are separate from the domain's events and the application's results, so that the
stored history and the API can evolve independently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta

from ordertrail.domain.money import MAX_MINOR_UNITS, Money
from ordertrail.domain.order_parts import Address

Sku = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["TEA-OOLONG-100G"])
]
Code = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["home"])]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
Text500 = Annotated[str, Meta(min_length=1, max_length=500)]
OptionalText500 = Annotated[str, Meta(max_length=500)]
Quantity = Annotated[int, Meta(ge=1, le=10_000, examples=[2])]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", examples=["CNY"])]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are refused."""


class Reply(msgspec.Struct, kw_only=True):
    """Base of every response body."""


class MoneyBody(Body):
    """An amount in minor units (fen, cents) of a currency."""

    amount: Annotated[int, Meta(ge=0, le=MAX_MINOR_UNITS, examples=[6800])]
    currency: Currency

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


class MoneyReply(Reply):
    amount: int
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyReply:
        return cls(amount=money.amount, currency=money.currency)


class AddressBody(Body):
    recipient: Annotated[str, Meta(min_length=1, max_length=100, examples=["Li Lei"])]
    phone: Annotated[str, Meta(min_length=5, max_length=30, examples=["+86 139 0000 0000"])]
    line1: Annotated[str, Meta(min_length=1, max_length=200, examples=["88 Huaihai Road"])]
    city: Annotated[str, Meta(min_length=1, max_length=100, examples=["Shanghai"])]
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$", examples=["CN"])]
    line2: Annotated[str, Meta(max_length=200)] = ""
    region: Annotated[str, Meta(max_length=100)] = ""
    postal_code: Annotated[str, Meta(max_length=20)] = ""

    def to_address(self) -> Address:
        return Address.create(
            recipient=self.recipient,
            phone=self.phone,
            line1=self.line1,
            line2=self.line2,
            city=self.city,
            region=self.region,
            postal_code=self.postal_code,
            country=self.country,
        )


class AddressReply(Reply):
    recipient: str
    phone: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str

    @classmethod
    def of(cls, address: Address) -> AddressReply:
        return cls(
            recipient=address.recipient,
            phone=address.phone,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            region=address.region,
            postal_code=address.postal_code,
            country=address.country,
        )


class Created(Reply):
    """What a command created: its id and where to find it."""

    id: UUID
    location: str


class Timestamped(Reply):
    at: datetime
