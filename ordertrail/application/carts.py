"""Carts: a customer fills one, chooses where each line goes and how to pay, and checks it
out into an order — through the same placement as any order (prices from the catalog,
stock reserved all-or-nothing, idempotent: one order per cart)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ordertrail.application.base import DEFAULT_MAX_ATTEMPTS, Decision, OrdertrailApplication
from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.ordering import Ordering, PlaceOrder
from ordertrail.application.orders import OrderSnapshot
from ordertrail.application.placement import LineRequest
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.cart import Cart, PaymentChoice
from ordertrail.domain.errors import CartNotFound
from ordertrail.domain.money import Money, total
from ordertrail.domain.order_parts import Address, DeliveryGroup
from ordertrail.domain.orders import Order
from ordertrail.domain.payments import PlannedPayment


@dataclass(frozen=True)
class OpenCart:
    customer_id: str


@dataclass(frozen=True)
class PutItem:
    cart_id: UUID
    sku: str
    quantity: int
    delivery_group: str = "default"


@dataclass(frozen=True)
class SetDeliveryAddress:
    cart_id: UUID
    delivery_group: str
    address: Address


@dataclass(frozen=True)
class ChoosePayment:
    cart_id: UUID
    choices: tuple[PaymentChoice, ...]


@dataclass(frozen=True)
class CheckOut:
    cart_id: UUID


@dataclass(frozen=True)
class CartLineView:
    sku: str
    quantity: int
    delivery_group: str


@dataclass(frozen=True)
class CartSnapshot:
    cart_id: UUID
    customer_id: str
    lines: tuple[CartLineView, ...]
    delivery_groups: tuple[str, ...]
    payment: tuple[PaymentChoice, ...]
    order_id: UUID | None
    version: int

    @classmethod
    def of(cls, cart: Cart) -> CartSnapshot:
        return cls(
            cart.id,
            cart.customer_id,
            tuple(
                CartLineView(sku, qty, group) for (sku, group), qty in sorted(cart.items.items())
            ),
            tuple(sorted(cart.addresses)),
            cart.payment,
            cart.order_id,
            cart.version,
        )


class CartsApplication(OrdertrailApplication):
    name = "Carts"

    def __init__(
        self,
        env: Mapping[str, str],
        ordering: Ordering,
        *,
        clock: Clock = system_clock,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.ordering = ordering
        super().__init__(env, clock=clock, max_attempts=max_attempts)

    def cart(self, cart_id: UUID) -> Cart:
        found = self.find_as(cart_id, Cart)
        if found is None:
            raise CartNotFound(f"no cart {cart_id}", cart_id=str(cart_id))
        return found

    def open_cart(self, command: OpenCart, ctx: CommandContext) -> Accepted[CartSnapshot]:
        def decide(now: datetime) -> Decision[CartSnapshot]:
            cart = Cart.open(
                ids.cart_id(ctx.command_id), command.customer_id, meta=ctx.meta, now=now
            )
            return Decision(CartSnapshot.of(cart), [cart])

        return self.execute(command, ctx, decide, CartSnapshot)

    def put_item(self, command: PutItem, ctx: CommandContext) -> Accepted[CartSnapshot]:
        def decide(now: datetime) -> Decision[CartSnapshot]:
            cart = self.cart(command.cart_id)
            self.ordering.catalog.product(command.sku)  # an unknown SKU is refused now
            cart.put_item(
                command.sku, command.quantity, command.delivery_group, meta=ctx.meta, now=now
            )
            return Decision(CartSnapshot.of(cart), [cart])

        return self.execute(command, ctx, decide, CartSnapshot)

    def set_delivery_address(
        self, command: SetDeliveryAddress, ctx: CommandContext
    ) -> Accepted[CartSnapshot]:
        def decide(now: datetime) -> Decision[CartSnapshot]:
            cart = self.cart(command.cart_id)
            cart.set_address(command.delivery_group, command.address, meta=ctx.meta, now=now)
            return Decision(CartSnapshot.of(cart), [cart])

        return self.execute(command, ctx, decide, CartSnapshot)

    def choose_payment(self, command: ChoosePayment, ctx: CommandContext) -> Accepted[CartSnapshot]:
        def decide(now: datetime) -> Decision[CartSnapshot]:
            cart = self.cart(command.cart_id)
            cart.choose_payment(command.choices, meta=ctx.meta, now=now)
            return Decision(CartSnapshot.of(cart), [cart])

        return self.execute(command, ctx, decide, CartSnapshot)

    def check_out(self, command: CheckOut, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        """Place the cart's order (once per cart) and mark the cart checked out."""
        cart = self.cart(command.cart_id)
        place_id = ids.checkout_command_id(cart.id)
        existing = self.ordering.orders.find_as(ids.order_id(place_id), Order)
        if existing is not None:  # placed before; a previous checkout died before marking
            accepted = Accepted(OrderSnapshot.of(existing), {}, replayed=True)
        else:
            cart.ready()
            accepted = self.ordering.place_order(
                self._order_of(cart),
                CommandContext(
                    actor=ctx.actor,
                    command_id=place_id,
                    correlation_id=ctx.correlation_id or ctx.command_id,
                    causation_id=ctx.command_id,
                ),
            )
        order_id = accepted.value.order_id
        position = self.update(
            cart.id,
            Cart,
            lambda c, now: c.check_out(order_id, meta=ctx.meta, now=now),
            "check out the cart",
        )
        positions = dict(accepted.positions)
        if position is not None:
            positions[self.name] = position
        return Accepted(accepted.value, positions, accepted.replayed)

    def _order_of(self, cart: Cart) -> PlaceOrder:
        lines = tuple(
            LineRequest(sku, qty, group) for (sku, group), qty in sorted(cart.items.items())
        )
        products = self.ordering.catalog.products(line.sku for line in lines)
        currency = next(iter(products.values())).price.currency
        amount = total([products[line.sku].price * line.quantity for line in lines], currency)
        plan = tuple(
            PlannedPayment(choice.method, choice.amount or amount) for choice in cart.payment
        )
        groups = tuple(
            DeliveryGroup(group, cart.addresses[group])
            for group in sorted({group for _, group in cart.items})
        )
        return PlaceOrder(cart.customer_id, lines, groups, plan, shipping_fee=Money.zero(currency))
