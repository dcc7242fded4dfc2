"""Logistics: parcels, the carrier's scans of them, and cash collected on delivery.

Carrier notifications may arrive twice or out of order. A scan already seen records
nothing; an older scan joins the timeline without moving the status back; delivery and
return to sender are final whenever they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate

from ordertrail.domain import ids, rules
from ordertrail.domain.errors import (
    CashOnDeliveryMismatch,
    InvalidShipment,
    InvalidShipmentTransition,
)
from ordertrail.domain.fulfilment import MAX_PARCEL_WEIGHT_GRAMS
from ordertrail.domain.meta import EventMeta
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address

MAX_PARCEL_LINES = 100


class Milestone(StrEnum):
    """What a carrier scan says happened to a parcel."""

    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    RETURNED_TO_SENDER = "returned_to_sender"

    @property
    def is_final(self) -> bool:
        return self in (Milestone.DELIVERED, Milestone.RETURNED_TO_SENDER)


class ShipmentStatus(StrEnum):
    AWAITING_PICKUP = "awaiting_pickup"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_FAILED = "delivery_failed"  # an attempt failed; another may follow
    DELIVERED = "delivered"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (
            ShipmentStatus.DELIVERED,
            ShipmentStatus.RETURNED_TO_SENDER,
            ShipmentStatus.CANCELLED,
        )


@dataclass(frozen=True)
class ParcelLine:
    """Units of one order line in a parcel, and the warehouse they leave from."""

    line_no: int
    sku: str
    quantity: int
    warehouse: str


@dataclass(frozen=True)
class Scan:
    """One carrier tracking event, as its adapter translated it."""

    milestone: Milestone
    occurred_at: datetime
    location: str = ""
    description: str = ""
    carrier_event_id: str = ""

    @property
    def key(self) -> str:
        """What makes two notifications the same scan."""
        if self.carrier_event_id:
            return self.carrier_event_id
        return f"{self.milestone.value}@{self.occurred_at.astimezone(UTC).isoformat()}"


class Shipment(Aggregate):
    """One parcel of one delivery group of an order (or of an after-sales replacement)."""

    TOPIC = "ordertrail.logistics:Shipment"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Booked(Event, Aggregate.Created):
        TOPIC = "ordertrail.logistics:Shipment.Booked"
        class_version = 1
        order_id: UUID
        holder_id: UUID  # whose stock reservation the parcel consumes: the order, or a case
        delivery_group: str
        address: Address
        lines: tuple[ParcelLine, ...]
        carrier: str
        tracking_number: str
        weight_grams: int
        cod_amount: Money | None

    Created = Booked

    class ScanRecorded(Event):
        TOPIC = "ordertrail.logistics:Shipment.ScanRecorded"
        class_version = 1
        scan: Scan
        status: ShipmentStatus  # the status after this scan

        def apply(self, aggregate: Shipment) -> None:
            aggregate.scans = (*aggregate.scans, self.scan)
            aggregate.scan_keys.add(self.scan.key)
            if aggregate.last_scan_at is None or self.scan.occurred_at > aggregate.last_scan_at:
                aggregate.last_scan_at = self.scan.occurred_at
            aggregate.status = self.status

    class PickedUp(Event):
        """The carrier has the parcel: its units left the warehouse."""

        TOPIC = "ordertrail.logistics:Shipment.PickedUp"
        class_version = 1
        occurred_at: datetime

        def apply(self, aggregate: Shipment) -> None:
            aggregate.picked_up_at = self.occurred_at

    class Delivered(Event):
        TOPIC = "ordertrail.logistics:Shipment.Delivered"
        class_version = 1
        occurred_at: datetime

        def apply(self, aggregate: Shipment) -> None:
            aggregate.delivered_at = self.occurred_at

    class ReturnedToSender(Event):
        """The parcel came back to the warehouse (refused, undeliverable)."""

        TOPIC = "ordertrail.logistics:Shipment.ReturnedToSender"
        class_version = 1
        occurred_at: datetime
        reason: str

        def apply(self, aggregate: Shipment) -> None:
            aggregate.returned_at = self.occurred_at

    class CashCollected(Event):
        TOPIC = "ordertrail.logistics:Shipment.CashCollected"
        class_version = 1
        amount: Money
        collected_at: datetime
        reference: str

        def apply(self, aggregate: Shipment) -> None:
            aggregate.cash_collected = self.amount

    class Cancelled(Event):
        TOPIC = "ordertrail.logistics:Shipment.Cancelled"
        class_version = 1
        reason: str

        def apply(self, aggregate: Shipment) -> None:
            aggregate.status = ShipmentStatus.CANCELLED

    def __init__(
        self,
        *,
        order_id: UUID,
        holder_id: UUID,
        delivery_group: str,
        address: Address,
        lines: tuple[ParcelLine, ...],
        carrier: str,
        tracking_number: str,
        weight_grams: int,
        cod_amount: Money | None,
    ) -> None:
        self.order_id = order_id
        self.holder_id = holder_id
        self.delivery_group = delivery_group
        self.address = address
        self.lines = lines
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.weight_grams = weight_grams
        self.cod_amount = cod_amount
        self.status = ShipmentStatus.AWAITING_PICKUP
        self.scans: tuple[Scan, ...] = ()
        self.scan_keys: set[str] = set()
        self.last_scan_at: datetime | None = None
        self.picked_up_at: datetime | None = None
        self.delivered_at: datetime | None = None
        self.returned_at: datetime | None = None
        self.cash_collected: Money | None = None

    # --- commands ------------------------------------------------------------------------

    @classmethod
    def book(
        cls,
        *,
        shipment_id: UUID,
        order_id: UUID,
        holder_id: UUID | None = None,
        delivery_group: str,
        address: Address,
        lines: Sequence[ParcelLine],
        carrier: str,
        tracking_number: str,
        weight_grams: int,
        cod_amount: Money | None = None,
        meta: EventMeta,
        now: datetime,
    ) -> Shipment:
        if not lines or len(lines) > MAX_PARCEL_LINES:
            raise InvalidShipment(f"a parcel carries 1 to {MAX_PARCEL_LINES} lines", field="lines")
        seen: set[int] = set()
        for line in lines:
            if line.line_no in seen:
                raise InvalidShipment("a parcel lists each order line once", field="lines")
            seen.add(line.line_no)
            rules.positive_quantity(line.quantity, "quantity", error=InvalidShipment)
        if type(weight_grams) is not int or not 0 < weight_grams <= MAX_PARCEL_WEIGHT_GRAMS:
            raise InvalidShipment(
                f"weight is 1 to {MAX_PARCEL_WEIGHT_GRAMS} grams", field="weight_grams"
            )
        if cod_amount is not None and cod_amount.amount <= 0:
            raise InvalidShipment("cash on delivery is a positive amount", field="cod_amount")
        return cls._create(
            cls.Booked,
            id=shipment_id,
            timestamp=now,
            meta=meta,
            order_id=order_id,
            holder_id=holder_id or order_id,
            delivery_group=rules.code(delivery_group, "delivery group", error=InvalidShipment),
            address=address,
            lines=tuple(lines),
            carrier=rules.code(carrier, "carrier", error=InvalidShipment),
            tracking_number=rules.code(tracking_number, "tracking number", error=InvalidShipment),
            weight_grams=weight_grams,
            cod_amount=cod_amount,
        )

    def record_scan(self, scan: Scan, *, meta: EventMeta, now: datetime) -> bool:
        """Record a carrier scan. The same scan twice records nothing (returns False)."""
        if not isinstance(scan.milestone, Milestone):
            raise InvalidShipment("unknown milestone", field="milestone")
        if scan.occurred_at.tzinfo is None:
            raise InvalidShipment("scan times need a time zone", field="occurred_at")
        rules.text(
            scan.location, "location", max_length=200, error=InvalidShipment, allow_empty=True
        )
        rules.text(
            scan.description, "description", max_length=500, error=InvalidShipment, allow_empty=True
        )
        if scan.key in self.scan_keys:
            return False
        status = self._status_after(scan)
        self.trigger_event(self.ScanRecorded, timestamp=now, meta=meta, scan=scan, status=status)
        if self.picked_up_at is None and self.status is not ShipmentStatus.CANCELLED:
            self.trigger_event(
                self.PickedUp, timestamp=now, meta=meta, occurred_at=scan.occurred_at
            )
        if status is ShipmentStatus.DELIVERED and self.delivered_at is None:
            self.trigger_event(
                self.Delivered, timestamp=now, meta=meta, occurred_at=scan.occurred_at
            )
        if status is ShipmentStatus.RETURNED_TO_SENDER and self.returned_at is None:
            self.trigger_event(
                self.ReturnedToSender,
                timestamp=now,
                meta=meta,
                occurred_at=scan.occurred_at,
                reason=scan.description or "returned by the carrier",
            )
        return True

    def record_cash_collected(
        self,
        amount: Money,
        *,
        collected_at: datetime,
        reference: str,
        meta: EventMeta,
        now: datetime,
    ) -> bool:
        """The courier collected the cash due on delivery; the same collection twice
        records nothing. Reported before any scan, it also records the pickup (a courier
        had the parcel), so the parcel can no longer be cancelled."""
        if self.cod_amount is None:
            raise InvalidShipmentTransition("this parcel has no cash to collect")
        if self.cash_collected is not None:
            return False
        if self.status in (ShipmentStatus.CANCELLED, ShipmentStatus.RETURNED_TO_SENDER):
            raise InvalidShipmentTransition(
                f"no cash is collected for a {self.status.value} parcel", status=self.status.value
            )
        if amount != self.cod_amount:
            raise CashOnDeliveryMismatch(
                f"{amount.amount} collected, {self.cod_amount.amount} due",
                collected=amount.amount,
                due=self.cod_amount.amount,
            )
        ref = rules.text(reference, "reference", max_length=200, error=InvalidShipment)
        if self.picked_up_at is None:  # a courier had it, whatever scans are still to come
            self.trigger_event(self.PickedUp, timestamp=now, meta=meta, occurred_at=collected_at)
        self.trigger_event(
            self.CashCollected,
            timestamp=now,
            meta=meta,
            amount=amount,
            collected_at=collected_at,
            reference=ref,
        )
        return True

    def cancel(self, reason: str, *, meta: EventMeta, now: datetime) -> None:
        why = rules.text(reason, "reason", max_length=500, error=InvalidShipment)
        if self.status is not ShipmentStatus.AWAITING_PICKUP or self.picked_up_at is not None:
            raise InvalidShipmentTransition(
                f"a {self.status.value} parcel cannot be cancelled", status=self.status.value
            )
        self.trigger_event(self.Cancelled, timestamp=now, meta=meta, reason=why)

    # --- queries -------------------------------------------------------------------------

    def timeline(self) -> list[Scan]:
        return sorted(self.scans, key=lambda s: s.occurred_at)

    def quantities(self) -> dict[int, int]:
        return {line.line_no: line.quantity for line in self.lines}

    def _status_after(self, scan: Scan) -> ShipmentStatus:
        if self.status.is_terminal:
            return self.status
        if scan.milestone.is_final:
            return ShipmentStatus(scan.milestone.value)
        if self.last_scan_at is not None and scan.occurred_at < self.last_scan_at:
            return self.status  # an older scan, late: history only
        return ShipmentStatus(scan.milestone.value)


class TrackingNumber(Aggregate):
    """Index entry: a carrier's tracking number names one shipment (id from both)."""

    TOPIC = "ordertrail.logistics:TrackingNumber"

    class Event(Aggregate.Event):
        meta: EventMeta

    class Assigned(Event, Aggregate.Created):
        TOPIC = "ordertrail.logistics:TrackingNumber.Assigned"
        class_version = 1
        carrier: str
        tracking_number: str
        shipment_id: UUID

    Created = Assigned

    def __init__(self, *, carrier: str, tracking_number: str, shipment_id: UUID) -> None:
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.shipment_id = shipment_id

    @classmethod
    def assign(cls, shipment: Shipment, *, meta: EventMeta, now: datetime) -> TrackingNumber:
        return cls._create(
            cls.Assigned,
            id=ids.tracking_number_id(shipment.carrier, shipment.tracking_number),
            timestamp=now,
            meta=meta,
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            shipment_id=shipment.id,
        )
