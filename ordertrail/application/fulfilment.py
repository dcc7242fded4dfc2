"""Shipping an order: allocating its units to a parcel, choosing a carrier, booking it.

The order records the parcel first (that is where "never more than ordered minus already
shipped" is decided); the logistics store then books it with the carrier. If the process
dies in between, the parcel booker (``fulfilment_processes``) books it from the order's
``ShipmentPlanned`` event, with the carrier chosen then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ordertrail.application.base import Decision
from ordertrail.application.carriers import (
    CarrierDirectory,
    CarrierRule,
    ParcelSpec,
    Preference,
    select_carrier,
)
from ordertrail.application.context import CommandContext
from ordertrail.application.inventory import InventoryApplication
from ordertrail.application.logistics import LogisticsApplication, ShipmentSnapshot
from ordertrail.application.orders import OrdersApplication
from ordertrail.application.receipts import Accepted
from ordertrail.domain import ids
from ordertrail.domain.errors import InvalidShipment, ShipmentNotFound
from ordertrail.domain.fulfilment import ParcelQuantity, ParcelRecord, ParcelState
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money, total
from ordertrail.domain.orders import Order
from ordertrail.domain.shipments import ParcelLine, Shipment, TrackingNumber


@dataclass(frozen=True)
class CreateShipment:
    """Ship some units of one delivery group in one parcel. Without a carrier, the rules
    choose one (cheapest or fastest among those that take the parcel)."""

    order_id: UUID
    delivery_group: str
    lines: tuple[ParcelQuantity, ...]
    weight_grams: int
    carrier: str | None = None
    preference: Preference = Preference.CHEAPEST


@dataclass(frozen=True)
class PlannedParcel:
    order_id: UUID
    shipment_id: UUID
    carrier: str


@dataclass
class Fulfilment:
    orders: OrdersApplication
    logistics: LogisticsApplication
    inventory: InventoryApplication
    carriers: CarrierDirectory
    rules: tuple[CarrierRule, ...]

    def create_shipment(
        self, command: CreateShipment, ctx: CommandContext
    ) -> Accepted[ShipmentSnapshot]:
        shipment_id = ids.shipment_id(ctx.command_id)

        def decide(now: datetime) -> Decision[PlannedParcel]:
            order = self.orders.order(command.order_id)
            planned = order.parcels.get(shipment_id)
            carrier = (
                planned.carrier if planned else self._choose_carrier(order, command, shipment_id)
            )
            order.plan_shipment(
                shipment_id,
                command.delivery_group,
                command.lines,
                carrier=carrier,
                weight_grams=command.weight_grams,
                meta=ctx.meta,
                now=now,
            )
            return Decision(PlannedParcel(order.id, shipment_id, carrier), [order])

        planned = self.orders.execute(command, ctx, decide, PlannedParcel)
        snapshot, position = self.book_planned(command.order_id, shipment_id, ctx.meta)
        positions = dict(planned.positions)
        if position is not None:
            positions[self.logistics.name] = position
        return Accepted(snapshot, positions, planned.replayed)

    def book_planned(
        self, order_id: UUID, shipment_id: UUID, meta: EventMeta
    ) -> tuple[ShipmentSnapshot, int | None]:
        """Book a parcel the order has planned (idempotent: an existing booking is kept)."""
        existing = self.logistics.find_as(shipment_id, Shipment)
        if existing is not None:
            return ShipmentSnapshot.of(existing), None
        order = self.orders.order(order_id)
        parcel = order.parcels.get(shipment_id)
        if parcel is None:
            raise ShipmentNotFound(f"order {order_id} plans no parcel {shipment_id}")
        spec = parcel_spec(order, parcel)
        tracking_number = self.carriers.get(parcel.carrier).book(spec)
        now = self.logistics.clock()
        shipment = Shipment.book(
            shipment_id=shipment_id,
            order_id=order.id,
            delivery_group=parcel.delivery_group,
            address=spec.destination,
            lines=parcel_lines(order, parcel.lines),
            carrier=parcel.carrier,
            tracking_number=tracking_number,
            weight_grams=parcel.weight_grams,
            cod_amount=parcel.cod_amount,
            meta=meta,
            now=now,
        )
        index = TrackingNumber.assign(shipment, meta=meta, now=now)
        try:
            position = self.logistics.save_all([shipment, index])
        except IntegrityError:
            booked = self.logistics.find_as(shipment_id, Shipment)
            if booked is not None:  # booked concurrently by the parcel booker
                return ShipmentSnapshot.of(booked), None
            raise InvalidShipment(
                f"{parcel.carrier} tracking number {tracking_number} is already in use",
                tracking_number=tracking_number,
            ) from None
        return ShipmentSnapshot.of(shipment), position

    def _choose_carrier(self, order: Order, command: CreateShipment, shipment_id: UUID) -> str:
        group = next(
            (g for g in order.delivery_groups if g.group_id == command.delivery_group), None
        )
        if group is None:
            raise InvalidShipment(
                f"no delivery group {command.delivery_group!r}", field="delivery_group"
            )
        spec = ParcelSpec(
            shipment_id=shipment_id,
            destination=group.address,
            weight_grams=command.weight_grams,
            cod_amount=order.cash_for_next_parcel(),
            declared_value=declared_value(order, command.lines),
        )
        allowed = frozenset({command.carrier}) if command.carrier else self.carriers.codes
        if command.carrier:
            self.carriers.get(command.carrier)
        return select_carrier(self.rules, spec, Preference(command.preference), allowed).carrier


def parcel_spec(order: Order, parcel: ParcelRecord) -> ParcelSpec:
    group = next(g for g in order.delivery_groups if g.group_id == parcel.delivery_group)
    return ParcelSpec(
        shipment_id=parcel.shipment_id,
        destination=group.address,
        weight_grams=parcel.weight_grams,
        cod_amount=parcel.cod_amount,
        declared_value=declared_value(order, parcel.lines),
    )


def declared_value(order: Order, parts: tuple[ParcelQuantity, ...]) -> Money:
    by_number = {line.line_no: line for line in order.lines}
    return total(
        [by_number[p.line_no].unit_price * p.quantity for p in parts if p.line_no in by_number],
        order.currency,
    )


def parcel_lines(order: Order, parts: tuple[ParcelQuantity, ...]) -> tuple[ParcelLine, ...]:
    by_number = {line.line_no: line for line in order.lines}
    return tuple(
        ParcelLine(p.line_no, by_number[p.line_no].sku, p.quantity, by_number[p.line_no].warehouse)
        for p in parts
    )


def item_quantities(lines: tuple[ParcelLine, ...]) -> list[tuple[UUID, int]]:
    """Units per inventory item (sku at warehouse) in a parcel."""
    summed: dict[UUID, int] = {}
    for line in lines:
        item_id = ids.inventory_item_id(line.sku, line.warehouse)
        summed[item_id] = summed.get(item_id, 0) + line.quantity
    return list(summed.items())


def is_active(parcel: ParcelRecord) -> bool:
    return parcel.state in (ParcelState.PLANNED, ParcelState.DISPATCHED)
