"""Inventory commands: receiving and adjusting stock; reservations are driven by orders."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ordertrail.application.base import (
    DEFAULT_MAX_ATTEMPTS,
    Decision,
    OrdertrailApplication,
    backoff,
)
from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.errors import ConcurrencyConflict
from ordertrail.application.receipts import Accepted
from ordertrail.application.warehouses import WarehouseDirectory
from ordertrail.domain import ids, rules
from ordertrail.domain.errors import InvalidQuantity
from ordertrail.domain.inventory import AdjustmentReason, InventoryItem, ReleaseReason
from ordertrail.domain.meta import EventMeta


@dataclass(frozen=True)
class ReceiveStock:
    sku: str
    quantity: int
    warehouse: str = "main"
    reference: str = ""


@dataclass(frozen=True)
class AdjustStock:
    sku: str
    delta: int
    reason: AdjustmentReason
    warehouse: str = "main"
    note: str = ""


@dataclass(frozen=True)
class StockLevel:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    version: int

    @classmethod
    def of(cls, item: InventoryItem) -> StockLevel:
        return cls(
            item.sku, item.warehouse, item.on_hand, item.reserved, item.available, item.version
        )


class InventoryApplication(OrdertrailApplication):
    name = "Inventory"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        warehouses: WarehouseDirectory | None = None,
        clock: Clock = system_clock,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.warehouses = warehouses or WarehouseDirectory()
        super().__init__(env, clock=clock, max_attempts=max_attempts)

    def receive_stock(self, command: ReceiveStock, ctx: CommandContext) -> Accepted[StockLevel]:
        def decide(now: datetime) -> Decision[StockLevel]:
            item = self.item_or_new(command.sku, command.warehouse, meta=ctx.meta, now=now)
            item.receive(command.quantity, reference=command.reference, meta=ctx.meta, now=now)
            return Decision(StockLevel.of(item), [item])

        return self.execute(command, ctx, decide, StockLevel)

    def adjust_stock(self, command: AdjustStock, ctx: CommandContext) -> Accepted[StockLevel]:
        def decide(now: datetime) -> Decision[StockLevel]:
            item = self.item_or_new(command.sku, command.warehouse, meta=ctx.meta, now=now)
            item.adjust(command.delta, command.reason, note=command.note, meta=ctx.meta, now=now)
            return Decision(StockLevel.of(item), [item])

        return self.execute(command, ctx, decide, StockLevel)

    # --- used by order placement and its process managers --------------------------------

    def item(self, sku: str, warehouse: str) -> InventoryItem | None:
        return self.find_as(ids.inventory_item_id(sku, warehouse), InventoryItem)

    def item_or_new(
        self, sku: str, warehouse: str, *, meta: EventMeta, now: datetime
    ) -> InventoryItem:
        """The stock record of a SKU at a warehouse, opened (unsaved) if there is none."""
        checked_sku = rules.sku(sku, error=InvalidQuantity)
        self.warehouses.get(warehouse)
        found = self.item(checked_sku, warehouse)
        if found is not None:
            return found
        return InventoryItem.open(sku=checked_sku, warehouse=warehouse, meta=meta, now=now)

    def stock_level(self, sku: str, warehouse: str = "main") -> StockLevel:
        checked_sku = rules.sku(sku, error=InvalidQuantity)
        self.warehouses.get(warehouse)
        item = self.item(checked_sku, warehouse)
        if item is None:
            return StockLevel(checked_sku, warehouse, 0, 0, 0, 0)
        return StockLevel.of(item)

    def release_for_order(
        self,
        order_id: UUID,
        item_ids: Iterable[UUID],
        reason: ReleaseReason,
        meta: EventMeta,
    ) -> int | None:
        """Release whatever ``order_id`` holds on the given inventory items.

        Idempotent: items that hold nothing for the order record nothing. Returns the
        position of the release, or None if there was nothing to release.
        """
        return self.update_items(
            item_ids,
            lambda item, now: item.release(order_id, reason, meta=meta, now=now),
            f"release the stock of order {order_id}",
        )

    def release_for_orders(
        self,
        holds: Mapping[UUID, Iterable[UUID]],
        reason: ReleaseReason,
        meta_of: Callable[[UUID], EventMeta],
        known: dict[UUID, Aggregate] | None = None,
    ) -> int | None:
        """``release_for_order`` for many orders at once (``holds``: order id -> item
        ids): each item is read once and all are saved in one transaction. Should that
        conflict (a placement writer saved one of the items meanwhile), each half of the
        items is released on its own. With ``known`` (the caller's copies of stock
        records, kept between calls: ``catch_up_many``), the items are read in one query.
        Idempotent; returns the last position, or None if there was nothing to release."""
        by_item: dict[UUID, list[UUID]] = {}
        for order_id, item_ids in holds.items():
            for item_id in dict.fromkeys(item_ids):
                by_item.setdefault(item_id, []).append(order_id)

        def release(item: InventoryItem, now: datetime) -> bool:
            released = [
                item.release(order_id, reason, meta=meta_of(order_id), now=now)
                for order_id in by_item[item.id]
            ]
            return any(released)

        return self._update_in_halves(
            list(by_item), release, f"release the stock of {len(holds)} orders", known
        )

    def _update_in_halves(
        self,
        item_ids: list[UUID],
        change: Callable[[InventoryItem, datetime], bool],
        what: str,
        known: dict[UUID, Aggregate] | None,
    ) -> int | None:
        """``update_items`` for many items that others keep writing (placement writers
        save a stream of reservations): one try for all of them; on a conflict, each half
        on its own, so that the records nobody touched are saved together and only the
        contended ones are read again. The single contended record gets every retry."""
        if len(item_ids) == 1:
            return self.update_items(item_ids, change, what, known=known)
        try:
            return self.update_items(item_ids, change, what, attempts=1, known=known)
        except ConcurrencyConflict:
            middle = len(item_ids) // 2
            positions = [
                self._update_in_halves(half, change, what, known)
                for half in (item_ids[:middle], item_ids[middle:])
            ]
            return max((p for p in positions if p is not None), default=None)

    def commit_parcel(
        self,
        holder_id: UUID,
        parts: Iterable[tuple[UUID, int]],
        shipment_ref: str,
        meta: EventMeta,
    ) -> int | None:
        """A parcel left: its units leave on-hand stock and the holder's reservation.
        ``parts`` are (item id, quantity). Counted once per shipment reference."""
        quantities = dict(parts)
        return self.update_items(
            quantities,
            lambda item, now: item.commit(
                holder_id, quantities[item.id], shipment_ref=shipment_ref, meta=meta, now=now
            ),
            f"ship parcel {shipment_ref}",
        )

    def return_parcel(
        self,
        holder_id: UUID,
        parts: Iterable[tuple[UUID, int]],
        shipment_ref: str,
        meta: EventMeta,
    ) -> int | None:
        """An undelivered parcel came back: its units are on hand and held again."""
        quantities = dict(parts)
        return self.update_items(
            quantities,
            lambda item, now: item.return_parcel(
                holder_id, quantities[item.id], shipment_ref=shipment_ref, meta=meta, now=now
            ),
            f"take back parcel {shipment_ref}",
        )

    def restock_returned(
        self, parts: Iterable[tuple[UUID, int, str]], order_id: UUID, meta: EventMeta
    ) -> int | None:
        """Returned units go back into sellable stock, once per reference.
        ``parts`` are (item id, quantity, reference)."""
        by_item = {item_id: (qty, ref) for item_id, qty, ref in parts}
        return self.update_items(
            by_item,
            lambda item, now: item.restock(
                by_item[item.id][0],
                reference=by_item[item.id][1],
                order_id=order_id,
                meta=meta,
                now=now,
            ),
            f"restock the return of order {order_id}",
        )

    def update_items(
        self,
        item_ids: Iterable[UUID],
        change: Callable[[InventoryItem, datetime], bool],
        what: str,
        attempts: int | None = None,
        known: dict[UUID, Aggregate] | None = None,
    ) -> int | None:
        """Apply an idempotent change to several items and save them in one transaction,
        deciding again on a version conflict (up to ``attempts`` times, the application's
        ``max_attempts`` by default). Returns the position, or None if nothing changed.
        Items that do not exist are skipped. With ``known`` (the caller's own copies of
        stock records, see ``catch_up_many``) the items are read in one query, and the
        saved ones are kept there."""
        unique_ids = list(dict.fromkeys(item_ids))
        tries = self.max_attempts if attempts is None else attempts
        for attempt in range(tries):
            now = self.clock()
            if known is None:
                found: list[Aggregate | None] = [self.find(i) for i in unique_ids]
            else:
                found = self.catch_up_many(known, unique_ids)
            changed = [
                item for item in found if isinstance(item, InventoryItem) and change(item, now)
            ]
            if not changed:
                return None
            try:
                position = self.save_all(changed)
            except IntegrityError:
                if attempt + 1 < tries:
                    backoff(attempt)
                continue
            if known is not None:
                known.update((item.id, item) for item in changed)
            return position
        raise ConcurrencyConflict(f"could not {what}: stock kept changing", what=what)
