"""Value objects an order is made of: addresses, delivery groups, lines and discounts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ordertrail.domain import rules
from ordertrail.domain.errors import InvalidOrder
from ordertrail.domain.money import Money

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PHONE = re.compile(r"^\+?[0-9(][0-9 ()-]{4,24}$")

MAX_LINE_QUANTITY = 10_000


@dataclass(frozen=True)
class Address:
    """A delivery address. ``country`` is ISO 3166-1 alpha-2; ``region`` a province or state."""

    recipient: str
    phone: str
    line1: str
    city: str
    country: str
    region: str = ""
    postal_code: str = ""
    line2: str = ""

    @classmethod
    def create(
        cls,
        *,
        recipient: str,
        phone: str,
        line1: str,
        city: str,
        country: str,
        region: str = "",
        postal_code: str = "",
        line2: str = "",
    ) -> Address:
        if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
            raise InvalidOrder(
                "country must be an ISO 3166-1 alpha-2 code such as 'CN'", field="country"
            )
        if not isinstance(phone, str) or not _PHONE.fullmatch(phone.strip()):
            raise InvalidOrder("phone must be a telephone number", field="phone")
        return cls(
            recipient=rules.text(recipient, "recipient", max_length=100, error=InvalidOrder),
            phone=phone.strip(),
            line1=rules.text(line1, "address line 1", max_length=200, error=InvalidOrder),
            line2=rules.text(
                line2, "address line 2", max_length=200, error=InvalidOrder, allow_empty=True
            ),
            city=rules.text(city, "city", max_length=100, error=InvalidOrder),
            region=rules.text(
                region, "region", max_length=100, error=InvalidOrder, allow_empty=True
            ),
            postal_code=rules.text(
                postal_code, "postal code", max_length=20, error=InvalidOrder, allow_empty=True
            ),
            country=country,
        )


@dataclass(frozen=True)
class DeliveryGroup:
    """Lines that ship together to one address. An order may have several."""

    group_id: str
    address: Address


@dataclass(frozen=True)
class OrderLine:
    """One SKU in one delivery group, priced from the catalog when the order was placed."""

    line_no: int
    sku: str
    title: str
    quantity: int
    unit_price: Money
    delivery_group: str
    warehouse: str

    @property
    def line_total(self) -> Money:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Discount:
    """An explicit reduction of the order total, such as a coupon."""

    code: str
    amount: Money

    @classmethod
    def create(cls, code: str, amount: Money) -> Discount:
        checked = rules.code(code, "discount code", error=InvalidOrder)
        if not isinstance(amount, Money) or amount.amount <= 0:
            raise InvalidOrder("a discount is a positive amount", field="discounts")
        return cls(checked, amount)
