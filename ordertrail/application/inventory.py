"""Inventory commands: receiving and adjusting stock; reservations are driven by orders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

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
        unique_ids = list(dict.fromkeys(item_ids))
        for attempt in range(self.max_attempts):
            now = self.clock()
            changed = []
            for item_id in unique_ids:
                item = self.find_as(item_id, InventoryItem)
                if item is not None and item.release(order_id, reason, meta=meta, now=now):
                    changed.append(item)
            if not changed:
                return None
            try:
                return self.save_all(changed)
            except IntegrityError:
                backoff(attempt)
        raise ConcurrencyConflict(
            f"could not release the stock of order {order_id}", order_id=str(order_id)
        )
