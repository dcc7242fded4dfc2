from __future__ import annotations

from datetime import timedelta

import pytest

from ordertrail.application.ordering import CancelOrder, PlaceOrder
from ordertrail.application.orders import (
    AuthorizePayment,
    CapturePayment,
    ConfirmCashOnDelivery,
    FailPayment,
    RefundPayment,
    ReleaseToFulfilment,
    VoidPayment,
)
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Config, Ordertrail
from ordertrail.domain import OrderStatus, PaymentMethod, PaymentState, PlannedPayment
from ordertrail.domain.errors import (
    CaptureExceedsAmount,
    InvalidOrderTransition,
    InvalidPaymentTransition,
    OrderNotCancellable,
    OrderNotFound,
    RefundExceedsCaptured,
)
from tests.support.builders import cny, customer, heads, home, order_of, provider, stocked_product
from tests.support.clock import FakeClock


def placed(ot: Ordertrail, quantity: int = 2, method: PaymentMethod = PaymentMethod.ALIPAY):
    stocked_product(ot, "TEA-1", 1000, 10)
    return ot.ordering.place_order(
        order_of(("TEA-1", quantity), total=1000 * quantity, method=method), customer()
    ).value


def test_capturing_the_whole_amount_pays_the_order_and_releases_it_to_fulfilment(
    ot: Ordertrail,
) -> None:
    order = placed(ot)
    payment = order.payments[0].payment_id
    after = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(2000), "ali-1"), provider()
    ).value
    assert after.status is OrderStatus.READY_TO_SHIP
    assert after.payments[0].state is PaymentState.CAPTURED


def test_without_auto_release_a_paid_order_waits_for_staff(make_ot) -> None:
    ot = make_ot(Config(auto_release=False))
    order = placed(ot)
    payment = order.payments[0].payment_id
    paid = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(2000), "ali-1"), provider()
    ).value
    assert paid.status is OrderStatus.PAID
    released = ot.orders.release_to_fulfilment(
        ReleaseToFulfilment(order.order_id), customer()
    ).value
    assert released.status is OrderStatus.READY_TO_SHIP


def test_partial_captures_add_up_and_never_exceed_the_planned_amount(ot: Ordertrail) -> None:
    order = placed(ot)
    payment = order.payments[0].payment_id
    part = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(500), "ali-1"), provider()
    ).value
    assert part.status is OrderStatus.AWAITING_PAYMENT
    before = heads(ot)
    with pytest.raises(CaptureExceedsAmount):
        ot.orders.capture_payment(
            CapturePayment(order.order_id, payment, cny(1501), "ali-2"), provider()
        )
    assert heads(ot) == before
    rest = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(1500), "ali-2"), provider()
    ).value
    assert rest.captured == cny(2000)
    assert rest.status is OrderStatus.READY_TO_SHIP


def test_a_duplicate_provider_notification_records_nothing(ot: Ordertrail) -> None:
    order = placed(ot)
    payment = order.payments[0].payment_id
    ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(500), "ali-1"), provider()
    )
    before = heads(ot)
    again = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(500), "ali-1"), provider()
    ).value
    assert again.captured == cny(500)
    assert heads(ot) == before


def test_authorize_then_fail_then_retry_then_void(ot: Ordertrail) -> None:
    order = placed(ot, method=PaymentMethod.CARD)
    payment = order.payments[0].payment_id
    ot.orders.authorize_payment(
        AuthorizePayment(order.order_id, payment, cny(2000), "a-1"), provider()
    )
    failed = ot.orders.fail_payment(
        FailPayment(order.order_id, payment, "declined", "a-2"), provider()
    ).value
    assert failed.payments[0].state is PaymentState.FAILED
    ot.orders.authorize_payment(
        AuthorizePayment(order.order_id, payment, cny(2000), "a-3"), provider()
    )
    voided = ot.orders.void_payment(
        VoidPayment(order.order_id, payment, "fraud check"), customer()
    ).value
    assert voided.payments[0].state is PaymentState.VOIDED
    with pytest.raises(InvalidPaymentTransition):  # only an authorization can be voided
        ot.orders.void_payment(VoidPayment(order.order_id, payment, "again"), customer())
    # The provider's word wins: money it says it took is recorded even after a void.
    captured = ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(2000), "a-3"), provider()
    ).value
    assert captured.payments[0].state is PaymentState.CAPTURED
    assert captured.status is OrderStatus.READY_TO_SHIP


def test_refunds_never_exceed_what_was_captured(ot: Ordertrail) -> None:
    order = placed(ot)
    payment = order.payments[0].payment_id
    ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(2000), "ali-1"), provider()
    )
    ot.orders.refund_payment(
        RefundPayment(order.order_id, payment, cny(1500), "r-1", "dent"), customer()
    )
    before = heads(ot)
    with pytest.raises(RefundExceedsCaptured):
        ot.orders.refund_payment(
            RefundPayment(order.order_id, payment, cny(501), "r-2", "more"), customer()
        )
    assert heads(ot) == before
    full = ot.orders.refund_payment(
        RefundPayment(order.order_id, payment, cny(500), "r-2", "rest"), customer()
    ).value
    assert full.refunded == cny(2000)


def test_cash_on_delivery_orders_are_confirmed_then_ready_to_ship(ot: Ordertrail) -> None:
    order = placed(ot, method=PaymentMethod.CASH_ON_DELIVERY)
    confirmed = ot.orders.confirm_cash_on_delivery(
        ConfirmCashOnDelivery(order.order_id), customer()
    ).value
    assert confirmed.status is OrderStatus.READY_TO_SHIP
    assert confirmed.payments[0].state is PaymentState.PENDING  # cash comes on delivery


def test_a_mixed_plan_needs_the_online_part_captured_before_cod_confirmation(
    ot: Ordertrail,
) -> None:
    stocked_product(ot, "TEA-1", 1000, 10)
    command = PlaceOrder(
        "cust-1",
        (LineRequest("TEA-1", 3, "home"),),
        (home(),),
        (
            PlannedPayment(PaymentMethod.ALIPAY, cny(1000)),
            PlannedPayment(PaymentMethod.CASH_ON_DELIVERY, cny(2000)),
        ),
    )
    order = ot.ordering.place_order(command, customer()).value
    with pytest.raises(InvalidOrderTransition):
        ot.orders.confirm_cash_on_delivery(ConfirmCashOnDelivery(order.order_id), customer())
    deposit = order.payments[0].payment_id
    captured = ot.orders.capture_payment(
        CapturePayment(order.order_id, deposit, cny(1000), "ali-1"), provider()
    ).value
    assert captured.status is OrderStatus.AWAITING_PAYMENT
    confirmed = ot.orders.confirm_cash_on_delivery(
        ConfirmCashOnDelivery(order.order_id), customer()
    ).value
    assert confirmed.status is OrderStatus.READY_TO_SHIP


def test_cancelling_releases_the_stock_and_voids_authorizations(ot: Ordertrail) -> None:
    order = placed(ot, quantity=4, method=PaymentMethod.CARD)
    payment = order.payments[0].payment_id
    ot.orders.authorize_payment(
        AuthorizePayment(order.order_id, payment, cny(4000), "a-1"), provider()
    )
    cancelled = ot.ordering.cancel_order(
        CancelOrder(order.order_id, "changed my mind"), customer()
    ).value
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.payments[0].state is PaymentState.VOIDED
    assert ot.inventory.stock_level("TEA-1").available == 10
    with pytest.raises(OrderNotCancellable):
        ot.ordering.cancel_order(CancelOrder(order.order_id, "again"), customer())


def test_a_cancelled_paid_order_owes_its_captured_money_back(ot: Ordertrail) -> None:
    order = placed(ot)
    payment = order.payments[0].payment_id
    ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(2000), "ali-1"), provider()
    )
    ot.ordering.cancel_order(CancelOrder(order.order_id, "out of stock in reality"), customer())
    assert ot.orders.order(order.order_id).refund_due == cny(2000)
    ot.orders.refund_payment(
        RefundPayment(order.order_id, payment, cny(2000), "r-1", "cancelled"), customer()
    )
    assert ot.orders.order(order.order_id).refund_due == cny(0)


def test_unpaid_orders_expire_after_the_payment_window_and_release_stock(
    ot: Ordertrail, clock: FakeClock
) -> None:
    unpaid = placed(ot, quantity=3)
    stocked_product(ot, "CUP-1", 500, 5)
    paid = ot.ordering.place_order(order_of(("CUP-1", 1), total=500), customer()).value
    ot.orders.capture_payment(
        CapturePayment(paid.order_id, paid.payments[0].payment_id, cny(500), "ali-9"), provider()
    )
    ot.run_processes()
    assert ot.orders.order(unpaid.order_id).status is OrderStatus.AWAITING_PAYMENT
    clock.advance(ot.config.payment_window + timedelta(seconds=1))
    ot.run_processes()
    assert ot.orders.order(unpaid.order_id).status is OrderStatus.EXPIRED
    assert ot.orders.order(paid.order_id).status is OrderStatus.READY_TO_SHIP
    assert ot.inventory.stock_level("TEA-1").reserved == 0
    assert ot.inventory.stock_level("CUP-1").reserved == 1
    before = heads(ot)
    assert ot.run_processes() == 0
    assert heads(ot) == before


def test_unknown_orders_are_not_found(ot: Ordertrail) -> None:
    from uuid import uuid4

    with pytest.raises(OrderNotFound):
        ot.ordering.cancel_order(CancelOrder(uuid4(), "x"), customer())


def test_a_command_sent_against_a_stale_version_is_refused(ot: Ordertrail) -> None:
    from ordertrail.application.context import CommandContext
    from ordertrail.application.errors import VersionMismatch

    order = placed(ot)
    payment = order.payments[0].payment_id
    stale = order.version
    ot.orders.capture_payment(
        CapturePayment(order.order_id, payment, cny(100), "ali-1"), provider()
    )
    before = heads(ot)
    ctx = CommandContext(actor=customer().actor, expected_version=stale)
    with pytest.raises(VersionMismatch):
        ot.ordering.cancel_order(CancelOrder(order.order_id, "changed mind"), ctx)
    assert heads(ot) == before
    fresh = ot.orders.order(order.order_id).version
    ot.ordering.cancel_order(
        CancelOrder(order.order_id, "changed mind"),
        CommandContext(actor=customer().actor, expected_version=fresh),
    )


def test_a_provider_amount_that_does_not_match_is_recorded_not_captured(ot: Ordertrail) -> None:
    from ordertrail.application.orders import RecordPaymentDiscrepancy

    order = placed(ot)
    payment = order.payments[0].payment_id
    after = ot.orders.record_payment_discrepancy(
        RecordPaymentDiscrepancy(order.order_id, payment, cny(1), "ali-9"), provider()
    ).value
    assert after.captured == cny(0)
    events = list(ot.orders.events.get(order.order_id))
    recorded = [e for e in events if type(e).__name__ == "PaymentDiscrepancyRecorded"]
    assert [(e.reported, e.expected) for e in recorded] == [(cny(1), cny(2000))]
