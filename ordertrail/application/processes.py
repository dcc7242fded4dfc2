"""The process managers of the order lifecycle.

- ``PlacementReaper``: a reservation whose order was never recorded (the placing process
  died) is abandoned after a grace period and its stock released.
- ``OrderExpiry``: an order still awaiting payment at its deadline expires; its stock is
  released.
- ``StockReleaser``: a cancelled or expired order's stock is released, even if the process
  that cancelled it died before releasing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import TrackingRecorder

from ordertrail.application.context import CommandContext
from ordertrail.application.expiry import expire_orders, release_stock_of_orders
from ordertrail.application.followers import Follower, event_ref, follow_up_meta
from ordertrail.application.ordering import Ordering
from ordertrail.domain.inventory import InventoryItem, ReleaseReason
from ordertrail.domain.meta import Actor
from ordertrail.domain.orders import Order

DEFAULT_PLACEMENT_GRACE = timedelta(minutes=2)


class PlacementReaper(Follower):
    name = "placement-reaper"
    topics = (InventoryItem.StockReserved,)

    def __init__(
        self,
        ordering: Ordering,
        positions: TrackingRecorder,
        grace: timedelta = DEFAULT_PLACEMENT_GRACE,
        other_holder: Callable[[UUID], bool] = lambda _: False,
    ) -> None:
        super().__init__(ordering.inventory, positions)
        self.ordering = ordering
        self.grace = grace
        self.other_holder = other_holder

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        assert isinstance(event, InventoryItem.StockReserved)
        if event.timestamp > self.ordering.inventory.clock() - self.grace:
            return False  # the placement may still be running
        if self.other_holder(event.order_id):
            return True  # not a placement (an exchange's replacement hold): not ours to reap
        self.ordering.abandon_placement(
            event.order_id, [event.originator_id], follow_up_meta(event, self.name)
        )
        return True


class OrderExpiry(Follower):
    name = "order-expiry"
    topics = (Order.Placed,)
    batched = True

    def __init__(self, ordering: Ordering, positions: TrackingRecorder) -> None:
        super().__init__(ordering.orders, positions)
        self.ordering = ordering

    def handle_many(self, events: Sequence[DomainEventProtocol[Any]]) -> int:
        """The due prefix of a page of placements, expired together (``expire_orders``)."""
        now = self.ordering.orders.clock()
        due: list[tuple[UUID, CommandContext]] = []
        for event in events:
            assert isinstance(event, Order.Placed)
            if now < event.payment_due_at:
                break  # orders are placed with a fixed window: later ones are due later
            due.append((event.originator_id, self._context(event)))
        if due:
            expire_orders(self.ordering, due)
        return len(due)

    def _context(self, event: DomainEventProtocol[Any]) -> CommandContext:
        meta = follow_up_meta(event, self.name)
        return CommandContext(
            actor=Actor.system(self.name),
            command_id=event_ref(event),
            correlation_id=meta.correlation_id,
            causation_id=meta.causation_id,
        )


class StockReleaser(Follower):
    name = "stock-releaser"
    topics = (Order.Cancelled, Order.Expired)
    batched = True

    #: Stock records kept between pages (beyond this many, they are dropped and read
    #: whole again).
    max_known = 10_000
    #: Held around each page's release: the placement writers' lock where they share
    #: one (PostgreSQL; set by the adapters), so that a page is decided on stock no
    #: writer changes before it is saved. Under a flash sale's stream of placement
    #: batches nearly every page conflicted otherwise, was halved and read again, and
    #: the release fell behind the expiry (a 10-minute soak at 140 orders/s).
    writer_lock: Callable[[], AbstractContextManager[object]] = nullcontext

    def __init__(self, ordering: Ordering, positions: TrackingRecorder) -> None:
        super().__init__(ordering.orders, positions)
        self.ordering = ordering
        # Its own copies of the stock records it has released from, brought up to date
        # in one query per page (``catch_up_many``) instead of one read per record.
        self._stock: dict[UUID, Aggregate] = {}
        self._stock_lock = threading.Lock()

    def handle_many(self, events: Sequence[DomainEventProtocol[Any]]) -> int:
        with self._stock_lock, self.writer_lock():
            if len(self._stock) > self.max_known:
                self._stock.clear()
            release_stock_of_orders(
                self.ordering,
                [(e.originator_id, self._reason(e), follow_up_meta(e, self.name)) for e in events],
                known=self._stock,
            )
        return len(events)

    @staticmethod
    def _reason(event: DomainEventProtocol[Any]) -> ReleaseReason:
        if isinstance(event, Order.Cancelled):
            return ReleaseReason.ORDER_CANCELLED
        return ReleaseReason.ORDER_EXPIRED


def order_followers(
    ordering: Ordering,
    positions: TrackingRecorder,
    grace: timedelta = DEFAULT_PLACEMENT_GRACE,
    other_holder: Callable[[UUID], bool] = lambda _: False,
) -> Sequence[Follower]:
    """``other_holder(id)``: stock held under ``id`` is not an order placement's."""
    return (
        PlacementReaper(ordering, positions, grace, other_holder),
        OrderExpiry(ordering, positions),
        StockReleaser(ordering, positions),
    )
