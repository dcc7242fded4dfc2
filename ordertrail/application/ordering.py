"""Commands that cross the orders and inventory contexts: place, cancel, expire, abandon.

Placing an order reserves stock first (all SKUs in one inventory transaction) and then
records the order. If the process dies in between, the reservation is orphaned: the
placement reaper (``processes``) later records an ``AbandonedPlacement`` under the order's
id and releases the stock. Whichever of ``Order.Placed`` and ``AbandonedPlacement`` is
written first wins, because they share one aggregate id, so the reaper can never release
the stock of an order that exists, and no order exists without its stock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ordertrail.application.base import Decision, backoff
from ordertrail.application.catalog import CatalogApplication
from ordertrail.application.context import CommandContext
from ordertrail.application.errors import ConcurrencyConflict
from ordertrail.application.inventory import InventoryApplication
from ordertrail.application.orders import OrdersApplication, OrderSnapshot
from ordertrail.application.placement import LineRequest, allocate, candidate_warehouses
from ordertrail.application.receipts import Accepted, CommandReceipt, fingerprint
from ordertrail.application.serialization import encode_json
from ordertrail.domain import ids, rules
from ordertrail.domain.catalog import Product
from ordertrail.domain.errors import (
    InvalidOrder,
    PlacementAbandoned,
    ProductNotListed,
)
from ordertrail.domain.inventory import InventoryItem, ReleaseReason
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address, DeliveryGroup, Discount, OrderLine
from ordertrail.domain.orders import AbandonedPlacement, Order
from ordertrail.domain.payments import PlannedPayment

DEFAULT_PAYMENT_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    lines: tuple[LineRequest, ...]
    delivery_groups: tuple[DeliveryGroup, ...]
    payment_plan: tuple[PlannedPayment, ...]
    shipping_fee: Money | None = None
    discounts: tuple[Discount, ...] = ()


@dataclass(frozen=True)
class CancelOrder:
    order_id: UUID
    reason: str


@dataclass(frozen=True)
class ExpireOrder:
    order_id: UUID


Crashpoint = Callable[[str], None]


def _no_crash(_: str) -> None:
    return None


@dataclass
class Ordering:
    """The order lifecycle across catalog, inventory and orders."""

    catalog: CatalogApplication
    inventory: InventoryApplication
    orders: OrdersApplication
    payment_window: timedelta = DEFAULT_PAYMENT_WINDOW
    #: Called between the steps of a placement; tests make it raise to simulate a crash.
    crashpoint: Crashpoint = field(default=_no_crash)

    # --- place ---------------------------------------------------------------------------

    def place_order(self, command: PlaceOrder, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        order_id = ids.order_id(ctx.command_id)
        digest = fingerprint("PlaceOrder", command)
        done = self._placed_before(order_id, ctx.command_id, digest)
        if done is not None:
            return done
        products, groups, candidates = self._prepared(command, order_id)
        order, items, inventory_position = self._reserve(
            command, ctx, order_id, products, groups, candidates=candidates
        )
        self.crashpoint("reserved")
        try:
            orders_position = self._record_order(order, ctx, digest)
        except Exception:
            # Not a crash: compensate now rather than waiting for the reaper.
            if self.orders.find_as(order_id, Order) is None:
                self._release(
                    order_id, [i.id for i in items], ReleaseReason.PLACEMENT_FAILED, ctx.meta
                )
            raise
        if orders_position is None:  # a concurrent attempt of this command won
            replay = self._placed_before(order_id, ctx.command_id, digest)
            assert replay is not None
            return replay
        self.crashpoint("recorded")
        positions = {self.orders.name: orders_position}
        if inventory_position is not None:
            positions[self.inventory.name] = inventory_position
        return Accepted(OrderSnapshot.of(order), positions)

    def _placed_before(
        self, order_id: UUID, command_id: UUID, digest: str
    ) -> Accepted[OrderSnapshot] | None:
        existing = self.orders.find(order_id)
        if isinstance(existing, AbandonedPlacement):
            raise PlacementAbandoned(
                "this order's placement did not finish in time and was abandoned; "
                "place it again with a new command id",
                order_id=str(order_id),
            )
        if existing is None:
            return None
        replay = self.orders.replay(command_id, "PlaceOrder", digest, OrderSnapshot)
        if replay is None:  # pragma: no cover - the receipt is saved with the order
            assert isinstance(existing, Order)
            return Accepted(
                OrderSnapshot.of(existing), {self.orders.name: self.orders.head()}, replayed=True
            )
        return replay

    def _prepared(
        self, command: PlaceOrder, order_id: UUID, known: Mapping[str, Product] | None = None
    ) -> tuple[dict[str, Product], tuple[DeliveryGroup, ...], dict[str, list[str]]]:
        """The order's products (each for sale; ``known`` ones if all are), its delivery
        groups and each group's candidate warehouses, once every rule of the order itself
        is checked — before any stock is looked at."""
        products = self._listed_products(command, known)
        groups = tuple(_checked_group(g) for g in command.delivery_groups)
        self.check_order(
            command,
            order_id=order_id,
            products=products,
            groups=groups,
            now=self.inventory.clock(),
        )
        return (
            products,
            groups,
            candidate_warehouses(command.lines, groups, self.inventory.warehouses),
        )

    def _listed_products(
        self, command: PlaceOrder, known: Mapping[str, Product] | None = None
    ) -> dict[str, Product]:
        """The order's products (``known`` ones, if all are, else read from the catalog),
        each of them for sale."""
        if not command.lines:
            raise InvalidOrder("an order needs at least one line", field="lines")
        skus = list(dict.fromkeys(line.sku for line in command.lines))
        if known is not None and all(sku in known for sku in skus):
            products = {sku: known[sku] for sku in skus}
        else:
            products = self.catalog.products(skus)
        ensure_listed(products.values())
        return products

    def _reserve(
        self,
        command: PlaceOrder,
        ctx: CommandContext,
        order_id: UUID,
        products: dict[str, Product],
        groups: tuple[DeliveryGroup, ...],
        *,
        candidates: dict[str, list[str]],
    ) -> tuple[Order, list[InventoryItem], int | None]:
        """Decide the order and its reservations, then save the reservations (all SKUs in
        one transaction); on a version conflict decide again on fresh stock."""

        def decide_order(chosen: dict[int, str], now: datetime) -> Order:
            return self.decide_order(
                command,
                ctx,
                order_id=order_id,
                products=products,
                groups=groups,
                chosen=chosen,
                now=now,
            )

        for attempt in range(self.inventory.max_attempts):
            now = self.inventory.clock()
            items = self._load_items(command.lines, candidates)
            available = {
                key: item.available + item.held_for(order_id) for key, item in items.items()
            }
            order = decide_order(allocate(command.lines, candidates, available), now)
            reserving = []
            for (sku, warehouse), quantity in order.reserved_quantities().items():
                item = items[(sku, warehouse)]
                item.reserve(
                    order_id, quantity, expires_at=order.payment_due_at, meta=ctx.meta, now=now
                )
                reserving.append(item)
            changed = [item for item in reserving if item.pending_events]
            if not changed:  # a retry after a crash: the stock is already held
                return order, reserving, None
            try:
                position = self.inventory.save_all(changed)
            except IntegrityError:
                backoff(attempt)
                continue
            return order, reserving, position
        raise ConcurrencyConflict(
            "stock kept changing under this order; retry with the same command id",
            order_id=str(order_id),
        )

    def check_order(
        self,
        command: PlaceOrder,
        *,
        order_id: UUID,
        products: dict[str, Product],
        groups: tuple[DeliveryGroup, ...],
        now: datetime,
    ) -> None:
        """Raise the order's own domain errors, as ``decide_order`` would, without making
        the order (its lines' warehouses are not chosen yet)."""
        Order.placement_terms(
            order_id=order_id,
            customer_id=command.customer_id,
            lines=_priced_lines(
                command.lines, dict.fromkeys(range(len(command.lines)), "-"), products
            ),
            delivery_groups=groups,
            shipping_fee=_shipping_fee(command, products),
            discounts=command.discounts,
            payment_plan=command.payment_plan,
            payment_due_at=now + self.payment_window,
            now=now,
        )

    def decide_order(
        self,
        command: PlaceOrder,
        ctx: CommandContext,
        *,
        order_id: UUID,
        products: dict[str, Product],
        groups: tuple[DeliveryGroup, ...],
        chosen: dict[int, str],
        now: datetime,
    ) -> Order:
        """The order a placement records, its lines shipping from ``chosen`` warehouses
        (line index -> warehouse code). Raises the order's own domain errors."""
        return Order.place(
            order_id=order_id,
            customer_id=command.customer_id,
            lines=_priced_lines(command.lines, chosen, products),
            delivery_groups=groups,
            shipping_fee=_shipping_fee(command, products),
            discounts=command.discounts,
            payment_plan=command.payment_plan,
            payment_due_at=now + self.payment_window,
            meta=ctx.meta,
            now=now,
            auto_release=self.orders.auto_release,
        )

    def _load_items(
        self, lines: Iterable[LineRequest], candidates: dict[str, list[str]]
    ) -> dict[tuple[str, str], InventoryItem]:
        items: dict[tuple[str, str], InventoryItem] = {}
        for line in lines:
            for warehouse in candidates.get(line.delivery_group, []):
                key = (line.sku, warehouse)
                if key not in items:
                    item = self.inventory.item(line.sku, warehouse)
                    if item is not None:
                        items[key] = item
        return items

    def _record_order(self, order: Order, ctx: CommandContext, digest: str) -> int | None:
        """Save the order with its receipt; None if this command's order already exists."""
        receipt = CommandReceipt.record(
            ctx.command_id,
            command_name="PlaceOrder",
            fingerprint=digest,
            outcome=encode_json(OrderSnapshot.of(order)),
            meta=ctx.meta,
            now=order.created_on,
        )
        try:
            return self.orders.save_all([order, receipt])
        except IntegrityError:
            if isinstance(self.orders.find(order.id), Order):
                return None
            raise PlacementAbandoned(
                "this order's placement took too long and was abandoned; its stock was "
                "released; place it again with a new command id",
                order_id=str(order.id),
            ) from None

    # --- cancel and expire ---------------------------------------------------------------

    def cancel_order(self, command: CancelOrder, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        """Cancel an unshipped order and give its stock back."""

        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.orders.order(command.order_id)
            order.cancel(command.reason, meta=ctx.meta, now=now)
            return Decision(OrderSnapshot.of(order), [order])

        accepted = self.orders.execute(command, ctx, decide, OrderSnapshot)
        return self._released(accepted, ReleaseReason.ORDER_CANCELLED, ctx.meta)

    def expire_order(self, command: ExpireOrder, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        """End an order that was not paid in time and give its stock back."""

        def decide(now: datetime) -> Decision[OrderSnapshot]:
            order = self.orders.order(command.order_id)
            order.expire(meta=ctx.meta, now=now)
            return Decision(OrderSnapshot.of(order), [order])

        accepted = self.orders.execute(command, ctx, decide, OrderSnapshot)
        return self._released(accepted, ReleaseReason.ORDER_EXPIRED, ctx.meta)

    def release_stock_of(
        self, order_id: UUID, reason: ReleaseReason, meta: EventMeta
    ) -> int | None:
        """Give back whatever an order still holds (idempotent)."""
        order = self.orders.order(order_id)
        return self._release(order_id, order_item_ids(order), reason, meta)

    def _released(
        self, accepted: Accepted[OrderSnapshot], reason: ReleaseReason, meta: EventMeta
    ) -> Accepted[OrderSnapshot]:
        position = self.release_stock_of(accepted.value.order_id, reason, meta)
        if position is None:
            return accepted
        positions = {**accepted.positions, self.inventory.name: position}
        return Accepted(accepted.value, positions, accepted.replayed)

    # --- orphaned reservations -----------------------------------------------------------

    def abandon_placement(self, order_id: UUID, item_ids: Iterable[UUID], meta: EventMeta) -> bool:
        """Settle a reservation whose order may never have been recorded.

        If the order exists, nothing happens (False). Otherwise the order id is marked
        abandoned, so the placement can never complete, and the stock is released.
        """
        existing = self.orders.find(order_id)
        if isinstance(existing, Order):
            return False
        if existing is None:
            marker = AbandonedPlacement.record(
                order_id,
                "placement did not finish in time",
                meta=meta,
                now=self.orders.clock(),
            )
            try:
                self.orders.save_all([marker])
            except IntegrityError:
                if isinstance(self.orders.find(order_id), Order):
                    return False
        self._release(order_id, item_ids, ReleaseReason.PLACEMENT_ABANDONED, meta)
        return True

    def _release(
        self, order_id: UUID, item_ids: Iterable[UUID], reason: ReleaseReason, meta: EventMeta
    ) -> int | None:
        return self.inventory.release_for_order(order_id, item_ids, reason, meta)


def order_item_ids(order: Order) -> list[UUID]:
    return [ids.inventory_item_id(sku, wh) for sku, wh in order.reserved_quantities()]


def _checked_group(group: DeliveryGroup) -> DeliveryGroup:
    """Delivery groups are re-validated here, whoever built them."""
    address = group.address
    if not isinstance(address, Address):
        raise InvalidOrder("a delivery group needs an address", field="delivery_groups")
    return DeliveryGroup(
        group_id=rules.code(group.group_id, "delivery group id", error=InvalidOrder),
        address=Address.create(
            recipient=address.recipient,
            phone=address.phone,
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            region=address.region,
            postal_code=address.postal_code,
            country=address.country,
        ),
    )


def _shipping_fee(command: PlaceOrder, products: Mapping[str, Product]) -> Money:
    """The command's shipping fee, or none in the currency of its first product."""
    return command.shipping_fee or Money.zero(products[command.lines[0].sku].price.currency)


def _priced_lines(
    lines: tuple[LineRequest, ...], chosen: dict[int, str], products: dict[str, Product]
) -> list[OrderLine]:
    priced = []
    for index, line in enumerate(lines):
        product = products[line.sku]
        priced.append(
            OrderLine(
                line_no=index + 1,
                sku=product.sku,
                title=product.title,
                quantity=line.quantity,
                unit_price=product.price,
                delivery_group=line.delivery_group,
                warehouse=chosen[index],
            )
        )
    return priced


def ensure_listed(products: Iterable[Product]) -> None:
    """``ProductNotListed`` for the first product that is not for sale."""
    for product in products:
        if not product.listed:
            raise ProductNotListed(f"{product.sku} is not for sale", sku=product.sku)
