"""A customer's cart: what they mean to buy, where each line goes and how they will pay.

Prices are not in the cart: they come from the catalog when it checks out into an order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import rules
from ordertrail.domain.errors import CartCheckedOut, InvalidCart
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address
from ordertrail.domain.payments import PaymentMethod

MAX_CART_LINES = 100
MAX_LINE_QUANTITY = 10_000


@dataclass(frozen=True)
class CartLine:
    sku: str
    quantity: int
    delivery_group: str


@dataclass(frozen=True)
class PaymentChoice:
    """A payment method, and its amount when the cart splits payment over several."""

    method: PaymentMethod
    amount: Money | None = None


class Cart(Aggregate):
    TOPIC = "ordertrail.carts:Cart"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Opened(Event, Aggregate.Created):
        TOPIC = "ordertrail.carts:Cart.Opened"
        class_version = 1
        customer_id: str

    Created = Opened

    class ItemPut(Event):
        """A SKU is in the cart for a delivery group, with this quantity."""

        TOPIC = "ordertrail.carts:Cart.ItemPut"
        class_version = 1
        sku: str
        quantity: int
        delivery_group: str

        def apply(self, aggregate: Cart) -> None:
            aggregate.items[(self.sku, self.delivery_group)] = self.quantity

    class ItemRemoved(Event):
        TOPIC = "ordertrail.carts:Cart.ItemRemoved"
        class_version = 1
        sku: str
        delivery_group: str

        def apply(self, aggregate: Cart) -> None:
            del aggregate.items[(self.sku, self.delivery_group)]

    class DeliveryAddressSet(Event):
        TOPIC = "ordertrail.carts:Cart.DeliveryAddressSet"
        class_version = 1
        delivery_group: str
        address: Address

        def apply(self, aggregate: Cart) -> None:
            aggregate.addresses[self.delivery_group] = self.address

    class PaymentChosen(Event):
        TOPIC = "ordertrail.carts:Cart.PaymentChosen"
        class_version = 1
        choices: tuple[PaymentChoice, ...]

        def apply(self, aggregate: Cart) -> None:
            aggregate.payment = self.choices

    class CheckedOut(Event):
        TOPIC = "ordertrail.carts:Cart.CheckedOut"
        class_version = 1
        order_id: UUID

        def apply(self, aggregate: Cart) -> None:
            aggregate.order_id = self.order_id

    def __init__(self, *, customer_id: str) -> None:
        self.customer_id = customer_id
        self.items: dict[tuple[str, str], int] = {}
        self.addresses: dict[str, Address] = {}
        self.payment: tuple[PaymentChoice, ...] = ()
        self.order_id: UUID | None = None

    @classmethod
    def open(cls, cart_id: UUID, customer_id: str, *, meta: EventMeta, now: datetime) -> Cart:
        return cls._create(
            cls.Opened,
            id=cart_id,
            timestamp=now,
            meta=meta,
            customer_id=rules.code(customer_id, "customer id", error=InvalidCart),
        )

    def put_item(
        self,
        sku: str,
        quantity: int,
        delivery_group: str = "default",
        *,
        meta: EventMeta,
        now: datetime,
    ) -> None:
        """Set how many of a SKU go to a delivery group; zero takes it out."""
        self._open()
        checked_sku = rules.sku(sku, error=InvalidCart)
        group = rules.code(delivery_group, "delivery group", error=InvalidCart)
        if type(quantity) is not int or not 0 <= quantity <= MAX_LINE_QUANTITY:
            raise InvalidCart(f"a quantity is 0 to {MAX_LINE_QUANTITY}", field="quantity")
        key = (checked_sku, group)
        if quantity == 0:
            if key in self.items:
                self.trigger_event(
                    self.ItemRemoved,
                    timestamp=now,
                    meta=meta,
                    sku=checked_sku,
                    delivery_group=group,
                )
            return
        if self.items.get(key) == quantity:
            return
        if key not in self.items and len(self.items) >= MAX_CART_LINES:
            raise InvalidCart(f"a cart holds at most {MAX_CART_LINES} lines", field="items")
        self.trigger_event(
            self.ItemPut,
            timestamp=now,
            meta=meta,
            sku=checked_sku,
            quantity=quantity,
            delivery_group=group,
        )

    def set_address(
        self, delivery_group: str, address: Address, *, meta: EventMeta, now: datetime
    ) -> None:
        self._open()
        group = rules.code(delivery_group, "delivery group", error=InvalidCart)
        if self.addresses.get(group) == address:
            return
        self.trigger_event(
            self.DeliveryAddressSet, timestamp=now, meta=meta, delivery_group=group, address=address
        )

    def choose_payment(
        self, choices: tuple[PaymentChoice, ...], *, meta: EventMeta, now: datetime
    ) -> None:
        """One method (its amount is the total at checkout), or several with amounts."""
        self._open()
        if not 1 <= len(choices) <= 5:
            raise InvalidCart("choose one to five payment methods", field="payment")
        if len(choices) > 1 and any(c.amount is None or c.amount.amount <= 0 for c in choices):
            raise InvalidCart(
                "a split payment gives each method a positive amount", field="payment"
            )
        if sum(c.method is PaymentMethod.CASH_ON_DELIVERY for c in choices) > 1:
            raise InvalidCart("at most one cash-on-delivery payment", field="payment")
        if choices == self.payment:
            return
        self.trigger_event(self.PaymentChosen, timestamp=now, meta=meta, choices=choices)

    def check_out(self, order_id: UUID, *, meta: EventMeta, now: datetime) -> bool:
        if self.order_id == order_id:
            return False
        self._open()
        self.trigger_event(self.CheckedOut, timestamp=now, meta=meta, order_id=order_id)
        return True

    def ready(self) -> None:
        """Raise unless the cart can check out: items, an address per group, a payment."""
        self._open()
        if not self.items:
            raise InvalidCart("the cart is empty", field="items")
        missing = sorted({group for _, group in self.items} - set(self.addresses))
        if missing:
            raise InvalidCart(f"no delivery address for {', '.join(missing)}", field="addresses")
        if not self.payment:
            raise InvalidCart("no payment method chosen", field="payment")

    def _open(self) -> None:
        if self.order_id is not None:
            raise CartCheckedOut("this cart was checked out", order_id=str(self.order_id))
