"""The order-tracking read model: one order as the customer and the staff see it, from the
Orders, Logistics and AfterSales logs, on SQLite and PostgreSQL; built incrementally, in
any interleaving of the three logs, it equals a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.orders import RecordPaymentDiscrepancy
from ordertrail.application.receipts import CommandReceipt
from ordertrail.application.system import Ordertrail
from ordertrail.domain import AbandonedPlacement, Order, OrderStatus, PaymentMethod, PaymentState
from ordertrail.domain.aftersales import AfterSalesCase, CaseKind, CaseStatus, ReturnLedger
from ordertrail.domain.cod import CarrierAccount
from ordertrail.domain.fulfilment import ParcelState
from ordertrail.domain.shipments import Milestone, Scan, Shipment, ShipmentStatus, TrackingNumber
from ordertrail.projections.order_tracking import (
    OrderTracking,
    OrderTrackingQueries,
    OrderTrackingView,
    money_text,
)
from ordertrail.projections.readmodel import Position
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.orders_support import (
    HOME,
    OFFICE,
    OPEN_SOURCES,
    STEP,
    T0,
    VARIANTS,
    Shop,
    empty_read_store,
    gates_of,
    run_step,
    scan,
    worker_for,
)
from tests.projections.support import empty_store_like, opened, table_rows
from tests.support.builders import cny, provider, staff
from tests.support.clock import FakeClock

TABLES = OrderTracking().tables()


@dataclass
class Tracking:
    store: ReadStore
    worker: ProjectionWorker

    def view(self, order_id: UUID) -> OrderTrackingView:
        self.worker.run_until_idle()
        found = OrderTrackingQueries(self.store).get(order_id)
        assert found is not None
        return found


@pytest.fixture
def shop(ot: Ordertrail, clock: FakeClock) -> Shop:
    return Shop(ot, clock).stock()


@pytest.fixture
def tracking(ot: Ordertrail, store_settings: Settings) -> Iterator[Tracking]:
    with opened(store_settings) as store:
        yield Tracking(store, worker_for(OrderTracking(), ot, store))


def kinds(view: OrderTrackingView) -> list[str]:
    return [entry.kind for entry in view.timeline]


def test_a_placed_order_shows_its_lines_groups_amounts_and_payments(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(3, "li-lei")  # two addresses, alipay + cash on delivery, fee, coupon
    view = tracking.view(order_id)
    assert (view.order_id, view.customer_id, view.status) == (
        order_id,
        "li-lei",
        OrderStatus.AWAITING_PAYMENT,
    )
    assert [(ln.line_no, ln.sku, ln.title, ln.quantity, ln.unit_price, ln.line_total,
             ln.delivery_group, ln.warehouse) for ln in view.lines] == [
        (1, "TEA-1", "Oolong tea, 250 g", 2, 6800, 13600, "home", "main"),
        (2, "CUP-1", "Celadon cup", 1, 2500, 2500, "office", "main"),
    ]  # fmt: skip
    assert [(g.group_id, g.address) for g in view.delivery_groups] == [
        ("home", HOME.address),
        ("office", OFFICE.address),
    ]
    amounts = view.amounts
    assert (amounts.currency, amounts.subtotal, amounts.shipping_fee, amounts.discounts,
            amounts.discount_total, amounts.total, amounts.captured, amounts.refunded) == (
        "CNY", 16100, 1000, (("WELCOME", 500),), 500, 16600, 0, 0,
    )  # fmt: skip
    alipay, cod = view.payments
    assert (alipay.method, alipay.amount, alipay.state) == (
        PaymentMethod.ALIPAY,
        16600 - 16600 // 3,
        PaymentState.PENDING,
    )
    assert (cod.method, cod.amount, cod.state) == (
        PaymentMethod.CASH_ON_DELIVERY,
        16600 // 3,
        PaymentState.PENDING,
    )
    assert view.placed_at == view.timeline[0].occurred_at
    assert view.payment_due_at == view.placed_at + timedelta(minutes=30)
    (placed,) = view.timeline
    assert (placed.source, placed.kind, placed.subject, placed.actor) == (
        "Orders",
        "Placed",
        "order",
        "customer:li-lei",
    )
    assert placed.summary == (
        "Order placed: 3 items, total 166.00 CNY (alipay 110.67 CNY, cash on delivery 55.33 CNY)"
    )

    shop.pay(order_id, mode=1)  # the provider holds the money first
    view = tracking.view(order_id)
    assert (view.payments[0].state, view.payments[0].authorized) == (
        PaymentState.AUTHORIZED,
        alipay.amount,
    )
    shop.pay(order_id)
    shop.confirm_cod(order_id)
    view = tracking.view(order_id)
    assert view.status is OrderStatus.READY_TO_SHIP
    assert (view.payments[0].state, view.payments[0].captured) == (
        PaymentState.CAPTURED,
        alipay.amount,
    )
    assert view.payments[1].state is PaymentState.PENDING  # paid on delivery
    assert view.amounts.captured == alipay.amount
    assert kinds(view) == [
        "Placed",
        "PaymentAuthorized",
        "PaymentCaptured",
        "CashOnDeliveryConfirmed",
        "ReleasedToFulfilment",
    ]
    assert view.timeline[3].summary == "Cash on delivery confirmed: 55.33 CNY due on delivery"
    assert view.updated_at == view.timeline[-1].occurred_at


def test_a_failed_payment_and_a_cancelled_order(shop: Shop, tracking: Tracking) -> None:
    order_id = shop.place(0)
    shop.pay(order_id, mode=2)
    view = tracking.view(order_id)
    assert view.payments[0].state is PaymentState.FAILED
    assert view.timeline[-1].summary == "Alipay payment failed: card declined"
    shop.pay(order_id, mode=1)
    shop.cancel(order_id, "found it cheaper")
    view = tracking.view(order_id)
    assert view.status is OrderStatus.CANCELLED
    assert view.payments[0].state is PaymentState.VOIDED
    assert kinds(view)[-2:] == ["Cancelled", "PaymentVoided"]
    cancelled, voided = view.timeline[-2:]
    assert (cancelled.actor, cancelled.summary) == (
        "customer:li-lei",
        "Order cancelled: found it cheaper",
    )
    assert voided.summary == "Alipay authorization voided: order cancelled"


def test_a_payment_the_provider_misreports_is_shown_for_staff_to_check(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(0)
    view = tracking.view(order_id)
    (payment,) = view.payments
    shop.ot.orders.record_payment_discrepancy(
        RecordPaymentDiscrepancy(order_id, payment.payment_id, cny(100), "ALI-77"), provider()
    )
    view = tracking.view(order_id)
    assert view.payments == (payment,)  # nothing was captured
    entry = view.timeline[-1]
    assert (entry.kind, entry.actor, entry.summary) == (
        "PaymentDiscrepancyRecorded",
        "provider:alipay",
        "Alipay provider reported 1.00 CNY where 136.00 CNY was due: not captured, to be checked",
    )


def test_an_unpaid_order_expires(shop: Shop, tracking: Tracking, clock: FakeClock) -> None:
    order_id = shop.place(1)
    clock.advance(timedelta(hours=1))
    shop.ot.run_processes()
    view = tracking.view(order_id)
    assert view.status is OrderStatus.EXPIRED
    expired = view.timeline[-1]
    assert (expired.kind, expired.actor) == ("Expired", "system:order-expiry")
    assert expired.summary.startswith("Order expired: not paid by 2026-11-11 00:30")


def test_partial_shipments_with_late_and_repeated_carrier_scans(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(1)  # CUP-1 x2, TEA-1 x1, card
    shop.pay(order_id)
    first = shop.ship(order_id, everything=False)  # one cup
    assert first is not None
    view = tracking.view(order_id)
    (parcel,) = view.parcels
    assert (parcel.shipment_id, parcel.state, parcel.status) == (
        first.shipment_id,
        ParcelState.PLANNED,
        ShipmentStatus.AWAITING_PICKUP,
    )
    assert [(p.line_no, p.sku, p.title, p.quantity) for p in parcel.lines] == [
        (1, "CUP-1", "Celadon cup", 1)
    ]
    assert (parcel.carrier, parcel.tracking_number) == (first.carrier, first.tracking_number)

    delivered = scan(Milestone.DELIVERED, T0 + timedelta(days=1))
    shop.notify(first, delivered)  # the delivery scan arrives first
    shop.notify(
        first,
        scan(Milestone.OUT_FOR_DELIVERY, T0 + timedelta(hours=20)),
        scan(Milestone.PICKED_UP, T0),
        delivered,  # told twice
    )
    shop.ot.run_processes()
    view = tracking.view(order_id)
    assert view.status is OrderStatus.PARTIALLY_SHIPPED
    (parcel,) = view.parcels
    assert (parcel.state, parcel.status) == (ParcelState.DELIVERED, ShipmentStatus.DELIVERED)
    assert [(s.milestone, s.occurred_at, s.status_after) for s in parcel.scans] == [
        (Milestone.PICKED_UP, T0, ShipmentStatus.DELIVERED),
        (Milestone.OUT_FOR_DELIVERY, T0 + timedelta(hours=20), ShipmentStatus.DELIVERED),
        (Milestone.DELIVERED, T0 + timedelta(days=1), ShipmentStatus.DELIVERED),
    ]  # in the carrier's order, each once; late scans never moved the status back
    assert parcel.scans[0].carrier_event_id == f"picked_up-{T0.isoformat()}"
    # the carrier had it when the first scan we heard of (the delivery) happened
    assert parcel.picked_up_at == T0 + timedelta(days=1)
    assert parcel.delivered_at == T0 + timedelta(days=1)
    assert [(ln.shipped, ln.delivered) for ln in view.lines] == [(1, 1), (0, 0)]
    scans = [e for e in view.timeline if e.kind == "ScanRecorded"]
    assert [e.scan_occurred_at for e in scans] == [
        T0 + timedelta(days=1),
        T0 + timedelta(hours=20),
        T0,
    ]  # the timeline keeps when we heard of them; each also says when the carrier saw it
    assert scans[0].summary == "Carrier scan: Delivered at Shanghai hub"

    second = shop.ship(order_id)  # the rest
    assert second is not None
    shop.notify(second, scan(Milestone.PICKED_UP, T0 + timedelta(days=2)))
    shop.ot.run_processes()
    assert tracking.view(order_id).status is OrderStatus.SHIPPED
    shop.deliver(second, T0 + timedelta(days=2))
    view = tracking.view(order_id)
    assert view.status is OrderStatus.DELIVERED
    assert [p.shipment_id for p in view.parcels] == [first.shipment_id, second.shipment_id]
    assert [p.lines[0].quantity for p in view.parcels] == [1, 1]
    assert [(ln.shipped, ln.delivered) for ln in view.lines] == [(2, 2), (1, 1)]
    assert view.timeline[-1].summary == "Parcel delivered (the whole order is delivered)"


def test_cash_on_delivery_is_collected_by_the_courier_and_captured(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(2)  # cash on delivery
    shop.confirm_cod(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.deliver(parcel)
    view = tracking.view(order_id)
    (cod,) = view.payments
    assert (cod.method, cod.state, cod.captured) == (
        PaymentMethod.CASH_ON_DELIVERY,
        PaymentState.CAPTURED,
        view.amounts.total,
    )
    assert view.amounts.captured == view.amounts.total == 18800
    (shown,) = view.parcels
    assert (
        shown.cod_amount,
        shown.cash_collected,
        shown.cash_collected_at,
        shown.cash_reference,
    ) == (18800, 18800, T0 + timedelta(days=1), f"R-{parcel.tracking_number}")
    collected = kinds(view).index("CashCollected")
    captured = kinds(view).index("PaymentCaptured")
    assert collected < captured
    assert view.timeline[collected].summary == "Courier collected 188.00 CNY in cash"
    assert view.timeline[captured].actor == "system:cod-capture"


def test_a_refused_cash_on_delivery_parcel_comes_back_and_the_order_is_cancelled(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(2)
    shop.confirm_cod(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.notify(
        parcel,
        scan(Milestone.PICKED_UP, T0),
        scan(Milestone.DELIVERY_FAILED, T0 + timedelta(days=1)),
    )
    shop.notify(
        parcel,
        Scan(Milestone.RETURNED_TO_SENDER, T0 + timedelta(days=3), "Shanghai hub", "refused"),
    )
    shop.ot.run_processes()
    view = tracking.view(order_id)
    assert view.status is OrderStatus.CANCELLED
    (shown,) = view.parcels
    assert (shown.state, shown.status, shown.returned_at, shown.problem) == (
        ParcelState.RETURNED,
        ShipmentStatus.RETURNED_TO_SENDER,
        T0 + timedelta(days=3),
        "refused",
    )
    assert shown.cash_collected is None
    assert kinds(view)[-3:] == ["ShipmentDispatched", "ShipmentReturned", "Cancelled"]
    assert view.timeline[-1].actor == "system:parcel-tracker"


def test_a_return_is_received_inspected_refunded_and_closed(shop: Shop, tracking: Tracking) -> None:
    order_id = shop.place(1)  # CUP-1 x2 at 25.00, TEA-1 x1
    shop.pay(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.deliver(parcel)
    case_id = shop.open_case(order_id, CaseKind.RETURN, quantity=2)
    view = tracking.view(order_id)
    (case,) = view.cases
    assert (case.case_id, case.kind, case.status, case.refunded) == (
        case_id,
        CaseKind.RETURN,
        CaseStatus.REQUESTED,
        0,
    )
    assert case.description == "the lid is chipped"
    for step in (0, 2, 3):  # approve, receive, inspect: one accepted, one rejected
        shop.case_step(case_id, step)
    shop.ot.run_processes()  # the accepted cup is refunded
    shop.case_step(case_id, 5)
    view = tracking.view(order_id)
    (case,) = view.cases
    assert (case.status, case.refunded, case.resolution) == (CaseStatus.CLOSED, 2500, "settled")
    assert [(ln.line_no, ln.sku, ln.quantity, ln.unit_price, ln.accepted, ln.rejected)
            for ln in case.lines] == [(1, "CUP-1", 2, 2500, 1, 1)]  # fmt: skip
    (card,) = view.payments
    assert (card.captured, card.refunded) == (view.amounts.total, 2500)
    assert view.amounts.refunded == 2500
    assert view.status is OrderStatus.DELIVERED
    after_sales = [(e.kind, e.summary) for e in view.timeline if e.source == "AfterSales"]
    assert after_sales == [
        ("Requested", "Return of 2 items requested (quality problem)"),
        ("Approved", "Case approved: send it back"),
        ("ReturnReceived", "Returned goods received (tracking number SF-RET-1)"),
        ("Inspected", "Returned goods inspected: 1 accepted, 1 rejected"),
        ("RefundIssued", "Refund of 25.00 CNY issued for the case"),
        ("Closed", "Case closed: settled"),
    ]
    assert all(e.case_id == case_id for e in view.timeline if e.source == "AfterSales")
    refunded = next(e for e in view.timeline if e.kind == "PaymentRefunded")
    assert refunded.summary == f"Refunded 25.00 CNY to Card: after-sales case {case_id}"


def test_an_exchange_ships_a_replacement_parcel(shop: Shop, tracking: Tracking) -> None:
    order_id = shop.place(0)
    shop.pay(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.deliver(parcel)
    case_id = shop.open_case(order_id, CaseKind.EXCHANGE)
    shop.case_step(case_id, 0)
    shop.ot.run_processes()  # the replacement is booked from held stock
    view = tracking.view(order_id)
    (case,) = view.cases
    original, replacement = view.parcels
    assert original.replacement_for_case is None
    assert case.replacement_shipment_id == replacement.shipment_id
    assert (replacement.replacement_for_case, replacement.state, replacement.status) == (
        case_id,
        None,  # the order never planned it
        ShipmentStatus.AWAITING_PICKUP,
    )
    assert [(p.sku, p.title, p.quantity) for p in replacement.lines] == [
        ("TEA-1", "Oolong tea, 250 g", 1)
    ]
    booked = [e for e in view.timeline if e.kind == "Booked"]
    assert booked[-1].summary.startswith("Replacement parcel booked with")


def test_the_timeline_merges_every_context_in_time_order(shop: Shop, tracking: Tracking) -> None:
    order_id = shop.place(0)
    shop.pay(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.deliver(parcel)
    case_id = shop.open_case(order_id, CaseKind.REFUND_ONLY)
    shop.case_step(case_id, 0)
    shop.ot.run_processes()  # an approved refund-only case is refunded
    view = tracking.view(order_id)
    assert {e.source for e in view.timeline} == {"Orders", "Logistics", "AfterSales"}
    keys = [(e.occurred_at, e.source, e.position) for e in view.timeline]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    sources = [e.source for e in view.timeline]
    assert sources.index("Logistics") < sources.index("AfterSales")  # interleaved by time
    assert [e.source for e in view.timeline if e.kind == "ShipmentDelivered"] == ["Orders"]
    assert {e.subject for e in view.timeline} == {"order", "shipment", "case"}
    assert all(e.actor for e in view.timeline)


def test_shipments_and_cases_projected_before_their_order_wait_for_it(
    shop: Shop, store_settings: Settings
) -> None:
    order_id = shop.place(0)
    shop.pay(order_id)
    parcel = shop.ship(order_id)
    assert parcel is not None
    shop.deliver(parcel)
    shop.open_case(order_id, CaseKind.RETURN)
    ot = shop.ot
    gates = gates_of(ot)
    orders = gates[0]
    with opened(store_settings) as store:
        worker = worker_for(OrderTracking(), ot, store, gates, batch_size=2)
        orders.open = False
        worker.run_until_idle()  # Logistics and AfterSales run ahead
        queries = OrderTrackingQueries(store)
        assert queries.get(order_id) is None  # not placed, as far as this model knows
        orders.open = True
        worker.run_until_idle()
        view = queries.get(order_id)
        assert view is not None
        assert len(view.parcels) == 1
        assert len(view.cases) == 1
        with empty_read_store(store_settings) as other:
            worker_for(OrderTracking(), ot, other).run_until_idle()
            assert table_rows(store, TABLES) == table_rows(other, TABLES)
            assert OrderTrackingQueries(other).get(order_id) == view


def test_unknown_and_malformed_order_ids_find_nothing(tracking: Tracking) -> None:
    queries = OrderTrackingQueries(tracking.store)
    assert queries.get(uuid4()) is None
    assert queries.get("not-an-id") is None
    assert queries.get(str(uuid4())) is None


def test_only_order_shipment_and_case_events_are_decoded() -> None:
    model = OrderTracking()
    wanted: list[tuple[str, Any, bool]] = [
        ("Orders", AbandonedPlacement.Recorded, False),
        ("Orders", CommandReceipt.Recorded, False),
        ("Logistics", TrackingNumber.Assigned, False),
        ("Logistics", CarrierAccount.Opened, False),
        ("AfterSales", ReturnLedger.Claimed, False),
        ("Logistics", CommandReceipt.Recorded, False),
        ("Orders", Order.Paid, True),
        ("Logistics", Shipment.ScanRecorded, True),
        ("AfterSales", AfterSalesCase.ArticleLinked, True),
    ]
    for source, event, expected in wanted:
        assert model.wants(source, event.TOPIC) is expected, (source, event)


class GiftWrapRequested(Order.Event):
    """An order event this model has no handler of its own for (as one added later)."""

    TOPIC = "tests:Order.GiftWrapRequested"
    note: str


def test_an_order_event_without_a_handler_of_its_own_is_still_shown(
    shop: Shop, tracking: Tracking
) -> None:
    order_id = shop.place(0)
    before = tracking.view(order_id)
    make: Any = GiftWrapRequested  # its fields are made at runtime
    event = make(
        originator_id=order_id,
        originator_version=2,
        timestamp=before.placed_at + timedelta(minutes=1),
        meta=staff().meta,
        note="red paper",
    )
    with tracking.store.transaction() as tx:
        OrderTracking().handle(tx, event, Position("Orders", 10_000))
    view = tracking.view(order_id)
    entry = view.timeline[-1]
    assert (entry.kind, entry.summary, entry.actor, entry.position) == (
        "GiftWrapRequested",
        "Gift wrap requested",
        "staff:alice",
        10_000,
    )
    assert view.updated_at == event.timestamp
    assert view.status is before.status


def test_money_is_shown_in_major_units() -> None:
    assert money_text(13600, "CNY") == "136.00 CNY"
    assert money_text(5, "CNY") == "0.05 CNY"
    assert money_text(-250, "USD") == "-2.50 USD"
    assert money_text(1200, "JPY") == "1200 JPY"
    assert money_text(1234, "KWD") == "1.234 KWD"


# --- incremental equals rebuilt --------------------------------------------------------------


def observe(store: ReadStore, orders: list[UUID]) -> list[OrderTrackingView | None]:
    queries = OrderTrackingQueries(store)
    return [queries.get(order_id) for order_id in orders]


def test_an_incremental_build_equals_a_rebuild(store_settings: Settings) -> None:
    """Random histories through the real Ordertrail; after each step the worker applies a
    small batch from the logs that are open then, so any log runs ahead of the others.
    Each example starts from empty stores."""

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        first=st.tuples(st.integers(0, len(VARIANTS) - 1), st.integers(0, len(VARIANTS) - 1)),
        steps=st.lists(st.tuples(STEP, OPEN_SOURCES), min_size=8, max_size=28),
        batch_size=st.integers(1, 3),
    )
    def check(
        first: tuple[int, int],
        steps: list[tuple[tuple[Any, ...], tuple[bool, bool, bool]]],
        batch_size: int,
    ) -> None:
        clock = FakeClock()
        with (
            empty_store_like(store_settings) as fresh,
            open_ordertrail(fresh, clock=clock) as ot,
            opened(fresh) as store,
        ):
            shop = Shop(ot, clock).stock()
            for variant in first:
                shop.place(variant)
            gates = gates_of(ot)
            worker = worker_for(OrderTracking(), ot, store, gates, batch_size)
            for step, open_now in steps:
                run_step(shop, step)
                for gate, is_open in zip(gates, open_now, strict=True):
                    gate.open = is_open
                worker.run_once()
            for gate in gates:
                gate.open = True
            worker.run_until_idle()
            incremental = (table_rows(store, TABLES), observe(store, shop.orders))
            with empty_read_store(fresh) as other:
                worker_for(OrderTracking(), ot, other).run_until_idle()
                rebuilt = (table_rows(other, TABLES), observe(other, shop.orders))
            assert incremental == rebuilt
            assert all(view is not None for view in incremental[1])

    check()
