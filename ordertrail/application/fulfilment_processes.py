"""Process managers of fulfilment and after-sales. Each follows one log and issues
idempotent commands, so it can be stopped and resumed (or crash) at any point.

- ``ParcelBooker``: a parcel the order planned is booked with its carrier.
- ``ParcelTracker``: a parcel picked up commits its stock and marks the order shipped;
  delivered marks it delivered; returned to sender takes the stock back (and a refused
  cash-on-delivery order is cancelled, so that stock is sellable again); cancelled
  before pickup gives its units back to the order.
- ``CodCapture``: cash collected on delivery is captured into the order's COD payment.
- ``OrderCompletion``: a delivered order completes when its after-sales window closes.
- ``CaseSettlement``: an accepted return is restocked (once) and refunded; an approved
  refund-only case is refunded; an approved exchange gets its replacement parcel.
- ``CaseRefundRecorder``: a refund the order made for a case is recorded on the case.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import uuid5

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import TrackingRecorder

from ordertrail.application.aftersales_flows import AfterSalesFlows
from ordertrail.application.context import CommandContext
from ordertrail.application.followers import Follower, event_ref, follow_up_meta
from ordertrail.application.fulfilment import Fulfilment, is_active, item_quantities
from ordertrail.application.ordering import CancelOrder, Ordering
from ordertrail.domain import ids
from ordertrail.domain.aftersales import AfterSalesCase, CaseKind
from ordertrail.domain.errors import DomainError
from ordertrail.domain.meta import Actor
from ordertrail.domain.orders import Order, OrderStatus, cod_capture_ref
from ordertrail.domain.shipments import Shipment

log = logging.getLogger(__name__)


def follow_up_context(
    event: DomainEventProtocol[Any], process: str, purpose: str = ""
) -> CommandContext:
    """The context of a command a process manager issues because of ``event``; its id
    derives from the event, so the command is idempotent across crashes."""
    meta = follow_up_meta(event, process)
    return CommandContext(
        actor=Actor.system(process),
        command_id=uuid5(event_ref(event), f"{process}:{purpose}"),
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
    )


class ParcelBooker(Follower):
    name = "parcel-booker"
    topics = (Order.ShipmentPlanned,)

    def __init__(self, fulfilment: Fulfilment, positions: TrackingRecorder) -> None:
        super().__init__(fulfilment.orders, positions)
        self.fulfilment = fulfilment

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        assert isinstance(event, Order.ShipmentPlanned)
        order = self.fulfilment.orders.order(event.originator_id)
        parcel = order.parcels[event.shipment_id]
        if is_active(parcel):
            self.fulfilment.book_planned(
                order.id, event.shipment_id, follow_up_meta(event, self.name)
            )
        return True


class ParcelTracker(Follower):
    name = "parcel-tracker"
    topics = (Shipment.PickedUp, Shipment.Delivered, Shipment.ReturnedToSender, Shipment.Cancelled)

    def __init__(
        self, fulfilment: Fulfilment, ordering: Ordering, positions: TrackingRecorder
    ) -> None:
        super().__init__(fulfilment.logistics, positions)
        self.fulfilment = fulfilment
        self.ordering = ordering

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        shipment = self.fulfilment.logistics.shipment(event.originator_id)
        meta = follow_up_meta(event, self.name)
        ref = str(shipment.id)
        for_order = shipment.holder_id == shipment.order_id
        orders = self.fulfilment.orders
        if isinstance(event, Shipment.PickedUp):
            self.fulfilment.inventory.commit_parcel(
                shipment.holder_id, item_quantities(shipment.lines), ref, meta
            )
            if for_order:
                orders.update(
                    shipment.order_id,
                    Order,
                    lambda order, now: order.record_dispatch(
                        shipment.id,
                        carrier=shipment.carrier,
                        tracking_number=shipment.tracking_number,
                        meta=meta,
                        now=now,
                    ),
                    "record the dispatch",
                )
        elif isinstance(event, Shipment.Delivered) and for_order:
            orders.update(
                shipment.order_id,
                Order,
                lambda order, now: order.record_delivery(
                    shipment.id, delivered_at=event.occurred_at, meta=meta, now=now
                ),
                "record the delivery",
            )
        elif isinstance(event, Shipment.ReturnedToSender):
            self.fulfilment.inventory.return_parcel(
                shipment.holder_id, item_quantities(shipment.lines), ref, meta
            )
            if for_order:
                orders.update(
                    shipment.order_id,
                    Order,
                    lambda order, now: order.record_return(
                        shipment.id, event.reason, meta=meta, now=now
                    ),
                    "record the return",
                )
                self._cancel_if_refused(event, shipment)
        elif isinstance(event, Shipment.Cancelled) and for_order:
            orders.update(
                shipment.order_id,
                Order,
                lambda order, now: order.cancel_shipment(
                    shipment.id, event.reason, meta=meta, now=now
                ),
                "cancel the parcel",
            )
        return True

    def _cancel_if_refused(self, event: DomainEventProtocol[Any], shipment: Shipment) -> None:
        """A refused cash-on-delivery parcel of an order with nothing else on its way or
        delivered cancels the order, which releases its stock for sale."""
        order = self.fulfilment.orders.order(shipment.order_id)
        if shipment.cod_amount is None or order.status is not OrderStatus.READY_TO_SHIP:
            return
        if any(is_active(p) or p.delivered_at for p in order.parcels.values()):
            return
        try:
            self.ordering.cancel_order(
                CancelOrder(order.id, "cash-on-delivery parcel refused"),
                follow_up_context(event, self.name, "cancel"),
            )
        except DomainError as error:
            log.warning("order %s not cancelled after refusal: %s", order.id, error)


class CodCapture(Follower):
    name = "cod-capture"
    topics = (Shipment.CashCollected,)

    def __init__(self, fulfilment: Fulfilment, positions: TrackingRecorder) -> None:
        super().__init__(fulfilment.logistics, positions)
        self.fulfilment = fulfilment

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        assert isinstance(event, Shipment.CashCollected)
        shipment = self.fulfilment.logistics.shipment(event.originator_id)
        meta = follow_up_meta(event, self.name)

        def capture(order: Order, now: Any) -> None:
            cod = order.cod_payment()
            if cod is not None:
                order.capture_payment(
                    cod.payment_id,
                    event.amount,
                    provider_ref=cod_capture_ref(shipment.id),
                    meta=meta,
                    now=now,
                    auto_release=False,
                )

        self.fulfilment.orders.update(shipment.order_id, Order, capture, "capture COD cash")
        return True


class OrderCompletion(Follower):
    name = "order-completion"
    topics = (Order.ShipmentDelivered,)

    def __init__(self, ordering: Ordering, window: timedelta, positions: TrackingRecorder) -> None:
        super().__init__(ordering.orders, positions)
        self.orders = ordering.orders
        self.window = window

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        assert isinstance(event, Order.ShipmentDelivered)
        if event.status is not OrderStatus.DELIVERED:
            return True
        if self.orders.clock() < event.delivered_at + self.window:
            return False  # deliveries complete in the order they happened
        order = self.orders.order(event.originator_id)
        if (
            order.status is OrderStatus.DELIVERED
            and order.last_delivered_at is not None
            and (self.orders.clock() >= order.last_delivered_at + self.window)
        ):
            meta = follow_up_meta(event, self.name)
            self.orders.update(
                order.id,
                Order,
                lambda o, now: o.complete(after_sales_window=self.window, meta=meta, now=now),
                "complete the order",
            )
        return True


class CaseSettlement(Follower):
    name = "case-settlement"
    topics = (AfterSalesCase.Inspected, AfterSalesCase.Approved)

    def __init__(self, flows: AfterSalesFlows, positions: TrackingRecorder) -> None:
        super().__init__(flows.aftersales, positions)
        self.flows = flows

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        case = self.flows.aftersales.case(event.originator_id)
        meta = follow_up_meta(event, self.name)
        if isinstance(event, AfterSalesCase.Inspected):
            self._restock(case, event)
            if case.kind is CaseKind.RETURN:
                self._refund(case, event)
        elif case.kind is CaseKind.REFUND_ONLY:
            self._refund(case, event)
        elif case.kind is CaseKind.EXCHANGE:
            try:
                self.flows.arrange_replacement(case.id, meta)
            except DomainError as error:  # no stock or carrier yet, or no longer due
                log.warning("no replacement for case %s: %s", case.id, error)
        return True

    def _refund(self, case: AfterSalesCase, event: DomainEventProtocol[Any]) -> None:
        try:
            self.flows.refund_case_in_full(case.id, follow_up_context(event, self.name))
        except DomainError as error:  # e.g. the order holds nothing more to give back
            log.warning("case %s not refunded automatically: %s", case.id, error)

    def _restock(self, case: AfterSalesCase, event: AfterSalesCase.Inspected) -> None:
        order = self.flows.orders.order(case.order_id)
        by_number = {line.line_no: line for line in order.lines}
        parts = [
            (
                ids.inventory_item_id(by_number[r.line_no].sku, by_number[r.line_no].warehouse),
                r.accepted,
                f"case:{case.id}:line:{r.line_no}",
            )
            for r in event.results
            if r.accepted
        ]
        if parts:
            self.flows.inventory.restock_returned(parts, order.id, follow_up_meta(event, self.name))


class CaseRefundRecorder(Follower):
    name = "case-refund-recorder"
    topics = (Order.PaymentRefunded,)

    def __init__(self, flows: AfterSalesFlows, positions: TrackingRecorder) -> None:
        super().__init__(flows.orders, positions)
        self.flows = flows

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        assert isinstance(event, Order.PaymentRefunded)
        if event.case_id is not None:
            self.flows.record_case_refunds(
                event.case_id,
                [(event.amount, event.refund_ref)],
                follow_up_meta(event, self.name),
            )
        return True
