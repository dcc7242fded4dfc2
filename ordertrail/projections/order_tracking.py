"""Order tracking: everything about one order that a customer or the staff looking after
it want to see, and one timeline of what happened to it in every context.

It reads three stores, each independently of the others (a shipment's or a case's events
may be projected before its order's ``Placed``):

- "Orders" owns ``track_orders``, ``track_lines``, ``track_groups``, ``track_discounts``,
  ``track_payments`` and ``track_parcels`` (the order's own view of its parcels);
- "Logistics" owns ``track_shipments`` (keyed by shipment id, carrying the order id from
  ``Shipment.Booked``) and ``track_scans`` (the carrier's scans);
- "AfterSales" owns ``track_cases`` (keyed by case id, carrying the order id from
  ``AfterSalesCase.Requested``);
- ``track_timeline`` has one row per event, keyed by (source, position), so each source
  writes only its own rows. A Logistics or AfterSales event finds its order through its
  own store's rows (a shipment's ``Booked`` and a case's ``Requested`` always come first
  in their logs).

A handler never reads a table that another source writes: what combines them (a parcel
as the order planned it and as the carrier saw it, captured and refunded totals, the
merged timeline) is joined when queried. So a model built incrementally, whatever the
interleaving of the three logs, has the same rows as one rebuilt from scratch.

Times are stored as UTC ISO-8601 text with microseconds (sortable as text); money as
integer minor units of the order's currency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from ordertrail.domain.aftersales import AfterSalesCase, CaseKind, CaseReason, CaseStatus
from ordertrail.domain.fulfilment import ParcelState
from ordertrail.domain.money import Money
from ordertrail.domain.order_parts import Address
from ordertrail.domain.orders import Order, OrderStatus
from ordertrail.domain.payments import PaymentMethod, PaymentState
from ordertrail.domain.shipments import Milestone, Shipment, ShipmentStatus
from ordertrail.projections.readmodel import Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

ORDERS = "Orders"
LOGISTICS = "Logistics"
AFTERSALES = "AfterSales"


def events_of(aggregate: type[Any]) -> tuple[type[Any], ...]:
    """Every event class nested in an aggregate (so an event added later is wanted, and
    shown, without touching this module)."""
    base = aggregate.Event
    found = (
        value
        for value in vars(aggregate).values()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    )
    return tuple(dict.fromkeys(found))


_Event = Order.Event | Shipment.Event | AfterSalesCase.Event


def topics_of(classes: Sequence[type[Any]]) -> frozenset[str]:
    """The stored topics of these event classes (for ``ReadModel.topics``)."""
    return frozenset(str(cls.TOPIC) for cls in classes)


# --- the views -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Amounts:
    """The order's money, in minor units of ``currency``. ``captured`` and ``refunded``
    add up its payments."""

    currency: str
    subtotal: int
    shipping_fee: int
    discounts: tuple[tuple[str, int], ...]  # (code, amount)
    discount_total: int
    total: int
    captured: int
    refunded: int


@dataclass(frozen=True)
class LineView:
    line_no: int
    sku: str
    title: str
    quantity: int
    unit_price: int
    line_total: int
    delivery_group: str
    warehouse: str
    #: units with the carrier or delivered, and delivered (from the order's parcels)
    shipped: int
    delivered: int


@dataclass(frozen=True)
class DeliveryGroupView:
    group_id: str
    address: Address


@dataclass(frozen=True)
class PaymentView:
    payment_id: UUID
    method: PaymentMethod
    amount: int
    state: PaymentState
    authorized: int
    captured: int
    refunded: int


@dataclass(frozen=True)
class ParcelLineView:
    line_no: int
    sku: str
    title: str
    quantity: int
    warehouse: str


@dataclass(frozen=True)
class ScanView:
    milestone: Milestone
    occurred_at: datetime  # when the carrier says it happened
    recorded_at: datetime  # when we recorded it
    location: str
    description: str
    status_after: ShipmentStatus
    position: int
    carrier_event_id: str


@dataclass(frozen=True)
class ParcelView:
    """One parcel: as the order planned it (``state``, None if the order did not plan it,
    as for an exchange's replacement, or that is not projected yet) and as the carrier
    handles it (``status`` and ``scans``, None/empty until it is booked)."""

    shipment_id: UUID
    delivery_group: str
    lines: tuple[ParcelLineView, ...]
    carrier: str
    tracking_number: str
    weight_grams: int
    cod_amount: int | None
    state: ParcelState | None
    status: ShipmentStatus | None
    scans: tuple[ScanView, ...]  # oldest scan first (by the carrier's time)
    planned_at: datetime | None
    booked_at: datetime | None
    picked_up_at: datetime | None
    delivered_at: datetime | None
    returned_at: datetime | None
    problem: str | None  # why it came back or was cancelled
    cash_collected: int | None
    cash_collected_at: datetime | None
    cash_reference: str | None  # the carrier's receipt for the cash
    replacement_for_case: UUID | None


@dataclass(frozen=True)
class CaseLineView:
    line_no: int
    sku: str
    quantity: int
    unit_price: int
    accepted: int | None  # once inspected
    rejected: int | None


@dataclass(frozen=True)
class CaseView:
    case_id: UUID
    kind: CaseKind
    reason: CaseReason
    status: CaseStatus
    description: str
    lines: tuple[CaseLineView, ...]
    refunded: int
    replacement_shipment_id: UUID | None
    requested_at: datetime
    updated_at: datetime
    resolution: str | None  # why it was rejected, or how it was closed


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to the order, in any context."""

    occurred_at: datetime  # the event's time
    source: str  # "Orders", "Logistics" or "AfterSales"
    position: int  # in that source's log
    subject: str  # "order", "shipment" or "case"
    kind: str  # the event's class name
    actor: str  # "kind:id"
    summary: str
    shipment_id: UUID | None = None
    case_id: UUID | None = None
    scan_occurred_at: datetime | None = None  # a carrier scan: when the carrier saw it


@dataclass(frozen=True)
class OrderTrackingView:
    order_id: UUID
    customer_id: str
    status: OrderStatus
    placed_at: datetime
    payment_due_at: datetime
    updated_at: datetime
    amounts: Amounts
    lines: tuple[LineView, ...]
    delivery_groups: tuple[DeliveryGroupView, ...]
    payments: tuple[PaymentView, ...]
    parcels: tuple[ParcelView, ...]
    cases: tuple[CaseView, ...]
    #: sorted by (occurred_at, source, position)
    timeline: tuple[TimelineEntry, ...]


# --- the model -----------------------------------------------------------------------------


class OrderTracking(ReadModel):
    name = "order_tracking"
    sources = (ORDERS, LOGISTICS, AFTERSALES)
    topics = {
        ORDERS: topics_of(events_of(Order)),
        LOGISTICS: topics_of(events_of(Shipment)),
        AFTERSALES: topics_of(events_of(AfterSalesCase)),
    }

    def tables(self) -> Sequence[str]:
        return (
            "track_orders",
            "track_lines",
            "track_groups",
            "track_discounts",
            "track_payments",
            "track_parcels",
            "track_shipments",
            "track_scans",
            "track_cases",
            "track_timeline",
        )

    def create(self, tx: Tx) -> None:
        # --- Orders
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_orders ("
            " order_id {text} PRIMARY KEY, customer_id {text} NOT NULL, status {text} NOT NULL,"
            " currency {text} NOT NULL, subtotal {int} NOT NULL, shipping_fee {int} NOT NULL,"
            " discount_total {int} NOT NULL, total {int} NOT NULL, placed_at {text} NOT NULL,"
            " payment_due_at {text} NOT NULL, updated_at {text} NOT NULL)"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_lines ("
            " order_id {text} NOT NULL, line_no {int} NOT NULL, sku {text} NOT NULL,"
            " title {text} NOT NULL, quantity {int} NOT NULL, unit_price {int} NOT NULL,"
            " delivery_group {text} NOT NULL, warehouse {text} NOT NULL,"
            " PRIMARY KEY (order_id, line_no))"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_groups ("
            " order_id {text} NOT NULL, seq {int} NOT NULL, group_id {text} NOT NULL,"
            " recipient {text} NOT NULL, phone {text} NOT NULL, line1 {text} NOT NULL,"
            " line2 {text} NOT NULL, city {text} NOT NULL, region {text} NOT NULL,"
            " postal_code {text} NOT NULL, country {text} NOT NULL,"
            " PRIMARY KEY (order_id, seq))"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_discounts ("
            " order_id {text} NOT NULL, seq {int} NOT NULL, code {text} NOT NULL,"
            " amount {int} NOT NULL, PRIMARY KEY (order_id, seq))"
        )
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_payments ("
            " payment_id {text} PRIMARY KEY, order_id {text} NOT NULL, seq {int} NOT NULL,"
            " method {text} NOT NULL, amount {int} NOT NULL, state {text} NOT NULL,"
            " authorized {int} NOT NULL, captured {int} NOT NULL, refunded {int} NOT NULL)"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS track_payments_order ON track_payments (order_id)")
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_parcels ("
            " shipment_id {text} PRIMARY KEY, order_id {text} NOT NULL,"
            " delivery_group {text} NOT NULL, lines {text} NOT NULL, carrier {text} NOT NULL,"
            " weight_grams {int} NOT NULL, cod_amount {int}, state {text} NOT NULL,"
            " tracking_number {text} NOT NULL, planned_at {text} NOT NULL,"
            " delivered_at {text}, problem {text})"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS track_parcels_order ON track_parcels (order_id)")
        # --- Logistics
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_shipments ("
            " shipment_id {text} PRIMARY KEY, order_id {text} NOT NULL,"
            " holder_id {text} NOT NULL, delivery_group {text} NOT NULL, lines {text} NOT NULL,"
            " carrier {text} NOT NULL, tracking_number {text} NOT NULL,"
            " weight_grams {int} NOT NULL, cod_amount {int}, status {text} NOT NULL,"
            " booked_at {text} NOT NULL, picked_up_at {text}, delivered_at {text},"
            " returned_at {text}, problem {text}, cash_collected {int},"
            " cash_collected_at {text}, cash_reference {text})"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS track_shipments_order ON track_shipments (order_id)")
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_scans ("
            " position {int} PRIMARY KEY, shipment_id {text} NOT NULL,"
            " milestone {text} NOT NULL, occurred_at {text} NOT NULL,"
            " recorded_at {text} NOT NULL, location {text} NOT NULL,"
            " description {text} NOT NULL, carrier_event_id {text} NOT NULL,"
            " status_after {text} NOT NULL)"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS track_scans_shipment"
            " ON track_scans (shipment_id, occurred_at, position)"
        )
        # --- AfterSales
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_cases ("
            " case_id {text} PRIMARY KEY, order_id {text} NOT NULL, kind {text} NOT NULL,"
            " reason {text} NOT NULL, status {text} NOT NULL, description {text} NOT NULL,"
            " lines {text} NOT NULL, inspections {text}, refunded {int} NOT NULL,"
            " replacement_shipment_id {text}, requested_at {text} NOT NULL,"
            " updated_at {text} NOT NULL, resolution {text})"
        )
        tx.ddl("CREATE INDEX IF NOT EXISTS track_cases_order ON track_cases (order_id)")
        # --- every source, each its own rows
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS track_timeline ("
            " source {text} NOT NULL, position {int} NOT NULL, order_id {text} NOT NULL,"
            " occurred_at {text} NOT NULL, subject {text} NOT NULL, kind {text} NOT NULL,"
            " actor {text} NOT NULL, summary {text} NOT NULL, shipment_id {text},"
            " case_id {text}, scan_occurred_at {text}, PRIMARY KEY (source, position))"
        )
        tx.ddl(
            "CREATE INDEX IF NOT EXISTS track_timeline_order"
            " ON track_timeline (order_id, occurred_at)"
        )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self._apply(event, tx, position)

    @singledispatchmethod
    def _apply(self, event: Any, tx: Tx, position: Position) -> None:
        """Other aggregates' events (receipts, abandoned placements, return ledgers,
        tracking-number indexes, carrier accounts) are not wanted."""

    # An event of an order, a shipment or a case that has no handler of its own below (one
    # added to the domain after this model) is still shown, with its name as the summary.

    @_apply.register
    def _(self, event: Order.Event, tx: Tx, position: Position) -> None:
        _touch(tx, event)
        _order_log(tx, position, event, _words(type(event).__name__))

    @_apply.register
    def _(self, event: Shipment.Event, tx: Tx, position: Position) -> None:
        _shipment_log(tx, position, event, _words(type(event).__name__))

    @_apply.register
    def _(self, event: AfterSalesCase.Event, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "")
        _case_log(tx, position, event, _words(type(event).__name__))

    # --- Orders ----------------------------------------------------------------------------

    @_apply.register
    def _(self, event: Order.Placed, tx: Tx, position: Position) -> None:
        order_id = str(event.originator_id)
        discount_total = sum(d.amount.amount for d in event.discounts)
        tx.execute(
            "INSERT INTO track_orders (order_id, customer_id, status, currency, subtotal,"
            " shipping_fee, discount_total, total, placed_at, payment_due_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order_id,
                event.customer_id,
                OrderStatus.AWAITING_PAYMENT.value,
                event.currency,
                event.subtotal.amount,
                event.shipping_fee.amount,
                discount_total,
                event.total.amount,
                _at(event),
                utc_text(event.payment_due_at),
                _at(event),
            ),
        )
        tx.executemany(
            "INSERT INTO track_lines (order_id, line_no, sku, title, quantity, unit_price,"
            " delivery_group, warehouse) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    line.line_no,
                    line.sku,
                    line.title,
                    line.quantity,
                    line.unit_price.amount,
                    line.delivery_group,
                    line.warehouse,
                )
                for line in event.lines
            ],
        )
        tx.executemany(
            "INSERT INTO track_groups (order_id, seq, group_id, recipient, phone, line1, line2,"
            " city, region, postal_code, country) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    order_id,
                    seq,
                    group.group_id,
                    group.address.recipient,
                    group.address.phone,
                    group.address.line1,
                    group.address.line2,
                    group.address.city,
                    group.address.region,
                    group.address.postal_code,
                    group.address.country,
                )
                for seq, group in enumerate(event.delivery_groups)
            ],
        )
        tx.executemany(
            "INSERT INTO track_discounts (order_id, seq, code, amount) VALUES (?, ?, ?, ?)",
            [(order_id, seq, d.code, d.amount.amount) for seq, d in enumerate(event.discounts)],
        )
        tx.executemany(
            "INSERT INTO track_payments (payment_id, order_id, seq, method, amount, state,"
            " authorized, captured, refunded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    str(p.payment_id),
                    order_id,
                    seq,
                    p.method.value,
                    p.amount.amount,
                    p.state.value,
                    p.authorized.amount,
                    p.captured.amount,
                    p.refunded.amount,
                )
                for seq, p in enumerate(event.payments)
            ],
        )
        units = sum(line.quantity for line in event.lines)
        plan = ", ".join(
            f"{p.method.value.replace('_', ' ')} {_money(p.amount)}" for p in event.payments
        )
        _log(
            tx,
            position,
            event,
            f"Order placed: {_count(units, 'item')}, total {_money(event.total)} ({plan})",
            order_id=order_id,
            subject="order",
        )

    @_apply.register
    def _(self, event: Order.PaymentAuthorized, tx: Tx, position: Position) -> None:
        method = _payment_method(tx, event.payment_id)
        tx.execute(
            "UPDATE track_payments SET state = ?, authorized = ? WHERE payment_id = ?",
            (PaymentState.AUTHORIZED.value, event.amount.amount, str(event.payment_id)),
        )
        _order_log(tx, position, event, f"{method} authorized {_money(event.amount)}")

    @_apply.register
    def _(self, event: Order.PaymentCaptured, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE track_payments SET state = ?, captured = captured + ? WHERE payment_id = ?",
            (PaymentState.CAPTURED.value, event.amount.amount, str(event.payment_id)),
        )
        method = event.method.value.replace("_", " ").capitalize()
        _order_log(tx, position, event, f"{method} captured {_money(event.amount)}")

    @_apply.register
    def _(self, event: Order.PaymentFailed, tx: Tx, position: Position) -> None:
        method = _payment_method(tx, event.payment_id)
        tx.execute(
            "UPDATE track_payments SET state = ?, authorized = 0 WHERE payment_id = ?",
            (PaymentState.FAILED.value, str(event.payment_id)),
        )
        _order_log(tx, position, event, f"{method} payment failed: {event.reason}")

    @_apply.register
    def _(self, event: Order.PaymentVoided, tx: Tx, position: Position) -> None:
        method = _payment_method(tx, event.payment_id)
        tx.execute(
            "UPDATE track_payments SET state = ?, authorized = 0 WHERE payment_id = ?",
            (PaymentState.VOIDED.value, str(event.payment_id)),
        )
        _order_log(tx, position, event, f"{method} authorization voided: {event.reason}")

    @_apply.register
    def _(self, event: Order.PaymentDiscrepancyRecorded, tx: Tx, position: Position) -> None:
        method = _payment_method(tx, event.payment_id)
        _touch(tx, event)
        _order_log(
            tx,
            position,
            event,
            f"{method} provider reported {_money(event.reported)} where"
            f" {_money(event.expected)} was due: not captured, to be checked",
        )

    @_apply.register
    def _(self, event: Order.PaymentRefunded, tx: Tx, position: Position) -> None:
        method = _payment_method(tx, event.payment_id)
        tx.execute(
            "UPDATE track_payments SET refunded = refunded + ? WHERE payment_id = ?",
            (event.amount.amount, str(event.payment_id)),
        )
        _order_log(
            tx, position, event, f"Refunded {_money(event.amount)} to {method}: {event.reason}"
        )

    @_apply.register
    def _(self, event: Order.Paid, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.PAID)
        _order_log(tx, position, event, f"Paid in full: {_money(event.amount)}")

    @_apply.register
    def _(self, event: Order.CashOnDeliveryConfirmed, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.COD_CONFIRMED)
        due = _money(event.amount_due_on_delivery)
        _order_log(tx, position, event, f"Cash on delivery confirmed: {due} due on delivery")

    @_apply.register
    def _(self, event: Order.ReleasedToFulfilment, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.READY_TO_SHIP)
        _order_log(tx, position, event, "Released to the warehouse for shipping")

    @_apply.register
    def _(self, event: Order.Cancelled, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.CANCELLED)
        _order_log(tx, position, event, f"Order cancelled: {event.reason}")

    @_apply.register
    def _(self, event: Order.Expired, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.EXPIRED)
        due = utc_text(event.payment_due_at)[:16].replace("T", " ")
        _order_log(tx, position, event, f"Order expired: not paid by {due} UTC")

    @_apply.register
    def _(self, event: Order.ShipmentPlanned, tx: Tx, position: Position) -> None:
        order_id = str(event.originator_id)
        tx.execute(
            "INSERT INTO track_parcels (shipment_id, order_id, delivery_group, lines, carrier,"
            " weight_grams, cod_amount, state, tracking_number, planned_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.shipment_id),
                order_id,
                event.delivery_group,
                _json([[q.line_no, q.quantity] for q in event.lines]),
                event.carrier,
                event.weight_grams,
                None if event.cod_amount is None else event.cod_amount.amount,
                ParcelState.PLANNED.value,
                "",
                _at(event),
            ),
        )
        _touch(tx, event)
        units = sum(q.quantity for q in event.lines)
        cod = "" if event.cod_amount is None else f", collecting {_money(event.cod_amount)}"
        _order_log(
            tx,
            position,
            event,
            f"Parcel of {_count(units, 'item')} planned for {event.delivery_group}"
            f" with {event.carrier}{cod}",
            shipment_id=event.shipment_id,
        )

    @_apply.register
    def _(self, event: Order.ShipmentDispatched, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE track_parcels SET state = ?, tracking_number = ? WHERE shipment_id = ?",
            (ParcelState.DISPATCHED.value, event.tracking_number, str(event.shipment_id)),
        )
        _set_status(tx, event, event.status)
        _order_log(
            tx,
            position,
            event,
            f"Parcel on its way with {event.carrier}, tracking number {event.tracking_number}",
            shipment_id=event.shipment_id,
        )

    @_apply.register
    def _(self, event: Order.ShipmentDelivered, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE track_parcels SET state = ?, delivered_at = ? WHERE shipment_id = ?",
            (ParcelState.DELIVERED.value, utc_text(event.delivered_at), str(event.shipment_id)),
        )
        _set_status(tx, event, event.status)
        whole = " (the whole order is delivered)" if event.status is OrderStatus.DELIVERED else ""
        _order_log(tx, position, event, f"Parcel delivered{whole}", shipment_id=event.shipment_id)

    @_apply.register
    def _(self, event: Order.ShipmentReturned, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE track_parcels SET state = ?, problem = ? WHERE shipment_id = ?",
            (ParcelState.RETURNED.value, event.reason, str(event.shipment_id)),
        )
        _set_status(tx, event, event.status)
        _order_log(
            tx,
            position,
            event,
            f"Parcel came back undelivered: {event.reason}",
            shipment_id=event.shipment_id,
        )

    @_apply.register
    def _(self, event: Order.ShipmentCancelled, tx: Tx, position: Position) -> None:
        tx.execute(
            "UPDATE track_parcels SET state = ?, problem = ? WHERE shipment_id = ?",
            (ParcelState.CANCELLED.value, event.reason, str(event.shipment_id)),
        )
        _touch(tx, event)
        _order_log(
            tx,
            position,
            event,
            f"Parcel cancelled: {event.reason}",
            shipment_id=event.shipment_id,
        )

    @_apply.register
    def _(self, event: Order.Completed, tx: Tx, position: Position) -> None:
        _set_status(tx, event, OrderStatus.COMPLETED)
        _order_log(tx, position, event, "Order completed: the after-sales window has closed")

    # --- Logistics -------------------------------------------------------------------------

    @_apply.register
    def _(self, event: Shipment.Booked, tx: Tx, position: Position) -> None:
        shipment_id = event.originator_id
        tx.execute(
            "INSERT INTO track_shipments (shipment_id, order_id, holder_id, delivery_group,"
            " lines, carrier, tracking_number, weight_grams, cod_amount, status, booked_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(shipment_id),
                str(event.order_id),
                str(event.holder_id),
                event.delivery_group,
                _json([[p.line_no, p.sku, p.quantity, p.warehouse] for p in event.lines]),
                event.carrier,
                event.tracking_number,
                event.weight_grams,
                None if event.cod_amount is None else event.cod_amount.amount,
                ShipmentStatus.AWAITING_PICKUP.value,
                _at(event),
            ),
        )
        replacement = "Replacement parcel" if event.holder_id != event.order_id else "Parcel"
        _log(
            tx,
            position,
            event,
            f"{replacement} booked with {event.carrier}, tracking number {event.tracking_number}",
            order_id=str(event.order_id),
            subject="shipment",
            shipment_id=shipment_id,
        )

    @_apply.register
    def _(self, event: Shipment.ScanRecorded, tx: Tx, position: Position) -> None:
        scan = event.scan
        tx.execute(
            "INSERT INTO track_scans (position, shipment_id, milestone, occurred_at,"
            " recorded_at, location, description, carrier_event_id, status_after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                position.id,
                str(event.originator_id),
                scan.milestone.value,
                utc_text(scan.occurred_at),
                _at(event),
                scan.location,
                scan.description,
                scan.carrier_event_id,
                event.status.value,
            ),
        )
        tx.execute(
            "UPDATE track_shipments SET status = ? WHERE shipment_id = ?",
            (event.status.value, str(event.originator_id)),
        )
        words = scan.milestone.value.replace("_", " ").capitalize()
        where = f" at {scan.location}" if scan.location else ""
        said = scan.description.strip()
        what = f": {said}" if said and said.lower() != words.lower() else ""
        _shipment_log(tx, position, event, f"Carrier scan: {words}{where}{what}", scan.occurred_at)

    @_apply.register
    def _(self, event: Shipment.PickedUp, tx: Tx, position: Position) -> None:
        _shipment_set(tx, event, "picked_up_at = ?", utc_text(event.occurred_at))
        _shipment_log(tx, position, event, "Picked up by the carrier")

    @_apply.register
    def _(self, event: Shipment.Delivered, tx: Tx, position: Position) -> None:
        _shipment_set(tx, event, "delivered_at = ?", utc_text(event.occurred_at))
        _shipment_log(tx, position, event, "Delivered by the carrier")

    @_apply.register
    def _(self, event: Shipment.ReturnedToSender, tx: Tx, position: Position) -> None:
        _shipment_set(
            tx, event, "returned_at = ?, problem = ?", utc_text(event.occurred_at), event.reason
        )
        _shipment_log(tx, position, event, f"Returned to sender: {event.reason}")

    @_apply.register
    def _(self, event: Shipment.CashCollected, tx: Tx, position: Position) -> None:
        _shipment_set(
            tx,
            event,
            "cash_collected = ?, cash_collected_at = ?, cash_reference = ?",
            event.amount.amount,
            utc_text(event.collected_at),
            event.reference,
        )
        _shipment_log(tx, position, event, f"Courier collected {_money(event.amount)} in cash")

    @_apply.register
    def _(self, event: Shipment.Cancelled, tx: Tx, position: Position) -> None:
        _shipment_set(
            tx, event, "status = ?, problem = ?", ShipmentStatus.CANCELLED.value, event.reason
        )
        _shipment_log(tx, position, event, f"Booking cancelled: {event.reason}")

    # --- AfterSales ------------------------------------------------------------------------

    @_apply.register
    def _(self, event: AfterSalesCase.Requested, tx: Tx, position: Position) -> None:
        tx.execute(
            "INSERT INTO track_cases (case_id, order_id, kind, reason, status, description,"
            " lines, refunded, requested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                str(event.originator_id),
                str(event.order_id),
                event.kind.value,
                event.reason.value,
                CaseStatus.REQUESTED.value,
                event.description,
                _json(
                    [[ln.line_no, ln.sku, ln.quantity, ln.unit_price.amount] for ln in event.lines]
                ),
                _at(event),
                _at(event),
            ),
        )
        units = sum(line.quantity for line in event.lines)
        kind = {
            CaseKind.RETURN: "Return",
            CaseKind.EXCHANGE: "Exchange",
            CaseKind.REFUND_ONLY: "Refund",
        }[event.kind]
        _log(
            tx,
            position,
            event,
            f"{kind} of {_count(units, 'item')} requested ({event.reason.value.replace('_', ' ')})",
            order_id=str(event.order_id),
            subject="case",
            case_id=event.originator_id,
        )

    @_apply.register
    def _(self, event: AfterSalesCase.Approved, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "status = ?", CaseStatus.APPROVED.value)
        _case_log(tx, position, event, "Case approved" + (f": {event.note}" if event.note else ""))

    @_apply.register
    def _(self, event: AfterSalesCase.Rejected, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "status = ?, resolution = ?", CaseStatus.REJECTED.value, event.reason)
        _case_log(tx, position, event, f"Case rejected: {event.reason}")

    @_apply.register
    def _(self, event: AfterSalesCase.ReturnReceived, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "status = ?", CaseStatus.RETURN_RECEIVED.value)
        ref = f" (tracking number {event.tracking_number})" if event.tracking_number else ""
        _case_log(tx, position, event, f"Returned goods received{ref}")

    @_apply.register
    def _(self, event: AfterSalesCase.Inspected, tx: Tx, position: Position) -> None:
        _case_set(
            tx,
            event,
            "status = ?, inspections = ?",
            CaseStatus.INSPECTED.value,
            _json([[r.line_no, r.accepted, r.rejected] for r in event.results]),
        )
        accepted = sum(r.accepted for r in event.results)
        rejected = sum(r.rejected for r in event.results)
        _case_log(
            tx,
            position,
            event,
            f"Returned goods inspected: {accepted} accepted, {rejected} rejected",
        )

    @_apply.register
    def _(self, event: AfterSalesCase.RefundIssued, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "refunded = refunded + ?", event.amount.amount)
        _case_log(tx, position, event, f"Refund of {_money(event.amount)} issued for the case")

    @_apply.register
    def _(self, event: AfterSalesCase.ReplacementArranged, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "replacement_shipment_id = ?", str(event.shipment_id))
        units = sum(line.quantity for line in event.lines)
        _case_log(
            tx,
            position,
            event,
            f"Replacement of {_count(units, 'item')} arranged",
            shipment_id=event.shipment_id,
        )

    @_apply.register
    def _(self, event: AfterSalesCase.ArticleLinked, tx: Tx, position: Position) -> None:
        _case_set(tx, event, "")
        _case_log(tx, position, event, f"Help article {event.article_id} linked to the case")

    @_apply.register
    def _(self, event: AfterSalesCase.Closed, tx: Tx, position: Position) -> None:
        _case_set(
            tx, event, "status = ?, resolution = ?", CaseStatus.CLOSED.value, event.resolution
        )
        _case_log(tx, position, event, f"Case closed: {event.resolution}")


# --- helpers for handlers ------------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """A time as UTC ISO-8601 text with microseconds: the same instant always gives the
    same text, and text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _at(event: _Event) -> str:
    return utc_text(event.timestamp)


def _json(values: list[Any]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


#: Currencies whose minor unit is not a hundredth (ISO 4217 exponent).
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "PYG": 0,
              "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3}  # fmt: skip


def money_text(amount: int, currency: str) -> str:
    """``13600, "CNY"`` -> ``"136.00 CNY"``."""
    exponent = _EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), 10**exponent)
    fraction = f".{part:0{exponent}d}" if exponent else ""
    return f"{sign}{whole}{fraction} {currency}"


def _money(money: Money) -> str:
    return money_text(money.amount, money.currency)


def _words(name: str) -> str:
    """``PaymentDiscrepancyRecorded`` -> ``Payment discrepancy recorded``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).capitalize()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _actor(event: _Event) -> str:
    return str(event.meta.actor)


def _log(
    tx: Tx,
    position: Position,
    event: _Event,
    summary: str,
    *,
    order_id: str,
    subject: str,
    shipment_id: UUID | None = None,
    case_id: UUID | None = None,
    scan_at: datetime | None = None,
) -> None:
    """The event's row in its order's timeline (keyed by its source and position)."""
    tx.execute(
        "INSERT INTO track_timeline (source, position, order_id, occurred_at, subject, kind,"
        " actor, summary, shipment_id, case_id, scan_occurred_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            position.source,
            position.id,
            order_id,
            _at(event),
            subject,
            type(event).__name__,
            _actor(event),
            summary,
            None if shipment_id is None else str(shipment_id),
            None if case_id is None else str(case_id),
            None if scan_at is None else utc_text(scan_at),
        ),
    )


def _order_log(
    tx: Tx,
    position: Position,
    event: Order.Event,
    summary: str,
    *,
    shipment_id: UUID | None = None,
) -> None:
    _log(
        tx,
        position,
        event,
        summary,
        order_id=str(event.originator_id),
        subject="order",
        shipment_id=shipment_id,
    )


def _touch(tx: Tx, event: Order.Event) -> None:
    tx.execute(
        "UPDATE track_orders SET updated_at = ? WHERE order_id = ?",
        (_at(event), str(event.originator_id)),
    )


def _set_status(tx: Tx, event: Order.Event, status: OrderStatus) -> None:
    tx.execute(
        "UPDATE track_orders SET status = ?, updated_at = ? WHERE order_id = ?",
        (status.value, _at(event), str(event.originator_id)),
    )


def _payment_method(tx: Tx, payment_id: UUID) -> str:
    method = tx.scalar("SELECT method FROM track_payments WHERE payment_id = ?", (str(payment_id),))
    return "Payment" if method is None else str(method).replace("_", " ").capitalize()


def _shipment_set(tx: Tx, event: Shipment.Event, assignments: str, *values: object) -> None:
    tx.execute(
        f"UPDATE track_shipments SET {assignments} WHERE shipment_id = ?",
        (*values, str(event.originator_id)),
    )


def _shipment_log(
    tx: Tx,
    position: Position,
    event: Shipment.Event,
    summary: str,
    scan_at: datetime | None = None,
) -> None:
    """A row in the order's timeline, found through the shipment's booking (which always
    comes first in the Logistics log)."""
    order_id = tx.scalar(
        "SELECT order_id FROM track_shipments WHERE shipment_id = ?", (str(event.originator_id),)
    )
    if order_id is None:
        return  # pragma: no cover - a shipment's events follow its booking
    _log(
        tx,
        position,
        event,
        summary,
        order_id=str(order_id),
        subject="shipment",
        shipment_id=event.originator_id,
        scan_at=scan_at,
    )


def _case_set(tx: Tx, event: AfterSalesCase.Event, assignments: str, *values: object) -> None:
    sets = f"{assignments}, updated_at = ?" if assignments else "updated_at = ?"
    tx.execute(
        f"UPDATE track_cases SET {sets} WHERE case_id = ?",
        (*values, _at(event), str(event.originator_id)),
    )


def _case_log(
    tx: Tx,
    position: Position,
    event: AfterSalesCase.Event,
    summary: str,
    *,
    shipment_id: UUID | None = None,
) -> None:
    order_id = tx.scalar(
        "SELECT order_id FROM track_cases WHERE case_id = ?", (str(event.originator_id),)
    )
    if order_id is None:
        return  # pragma: no cover - a case's events follow its request
    _log(
        tx,
        position,
        event,
        summary,
        order_id=str(order_id),
        subject="case",
        shipment_id=shipment_id,
        case_id=event.originator_id,
    )


# --- queries -------------------------------------------------------------------------------

_ADDRESS = ("recipient", "phone", "line1", "line2", "city", "region", "postal_code", "country")


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _maybe(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


class OrderTrackingQueries:
    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def get(self, order_id: UUID | str) -> OrderTrackingView | None:
        """The order with everything known about it, or None if its placement is not
        projected (yet) or the id names no order."""
        try:
            key = str(order_id if isinstance(order_id, UUID) else UUID(str(order_id)))
        except ValueError:
            return None
        with self.store.read() as tx:  # one snapshot for the reads below
            order = tx.one(
                "SELECT customer_id, status, currency, subtotal, shipping_fee, discount_total,"
                " total, placed_at, payment_due_at, updated_at FROM track_orders"
                " WHERE order_id = ?",
                (key,),
            )
            if order is None:
                return None
            lines = tx.all(
                "SELECT line_no, sku, title, quantity, unit_price, delivery_group, warehouse"
                " FROM track_lines WHERE order_id = ? ORDER BY line_no",
                (key,),
            )
            groups = tx.all(
                "SELECT group_id, recipient, phone, line1, line2, city, region, postal_code,"
                " country FROM track_groups WHERE order_id = ? ORDER BY seq",
                (key,),
            )
            discounts = tx.all(
                "SELECT code, amount FROM track_discounts WHERE order_id = ? ORDER BY seq", (key,)
            )
            payments = tx.all(
                "SELECT payment_id, method, amount, state, authorized, captured, refunded"
                " FROM track_payments WHERE order_id = ? ORDER BY seq",
                (key,),
            )
            parcels = tx.all(
                "SELECT shipment_id, delivery_group, lines, carrier, weight_grams, cod_amount,"
                " state, tracking_number, planned_at, delivered_at, problem"
                " FROM track_parcels WHERE order_id = ?",
                (key,),
            )
            shipments = tx.all(
                "SELECT shipment_id, holder_id, delivery_group, lines, carrier, tracking_number,"
                " weight_grams, cod_amount, status, booked_at, picked_up_at, delivered_at,"
                " returned_at, problem, cash_collected, cash_collected_at, cash_reference"
                " FROM track_shipments WHERE order_id = ?",
                (key,),
            )
            scans = tx.all(
                "SELECT s.shipment_id, s.milestone, s.occurred_at, s.recorded_at, s.location,"
                " s.description, s.status_after, s.position, s.carrier_event_id FROM track_scans s"
                " JOIN track_shipments sh ON sh.shipment_id = s.shipment_id"
                " WHERE sh.order_id = ?",
                (key,),
            )
            cases = tx.all(
                "SELECT case_id, kind, reason, status, description, lines, inspections,"
                " refunded, replacement_shipment_id, requested_at, updated_at, resolution"
                " FROM track_cases WHERE order_id = ?",
                (key,),
            )
            timeline = tx.all(
                "SELECT occurred_at, source, position, subject, kind, actor, summary,"
                " shipment_id, case_id, scan_occurred_at FROM track_timeline"
                " WHERE order_id = ?",
                (key,),
            )
        (customer_id, status, currency, subtotal, shipping_fee, discount_total, total,
         placed_at, due_at, updated_at) = order  # fmt: skip
        payment_views = tuple(
            PaymentView(UUID(pid), PaymentMethod(m), int(a), PaymentState(s), int(au), int(c),
                        int(r))
            for pid, m, a, s, au, c, r in payments
        )  # fmt: skip
        parcel_lines = [(ParcelState(row[6]), json.loads(row[2])) for row in parcels]
        line_views = tuple(_line_view(row, parcel_lines) for row in lines)
        by_number = {line.line_no: line for line in line_views}
        return OrderTrackingView(
            order_id=UUID(key),
            customer_id=customer_id,
            status=OrderStatus(status),
            placed_at=_when(placed_at),
            payment_due_at=_when(due_at),
            updated_at=_when(updated_at),
            amounts=Amounts(
                currency=currency,
                subtotal=int(subtotal),
                shipping_fee=int(shipping_fee),
                discounts=tuple((code, int(amount)) for code, amount in discounts),
                discount_total=int(discount_total),
                total=int(total),
                captured=sum(p.captured for p in payment_views),
                refunded=sum(p.refunded for p in payment_views),
            ),
            lines=line_views,
            delivery_groups=tuple(
                DeliveryGroupView(gid, Address(**dict(zip(_ADDRESS, address, strict=True))))
                for gid, *address in groups
            ),
            payments=payment_views,
            parcels=_parcels(key, parcels, shipments, scans, by_number),
            cases=tuple(sorted((_case_view(row) for row in cases), key=_case_order)),
            timeline=tuple(
                sorted((_entry(row) for row in timeline), key=_timeline_order),
            ),
        )


def _line_view(
    row: tuple[Any, ...], parcels: list[tuple[ParcelState, list[list[int]]]]
) -> LineView:
    line_no, sku, title, quantity, unit_price, group, warehouse = row
    shipped = delivered = 0
    for state, parts in parcels:
        for part_line, part_quantity in parts:
            if part_line != line_no:
                continue
            if state in (ParcelState.DISPATCHED, ParcelState.DELIVERED):
                shipped += int(part_quantity)
            if state is ParcelState.DELIVERED:
                delivered += int(part_quantity)
    return LineView(
        line_no=int(line_no),
        sku=sku,
        title=title,
        quantity=int(quantity),
        unit_price=int(unit_price),
        line_total=int(unit_price) * int(quantity),
        delivery_group=group,
        warehouse=warehouse,
        shipped=shipped,
        delivered=delivered,
    )


_PLANNED = ("delivery_group", "lines", "carrier", "weight_grams", "cod_amount", "state",
            "tracking_number", "planned_at", "delivered_at", "problem")  # fmt: skip
_BOOKED = ("holder_id", "delivery_group", "lines", "carrier", "tracking_number", "weight_grams",
           "cod_amount", "status", "booked_at", "picked_up_at", "delivered_at", "returned_at",
           "problem", "cash_collected", "cash_collected_at", "cash_reference")  # fmt: skip


def _parcels(
    order_id: str,
    planned_rows: list[tuple[Any, ...]],
    booked_rows: list[tuple[Any, ...]],
    scans: list[tuple[Any, ...]],
    lines: dict[int, LineView],
) -> tuple[ParcelView, ...]:
    """Each parcel as the order planned it (Orders) joined with the carrier's side of it
    (Logistics): either may be missing, so neither is assumed."""
    planned = {row[0]: dict(zip(_PLANNED, row[1:], strict=True)) for row in planned_rows}
    booked = {row[0]: dict(zip(_BOOKED, row[1:], strict=True)) for row in booked_rows}
    scans_of: dict[str, list[ScanView]] = {}
    for sid, milestone, occurred, recorded, location, description, after, pos, key in scans:
        scans_of.setdefault(sid, []).append(
            ScanView(
                Milestone(milestone),
                _when(occurred),
                _when(recorded),
                location,
                description,
                ShipmentStatus(after),
                int(pos),
                key,
            )
        )
    views = []
    for sid in set(planned) | set(booked):
        plan = planned.get(sid, {})
        book = booked.get(sid, {})
        either = book or plan
        if book:
            parts = [
                ParcelLineView(int(n), sku, _title(lines, n), int(q), wh)
                for n, sku, q, wh in json.loads(book["lines"])
            ]
        else:
            parts = [
                ParcelLineView(
                    int(n),
                    lines[n].sku if n in lines else "",
                    _title(lines, n),
                    int(q),
                    lines[n].warehouse if n in lines else "",
                )
                for n, q in json.loads(plan["lines"])
            ]
        holder = book.get("holder_id")
        cod = either["cod_amount"]
        cash = book.get("cash_collected")
        views.append(
            ParcelView(
                shipment_id=UUID(sid),
                delivery_group=either["delivery_group"],
                lines=tuple(parts),
                carrier=either["carrier"],
                tracking_number=book.get("tracking_number") or plan.get("tracking_number", ""),
                weight_grams=int(either["weight_grams"]),
                cod_amount=None if cod is None else int(cod),
                state=ParcelState(plan["state"]) if plan else None,
                status=ShipmentStatus(book["status"]) if book else None,
                scans=tuple(sorted(scans_of.get(sid, ()), key=_scan_order)),
                planned_at=_maybe(plan.get("planned_at")),
                booked_at=_maybe(book.get("booked_at")),
                picked_up_at=_maybe(book.get("picked_up_at")),
                delivered_at=_maybe(book.get("delivered_at") or plan.get("delivered_at")),
                returned_at=_maybe(book.get("returned_at")),
                problem=book.get("problem") or plan.get("problem"),
                cash_collected=None if cash is None else int(cash),
                cash_collected_at=_maybe(book.get("cash_collected_at")),
                cash_reference=book.get("cash_reference"),
                replacement_for_case=(
                    None if holder is None or holder == order_id else UUID(holder)
                ),
            )
        )
    return tuple(sorted(views, key=_parcel_order))


def _title(lines: dict[int, LineView], line_no: int) -> str:
    return lines[line_no].title if line_no in lines else ""


def _scan_order(scan: ScanView) -> tuple[datetime, int]:
    return (scan.occurred_at, scan.position)


def _parcel_order(parcel: ParcelView) -> tuple[datetime, str]:
    first = min(t for t in (parcel.planned_at, parcel.booked_at) if t is not None)
    return (first, str(parcel.shipment_id))


def _case_view(row: tuple[Any, ...]) -> CaseView:
    (case_id, kind, reason, status, description, raw_lines, raw_inspections, refunded,
     replacement, requested_at, updated_at, resolution) = row  # fmt: skip
    judged = {int(n): (int(a), int(r)) for n, a, r in json.loads(raw_inspections or "[]")}
    return CaseView(
        case_id=UUID(case_id),
        kind=CaseKind(kind),
        reason=CaseReason(reason),
        status=CaseStatus(status),
        description=description,
        lines=tuple(
            CaseLineView(
                int(n),
                sku,
                int(q),
                int(price),
                judged[n][0] if n in judged else None,
                judged[n][1] if n in judged else None,
            )
            for n, sku, q, price in json.loads(raw_lines)
        ),
        refunded=int(refunded),
        replacement_shipment_id=_uuid(replacement),
        requested_at=_when(requested_at),
        updated_at=_when(updated_at),
        resolution=resolution,
    )


def _case_order(case: CaseView) -> tuple[datetime, str]:
    return (case.requested_at, str(case.case_id))


def _entry(row: tuple[Any, ...]) -> TimelineEntry:
    (occurred, source, pos, subject, kind, actor, summary, shipment_id, case_id,
     scan_at) = row  # fmt: skip
    return TimelineEntry(
        occurred_at=_when(occurred),
        source=source,
        position=int(pos),
        subject=subject,
        kind=kind,
        actor=actor,
        summary=summary,
        shipment_id=_uuid(shipment_id),
        case_id=_uuid(case_id),
        scan_occurred_at=_maybe(scan_at),
    )


def _timeline_order(entry: TimelineEntry) -> tuple[datetime, str, int]:
    return (entry.occurred_at, entry.source, entry.position)
