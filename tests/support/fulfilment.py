"""Builders for fulfilment and after-sales tests: orders ready to ship, carrier scans."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

from ordertrail.application.carriers import TrackingNotice
from ordertrail.application.context import CommandContext
from ordertrail.application.fulfilment import CreateShipment
from ordertrail.application.logistics import RecordTrackingNotice, ShipmentSnapshot
from ordertrail.application.orders import (
    CapturePayment,
    ConfirmCashOnDelivery,
    OrderSnapshot,
)
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Actor, Money, PaymentMethod
from ordertrail.domain.fulfilment import ParcelQuantity
from ordertrail.domain.shipments import Milestone, Scan
from tests.support.builders import cny, customer, order_of, provider, staff, stocked_product


def carrier_ctx() -> CommandContext:
    return CommandContext(actor=Actor.of("carrier", "parcelhub"), command_id=uuid4())


def ready_order(
    ot: Ordertrail,
    *lines: tuple[str, int],
    price: int = 1000,
    stock: int = 10,
    method: PaymentMethod = PaymentMethod.ALIPAY,
) -> OrderSnapshot:
    """A placed and paid (or COD-confirmed) order, released to fulfilment."""
    for sku, _ in lines:
        if ot.inventory.stock_level(sku).on_hand == 0:
            stocked_product(ot, sku, price, stock)
    total = sum(price * qty for _, qty in lines)
    order = ot.ordering.place_order(order_of(*lines, total=total, method=method), customer()).value
    if method is PaymentMethod.CASH_ON_DELIVERY:
        return ot.orders.confirm_cash_on_delivery(
            ConfirmCashOnDelivery(order.order_id), staff()
        ).value
    return ot.orders.capture_payment(
        CapturePayment(
            order.order_id, order.payments[0].payment_id, cny(total), f"pay-{order.order_id}"
        ),
        provider(),
    ).value


def ship(
    ot: Ordertrail,
    order_id: UUID,
    *parts: tuple[int, int],
    carrier: str | None = None,
    ctx: CommandContext | None = None,
    weight: int = 800,
) -> ShipmentSnapshot:
    command = CreateShipment(
        order_id, "home", tuple(ParcelQuantity(n, q) for n, q in parts), weight, carrier
    )
    return ot.fulfilment.create_shipment(command, ctx or staff()).value


def scan(milestone: Milestone, at: datetime, event_id: str | None = None) -> Scan:
    return Scan(
        milestone,
        at,
        "Shanghai hub",
        milestone.value.replace("_", " "),
        event_id or f"{milestone.value}-{at.isoformat()}",
    )


def notify(
    ot: Ordertrail,
    shipment: ShipmentSnapshot,
    *scans: Scan,
    cash: Money | None = None,
    at: datetime | None = None,
) -> ShipmentSnapshot:
    notice = TrackingNotice(
        shipment.carrier,
        shipment.tracking_number,
        tuple(scans),
        cash_collected=cash,
        cash_reference="R-1" if cash else "",
        cash_collected_at=at,
    )
    return ot.logistics.record_notice(RecordTrackingNotice(notice), carrier_ctx()).value


def deliver(
    ot: Ordertrail, shipment: ShipmentSnapshot, at: datetime, cash: Money | None = None
) -> None:
    notify(
        ot,
        shipment,
        scan(Milestone.PICKED_UP, at),
        scan(Milestone.IN_TRANSIT, at + timedelta(hours=5)),
        scan(Milestone.DELIVERED, at + timedelta(days=1)),
        cash=cash,
        at=at + timedelta(days=1),
    )
    ot.run_processes()
