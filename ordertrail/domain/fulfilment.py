"""How an order's lines are split into parcels, and what that says about the order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from ordertrail.domain import rules
from ordertrail.domain.errors import InvalidShipment, ShipmentExceedsOrder
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import DeliveryGroup, OrderLine
from ordertrail.domain.order_status import OrderStatus

MAX_PARCEL_WEIGHT_GRAMS = 100_000


class ParcelState(StrEnum):
    PLANNED = "planned"  # booked, not yet with the carrier
    DISPATCHED = "dispatched"  # with the carrier
    DELIVERED = "delivered"
    RETURNED = "returned"  # came back to the warehouse; its units can ship again
    CANCELLED = "cancelled"  # cancelled before pickup

    @property
    def holds_units(self) -> bool:
        """Whether the parcel's units count as allocated to it."""
        return self in (ParcelState.PLANNED, ParcelState.DISPATCHED, ParcelState.DELIVERED)


@dataclass(frozen=True)
class ParcelQuantity:
    line_no: int
    quantity: int


@dataclass(frozen=True)
class ParcelRecord:
    """An order's view of one of its parcels."""

    shipment_id: UUID
    delivery_group: str
    lines: tuple[ParcelQuantity, ...]
    carrier: str
    weight_grams: int
    cod_amount: Money | None = None
    state: ParcelState = ParcelState.PLANNED
    tracking_number: str = ""
    delivered_at: datetime | None = None

    def units(self) -> int:
        return sum(q.quantity for q in self.lines)


def quantities_in(parcels: Iterable[ParcelRecord], *states: ParcelState) -> dict[int, int]:
    """Units per order line in the parcels that are in one of ``states``."""
    counted: dict[int, int] = {}
    for parcel in parcels:
        if parcel.state in states:
            for part in parcel.lines:
                counted[part.line_no] = counted.get(part.line_no, 0) + part.quantity
    return counted


def allocated(parcels: Iterable[ParcelRecord]) -> dict[int, int]:
    return quantities_in(
        parcels, ParcelState.PLANNED, ParcelState.DISPATCHED, ParcelState.DELIVERED
    )


@dataclass(frozen=True)
class Progress:
    """Units ordered, on their way (or there), and delivered."""

    ordered: int
    shipped: int
    delivered: int

    @property
    def fully_shipped(self) -> bool:
        return self.shipped == self.ordered

    @property
    def fully_delivered(self) -> bool:
        return self.delivered == self.ordered


def progress(ordered: Mapping[int, int], parcels: Iterable[ParcelRecord]) -> Progress:
    listed = list(parcels)
    shipped = quantities_in(listed, ParcelState.DISPATCHED, ParcelState.DELIVERED)
    delivered = quantities_in(listed, ParcelState.DELIVERED)
    return Progress(sum(ordered.values()), sum(shipped.values()), sum(delivered.values()))


def fulfilment_status(lines: Sequence[OrderLine], parcels: Iterable[ParcelRecord]) -> OrderStatus:
    """The status an order in fulfilment has with these parcels."""
    done = progress({line.line_no: line.quantity for line in lines}, parcels)
    if done.fully_delivered:
        return OrderStatus.DELIVERED
    if done.fully_shipped:
        return OrderStatus.SHIPPED
    if done.shipped:
        return OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.READY_TO_SHIP


def check_parcel(
    lines: Sequence[OrderLine],
    groups: Sequence[DeliveryGroup],
    parcels: Iterable[ParcelRecord],
    delivery_group: str,
    parts: Sequence[ParcelQuantity],
) -> None:
    """A new parcel carries lines of one delivery group, each at most what was ordered and
    is not already in a parcel."""
    if delivery_group not in {g.group_id for g in groups}:
        raise InvalidShipment(f"no delivery group {delivery_group!r}", field="delivery_group")
    if not parts or len({part.line_no for part in parts}) != len(parts):
        raise InvalidShipment("a parcel lists each order line once", field="lines")
    taken = allocated(parcels)
    by_number = {line.line_no: line for line in lines}
    for part in parts:
        line = by_number.get(part.line_no)
        if line is None or line.delivery_group != delivery_group:
            raise InvalidShipment(
                f"line {part.line_no} is not in delivery group {delivery_group}", field="lines"
            )
        rules.positive_quantity(part.quantity, "quantity", error=InvalidShipment)
        room = line.quantity - taken.get(part.line_no, 0)
        if part.quantity > room:
            raise ShipmentExceedsOrder(
                f"line {part.line_no}: {part.quantity} to ship, {room} ordered and not yet in "
                "a parcel",
                line_no=part.line_no,
                requested=part.quantity,
                remaining=room,
            )
