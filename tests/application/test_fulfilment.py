"""Shipping orders: parcels within what was ordered, carriers chosen by the rules, stock
committed when a parcel ships, order status from its parcels, cash on delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ordertrail.application.errors import CommandIdReused
from ordertrail.application.fulfilment import CreateShipment
from ordertrail.application.logistics import RecordRemittance, RecordTrackingNotice
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.system import Ordertrail
from ordertrail.domain import OrderStatus, PaymentMethod, PaymentState
from ordertrail.domain.errors import (
    InvalidOrderTransition,
    OrderNotCancellable,
    RemittanceExceedsCollected,
    ShipmentExceedsOrder,
)
from ordertrail.domain.fulfilment import ParcelQuantity
from ordertrail.domain.shipments import Milestone, ShipmentStatus
from tests.support.builders import cny, customer, heads, order_of, staff, stocked_product
from tests.support.clock import FakeClock
from tests.support.fulfilment import carrier_ctx, deliver, notify, ready_order, scan, ship

T0 = datetime(2026, 11, 11, 10, 0, tzinfo=UTC)


def test_a_parcel_is_planned_on_the_order_and_booked_with_a_carrier(ot: Ordertrail) -> None:
    order = ready_order(ot, ("TEA-1", 3))
    shipment = ship(ot, order.order_id, (1, 2))
    assert shipment.carrier in ot.fulfilment.carriers.codes
    assert shipment.status is ShipmentStatus.AWAITING_PICKUP
    assert (
        ot.logistics.by_tracking_number(shipment.carrier, shipment.tracking_number).id
        == shipment.shipment_id
    )
    planned = ot.orders.order(order.order_id).parcels[shipment.shipment_id]
    assert [(p.line_no, p.quantity) for p in planned.lines] == [(1, 2)]


def test_parcels_never_carry_more_than_was_ordered_and_not_yet_in_a_parcel(
    ot: Ordertrail,
) -> None:
    order = ready_order(ot, ("TEA-1", 3))
    ship(ot, order.order_id, (1, 2))
    before = heads(ot)
    with pytest.raises(ShipmentExceedsOrder) as refused:
        ship(ot, order.order_id, (1, 2))
    assert refused.value.details["remaining"] == 1
    assert heads(ot) == before
    ship(ot, order.order_id, (1, 1))


def test_unpaid_orders_are_not_shipped(ot: Ordertrail) -> None:
    stocked_product(ot, "TEA-1", 1000, 5)
    placed = ot.ordering.place_order(order_of(("TEA-1", 1), total=1000), customer()).value
    with pytest.raises(InvalidOrderTransition):
        ship(ot, placed.order_id, (1, 1))


def test_stock_is_committed_when_the_parcel_is_picked_up_and_the_order_follows_its_parcels(
    ot: Ordertrail,
) -> None:
    order = ready_order(ot, ("TEA-1", 3))
    first = ship(ot, order.order_id, (1, 2))
    notify(ot, first, scan(Milestone.PICKED_UP, T0))
    ot.run_processes()
    level = ot.inventory.stock_level("TEA-1")
    assert (level.on_hand, level.reserved) == (8, 1)
    assert ot.orders.order(order.order_id).status is OrderStatus.PARTIALLY_SHIPPED
    second = ship(ot, order.order_id, (1, 1))
    notify(ot, second, scan(Milestone.IN_TRANSIT, T0 + timedelta(hours=1)))  # pickup scan lost
    ot.run_processes()
    assert ot.orders.order(order.order_id).status is OrderStatus.SHIPPED
    assert (
        ot.inventory.stock_level("TEA-1").on_hand,
        ot.inventory.stock_level("TEA-1").reserved,
    ) == (7, 0)
    notify(ot, first, scan(Milestone.DELIVERED, T0 + timedelta(days=1)))
    ot.run_processes()
    assert ot.orders.order(order.order_id).status is OrderStatus.SHIPPED
    notify(ot, second, scan(Milestone.DELIVERED, T0 + timedelta(days=2)))
    ot.run_processes()
    assert ot.orders.order(order.order_id).status is OrderStatus.DELIVERED
    with pytest.raises(OrderNotCancellable):
        ot.ordering.cancel_order(CancelOrder(order.order_id, "too late"), customer())


def test_repeated_and_out_of_order_carrier_scans_are_harmless(ot: Ordertrail) -> None:
    order = ready_order(ot, ("TEA-1", 1))
    shipment = ship(ot, order.order_id, (1, 1))
    delivered = scan(Milestone.DELIVERED, T0 + timedelta(days=1))
    notify(ot, shipment, delivered)  # delivery arrives first
    notify(
        ot,
        shipment,
        scan(Milestone.OUT_FOR_DELIVERY, T0 + timedelta(hours=20)),
        scan(Milestone.PICKED_UP, T0),
        delivered,
    )
    ot.run_processes()
    before = heads(ot)
    again = notify(ot, shipment, delivered, scan(Milestone.PICKED_UP, T0))
    assert ot.run_processes() == 0
    assert heads(ot) == before
    assert again.status is ShipmentStatus.DELIVERED
    assert ot.inventory.stock_level("TEA-1").on_hand == 9  # committed once
    assert ot.orders.order(order.order_id).status is OrderStatus.DELIVERED


def test_a_signed_parcelhub_webhook_goes_all_the_way(ot: Ordertrail) -> None:
    order = ready_order(ot, ("TEA-1", 1))
    shipment = ship(ot, order.order_id, (1, 1), carrier="parcelhub")
    gateway = ot.fulfilment.carriers.get("parcelhub")
    body, headers = gateway.signed_body(
        {
            "events": [  # type: ignore[attr-defined]
                {
                    "event_id": "e1",
                    "tracking_number": shipment.tracking_number,
                    "occurred_at": "2026-11-11T10:00:00+08:00",
                    "code": "PICKED_UP",
                },
                {
                    "event_id": "e2",
                    "tracking_number": shipment.tracking_number,
                    "occurred_at": "2026-11-12T10:00:00+08:00",
                    "code": "DELIVERED",
                },
            ]
        }
    )
    gateway.verify(body, headers)
    for notice in gateway.parse(body, headers):
        ot.logistics.record_notice(RecordTrackingNotice(notice), carrier_ctx())
    ot.run_processes()
    assert ot.orders.order(order.order_id).status is OrderStatus.DELIVERED


def test_cash_on_delivery_is_collected_captured_and_reconciled(ot: Ordertrail) -> None:
    order = ready_order(ot, ("TEA-1", 2), method=PaymentMethod.CASH_ON_DELIVERY)
    shipment = ship(ot, order.order_id, (1, 2))
    assert shipment.cod_amount == cny(2000)
    assert shipment.carrier == "parcelhub"  # the only carrier that collects cash
    deliver(ot, shipment, T0, cash=cny(2000))
    paid = ot.orders.order(order.order_id)
    cod = paid.cod_payment()
    assert cod is not None
    assert (cod.state, cod.captured) == (PaymentState.CAPTURED, cny(2000))
    balance = ot.logistics.cod_balance("parcelhub")
    assert (balance.collected, balance.outstanding) == (cny(2000), cny(2000))
    deliver(ot, shipment, T0, cash=cny(2000))  # told twice: counted once
    assert ot.logistics.cod_balance("parcelhub").collected == cny(2000)
    assert ot.orders.order(order.order_id).captured == cny(2000)
    ot.logistics.record_remittance(RecordRemittance("parcelhub", cny(1500), "REM-1", T0), staff())
    with pytest.raises(RemittanceExceedsCollected):
        ot.logistics.record_remittance(
            RecordRemittance("parcelhub", cny(600), "REM-2", T0), staff()
        )
    assert ot.logistics.cod_balance("parcelhub").outstanding == cny(500)


def test_a_second_parcel_never_asks_again_for_cash_the_first_one_collected(
    ot: Ordertrail,
) -> None:
    """Found by the fulfilment state machine: the first parcel carries all the cash due;
    once it is delivered, and before its cash is reported and captured, the next parcel
    was booked to collect the whole amount again."""
    order = ready_order(ot, ("TEA-1", 2), method=PaymentMethod.CASH_ON_DELIVERY)
    first = ship(ot, order.order_id, (1, 1))
    assert first.cod_amount == cny(2000)
    deliver(ot, first, T0)  # delivered; the carrier reports the cash later
    second = ship(ot, order.order_id, (1, 1))
    assert second.cod_amount is None
    deliver(ot, first, T0, cash=cny(2000))
    deliver(ot, second, T0 + timedelta(days=1))
    assert ot.orders.order(order.order_id).captured == cny(2000)


def test_a_refused_cod_parcel_comes_back_and_its_stock_is_sellable_again(
    ot: Ordertrail,
) -> None:
    order = ready_order(ot, ("TEA-1", 2), method=PaymentMethod.CASH_ON_DELIVERY)
    shipment = ship(ot, order.order_id, (1, 2))
    notify(
        ot,
        shipment,
        scan(Milestone.PICKED_UP, T0),
        scan(Milestone.DELIVERY_FAILED, T0 + timedelta(days=1)),
        scan(Milestone.RETURNED_TO_SENDER, T0 + timedelta(days=3)),
    )
    ot.run_processes()
    level = ot.inventory.stock_level("TEA-1")
    assert (level.on_hand, level.reserved, level.available) == (10, 0, 10)
    ended = ot.orders.order(order.order_id)
    assert ended.status is OrderStatus.CANCELLED
    assert ended.captured == cny(0)


def test_a_delivered_order_completes_when_its_after_sales_window_closes(
    ot: Ordertrail, clock: FakeClock
) -> None:
    order = ready_order(ot, ("TEA-1", 1))
    shipment = ship(ot, order.order_id, (1, 1))
    deliver(ot, shipment, clock.now)
    assert ot.orders.order(order.order_id).status is OrderStatus.DELIVERED
    clock.advance(ot.config.after_sales_window + timedelta(days=2))
    ot.run_processes()
    assert ot.orders.order(order.order_id).status is OrderStatus.COMPLETED


def test_a_parcel_planned_by_a_process_that_died_is_booked_by_the_parcel_booker(
    ot: Ordertrail,
) -> None:
    order = ready_order(ot, ("TEA-1", 2))
    booked = ot.fulfilment.book_planned

    def dies(*args: object, **kwargs: object) -> None:
        raise SystemExit("the process died")

    ot.fulfilment.book_planned = dies  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        ship(ot, order.order_id, (1, 2))
    ot.fulfilment.book_planned = booked  # type: ignore[method-assign]
    parcel = next(iter(ot.orders.order(order.order_id).parcels.values()))
    ot.run_processes()
    assert ot.logistics.shipment(parcel.shipment_id).carrier == parcel.carrier


def test_creating_a_shipment_is_idempotent(ot: Ordertrail) -> None:
    order = ready_order(ot, ("TEA-1", 2))
    ctx = staff()
    first = ship(ot, order.order_id, (1, 1), ctx=ctx)
    before = heads(ot)
    again = ship(ot, order.order_id, (1, 1), ctx=ctx)
    assert again == first
    assert heads(ot) == before
    with pytest.raises(CommandIdReused):
        ot.fulfilment.create_shipment(
            CreateShipment(order.order_id, "home", (ParcelQuantity(1, 2),), 800), ctx
        )
