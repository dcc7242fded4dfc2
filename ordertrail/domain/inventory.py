"""Inventory: stock of one SKU in one warehouse, and the reservations held against it.

Available = on hand - reserved, and it is never negative: every command that could break
that is refused before any event is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import (
    AdjustmentBelowReserved,
    InsufficientStock,
    InvalidQuantity,
    ReservationConflict,
    ReservationNotFound,
)
from ordertrail.domain.meta import EventMeta

MAX_QUANTITY = 10_000_000


class AdjustmentReason(StrEnum):
    COUNT_CORRECTION = "count_correction"
    DAMAGED = "damaged"
    LOST = "lost"
    FOUND = "found"
    EXPIRED = "expired"
    OTHER = "other"


class ReleaseReason(StrEnum):
    ORDER_CANCELLED = "order_cancelled"
    ORDER_EXPIRED = "order_expired"
    PLACEMENT_ABANDONED = "placement_abandoned"  # the order was never created
    PLACEMENT_FAILED = "placement_failed"  # compensation when another SKU could not be reserved
    SHIPMENT_CANCELLED = "shipment_cancelled"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Units held for one order until they ship (commit) or the order ends (release)."""

    order_id: UUID
    quantity: int  # still held
    reserved_at: datetime
    expires_at: datetime
    shipped: int = 0  # already shipped from it


class InventoryItem(Aggregate):
    """Stock of one SKU at one warehouse."""

    TOPIC = "ordertrail.inventory:InventoryItem"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Opened(Event, Aggregate.Created):
        TOPIC = "ordertrail.inventory:InventoryItem.Opened"
        class_version = 1
        sku: str
        warehouse: str

    Created = Opened

    class StockReceived(Event):
        TOPIC = "ordertrail.inventory:InventoryItem.StockReceived"
        class_version = 1
        quantity: int
        reference: str

        def apply(self, aggregate: InventoryItem) -> None:
            aggregate.on_hand += self.quantity

    class StockAdjusted(Event):
        TOPIC = "ordertrail.inventory:InventoryItem.StockAdjusted"
        class_version = 1
        delta: int
        reason: AdjustmentReason
        note: str

        def apply(self, aggregate: InventoryItem) -> None:
            aggregate.on_hand += self.delta

    class StockReserved(Event):
        TOPIC = "ordertrail.inventory:InventoryItem.StockReserved"
        class_version = 1
        order_id: UUID
        quantity: int
        expires_at: datetime

        def apply(self, aggregate: InventoryItem) -> None:
            aggregate.reservations[self.order_id] = Reservation(
                order_id=self.order_id,
                quantity=self.quantity,
                reserved_at=self.timestamp,
                expires_at=self.expires_at,
            )
            aggregate.reserved += self.quantity

    class ReservationReleased(Event):
        TOPIC = "ordertrail.inventory:InventoryItem.ReservationReleased"
        class_version = 1
        order_id: UUID
        quantity: int
        reason: ReleaseReason

        def apply(self, aggregate: InventoryItem) -> None:
            del aggregate.reservations[self.order_id]
            aggregate.reserved -= self.quantity

    class ReservationCommitted(Event):
        """Units left the warehouse in a parcel: they leave on-hand and the reservation."""

        TOPIC = "ordertrail.inventory:InventoryItem.ReservationCommitted"
        class_version = 1
        order_id: UUID
        quantity: int
        shipment_ref: str

        def apply(self, aggregate: InventoryItem) -> None:
            held = aggregate.reservations[self.order_id]
            remaining = held.quantity - self.quantity
            if remaining:
                aggregate.reservations[self.order_id] = replace(
                    held, quantity=remaining, shipped=held.shipped + self.quantity
                )
            else:
                del aggregate.reservations[self.order_id]
            aggregate.reserved -= self.quantity
            aggregate.on_hand -= self.quantity
            aggregate.shipped_refs.add(self.shipment_ref)

    class ParcelReturnedToStock(Event):
        """A parcel that left came back undelivered: its units are on hand again and held
        for the same order, which may ship them again or, if cancelled, release them."""

        TOPIC = "ordertrail.inventory:InventoryItem.ParcelReturnedToStock"
        class_version = 1
        order_id: UUID
        quantity: int
        shipment_ref: str

        def apply(self, aggregate: InventoryItem) -> None:
            held = aggregate.reservations.get(self.order_id)
            if held is None:
                aggregate.reservations[self.order_id] = Reservation(
                    order_id=self.order_id,
                    quantity=self.quantity,
                    reserved_at=self.timestamp,
                    expires_at=self.timestamp,
                )
            else:
                aggregate.reservations[self.order_id] = replace(
                    held, quantity=held.quantity + self.quantity
                )
            aggregate.on_hand += self.quantity
            aggregate.reserved += self.quantity
            aggregate.returned_refs.add(self.shipment_ref)

    class StockRestocked(Event):
        """Returned units came back into sellable stock."""

        TOPIC = "ordertrail.inventory:InventoryItem.StockRestocked"
        class_version = 1
        quantity: int
        reference: str
        order_id: UUID | None

        def apply(self, aggregate: InventoryItem) -> None:
            aggregate.on_hand += self.quantity
            aggregate.restock_refs.add(self.reference)

    def __init__(self, sku: str, warehouse: str) -> None:
        self.sku = sku
        self.warehouse = warehouse
        self.on_hand = 0
        self.reserved = 0
        self.reservations: dict[UUID, Reservation] = {}
        self.restock_refs: set[str] = set()
        # Every shipment that took stock, so a repeated commit never counts twice.
        self.shipped_refs: set[str] = set()
        self.returned_refs: set[str] = set()

    # --- commands ------------------------------------------------------------------------

    @classmethod
    def open(cls, *, sku: str, warehouse: str, meta: EventMeta, now: datetime) -> InventoryItem:
        checked_sku = rules.sku(sku, error=InvalidQuantity)
        checked_wh = rules.code(warehouse, "warehouse", error=InvalidQuantity)
        return cls._create(
            cls.Opened,
            id=ids.inventory_item_id(checked_sku, checked_wh),
            timestamp=now,
            meta=meta,
            sku=checked_sku,
            warehouse=checked_wh,
        )

    def receive(
        self, quantity: int, *, reference: str = "", meta: EventMeta, now: datetime
    ) -> None:
        qty = rules.positive_quantity(
            quantity, "quantity", error=InvalidQuantity, maximum=MAX_QUANTITY
        )
        if self.on_hand + qty > MAX_QUANTITY:
            raise InvalidQuantity("on-hand stock would exceed the maximum", sku=self.sku)
        ref = rules.text(
            reference, "reference", max_length=200, error=InvalidQuantity, allow_empty=True
        )
        self.trigger_event(
            self.StockReceived, timestamp=now, meta=meta, quantity=qty, reference=ref
        )

    def adjust(
        self,
        delta: int,
        reason: AdjustmentReason | str,
        *,
        note: str = "",
        meta: EventMeta,
        now: datetime,
    ) -> None:
        """Correct on-hand stock; it may not fall below what is reserved."""
        if type(delta) is not int or delta == 0 or abs(delta) > MAX_QUANTITY:
            raise InvalidQuantity("an adjustment is a non-zero whole number", value=delta)
        try:
            why = AdjustmentReason(reason)
        except ValueError:
            raise InvalidQuantity(f"unknown adjustment reason {reason!r}", field="reason") from None
        text = rules.text(note, "note", max_length=500, error=InvalidQuantity, allow_empty=True)
        new_on_hand = self.on_hand + delta
        if new_on_hand < self.reserved:
            raise AdjustmentBelowReserved(
                f"{self.sku}@{self.warehouse}: on hand would be {new_on_hand}, "
                f"below the {self.reserved} reserved",
                sku=self.sku,
                warehouse=self.warehouse,
                on_hand=self.on_hand,
                reserved=self.reserved,
                delta=delta,
            )
        if new_on_hand > MAX_QUANTITY:
            raise InvalidQuantity("on-hand stock would exceed the maximum", sku=self.sku)
        self.trigger_event(
            self.StockAdjusted, timestamp=now, meta=meta, delta=delta, reason=why, note=text
        )

    def reserve(
        self, order_id: UUID, quantity: int, *, expires_at: datetime, meta: EventMeta, now: datetime
    ) -> None:
        """Hold units for an order. Holding the same quantity again records nothing."""
        qty = rules.positive_quantity(
            quantity, "quantity", error=InvalidQuantity, maximum=MAX_QUANTITY
        )
        if expires_at <= now:
            raise InvalidQuantity("a reservation must expire in the future", field="expires_at")
        held = self.reservations.get(order_id)
        if held is not None:
            if held.quantity + held.shipped == qty:
                return
            raise ReservationConflict(
                f"order {order_id} already holds {held.quantity} of {self.sku}",
                order_id=str(order_id),
                sku=self.sku,
            )
        if qty > self.available:
            raise InsufficientStock(
                f"{self.sku}: {qty} requested, {self.available} available",
                sku=self.sku,
                warehouse=self.warehouse,
                requested=qty,
                available=self.available,
            )
        self.trigger_event(
            self.StockReserved,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            quantity=qty,
            expires_at=expires_at,
        )

    def release(
        self, order_id: UUID, reason: ReleaseReason, *, meta: EventMeta, now: datetime
    ) -> bool:
        """Give back what an order holds. Releasing what is not held records nothing."""
        try:
            why = ReleaseReason(reason)
        except ValueError:
            raise InvalidQuantity(f"unknown release reason {reason!r}", field="reason") from None
        held = self.reservations.get(order_id)
        if held is None:
            return False
        self.trigger_event(
            self.ReservationReleased,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            quantity=held.quantity,
            reason=why,
        )
        return True

    def commit(
        self, order_id: UUID, quantity: int, *, shipment_ref: str, meta: EventMeta, now: datetime
    ) -> bool:
        """Units of an order's reservation shipped. The same shipment twice records nothing."""
        qty = rules.positive_quantity(
            quantity, "quantity", error=InvalidQuantity, maximum=MAX_QUANTITY
        )
        ref = rules.text(shipment_ref, "shipment reference", max_length=200, error=InvalidQuantity)
        if ref in self.shipped_refs:
            return False
        held = self.reservations.get(order_id)
        if held is None:
            raise ReservationNotFound(
                f"order {order_id} holds no {self.sku}", order_id=str(order_id), sku=self.sku
            )
        if qty > held.quantity:
            raise InvalidQuantity(
                f"cannot ship {qty} of {self.sku}: order {order_id} holds {held.quantity}",
                requested=qty,
                reserved=held.quantity,
            )
        self.trigger_event(
            self.ReservationCommitted,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            quantity=qty,
            shipment_ref=ref,
        )
        return True

    def return_parcel(
        self, order_id: UUID, quantity: int, *, shipment_ref: str, meta: EventMeta, now: datetime
    ) -> bool:
        """Units of a shipped parcel came back undelivered; counted once per shipment."""
        qty = rules.positive_quantity(
            quantity, "quantity", error=InvalidQuantity, maximum=MAX_QUANTITY
        )
        ref = rules.text(shipment_ref, "shipment reference", max_length=200, error=InvalidQuantity)
        if ref in self.returned_refs:
            return False
        if ref not in self.shipped_refs:
            raise ReservationNotFound(
                f"shipment {ref} took no {self.sku} from here", shipment_ref=ref, sku=self.sku
            )
        if self.on_hand + qty > MAX_QUANTITY:
            raise InvalidQuantity("on-hand stock would exceed the maximum", sku=self.sku)
        self.trigger_event(
            self.ParcelReturnedToStock,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            quantity=qty,
            shipment_ref=ref,
        )
        return True

    def restock(
        self,
        quantity: int,
        *,
        reference: str,
        order_id: UUID | None = None,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """Returned units go back on hand, exactly once per ``reference``."""
        qty = rules.positive_quantity(
            quantity, "quantity", error=InvalidQuantity, maximum=MAX_QUANTITY
        )
        ref = rules.text(reference, "reference", max_length=200, error=InvalidQuantity)
        if ref in self.restock_refs:
            return False
        if self.on_hand + qty > MAX_QUANTITY:
            raise InvalidQuantity("on-hand stock would exceed the maximum", sku=self.sku)
        self.trigger_event(
            self.StockRestocked,
            timestamp=now,
            meta=meta,
            quantity=qty,
            reference=ref,
            order_id=order_id,
        )
        return True

    # --- queries -------------------------------------------------------------------------

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def held_for(self, order_id: UUID) -> int:
        held = self.reservations.get(order_id)
        return 0 if held is None else held.quantity
