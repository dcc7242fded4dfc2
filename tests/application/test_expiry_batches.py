"""Order expiry and stock release a page at a time (``ordertrail.application.expiry``),
on SQLite and PostgreSQL: the same outcome as one order at a time, in one transaction
per page, safe against a concurrent payment or cancellation, against a crash of the
releaser, and against placements writing the same stock records."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from ordertrail.application.context import CommandContext
from ordertrail.application.expiry import expire_orders
from ordertrail.application.followers import FollowerThreads, event_ref
from ordertrail.application.ordering import CancelOrder, ExpireOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.application.processes import OrderExpiry, PlacementReaper, StockReleaser
from ordertrail.application.system import Ordertrail
from ordertrail.domain import OrderStatus, ids
from ordertrail.domain.inventory import ReleaseReason
from ordertrail.domain.orders import Order
from tests.support.builders import customer, heads, order_of, provider, staff, stocked_product
from tests.support.clock import FakeClock

PRICES = {"HOT-1": 100, "TEA-1": 30}


def place(ot: Ordertrail, n: int, *, hot_every: int = 2) -> list[UUID]:
    """``n`` unpaid orders: every ``hot_every``-th on HOT-1 (2 units), the rest TEA-1."""
    placed = []
    for i in range(n):
        sku = "HOT-1" if i % hot_every == 0 else "TEA-1"
        qty = 2 if sku == "HOT-1" else 1
        order = order_of((sku, qty), total=PRICES[sku] * qty, customer_id=f"c-{i}")
        placed.append(ot.ordering.place_order(order, customer(f"c-{i}")).value.order_id)
    return placed


@pytest.fixture
def shop(ot: Ordertrail) -> Ordertrail:
    stocked_product(ot, "HOT-1", PRICES["HOT-1"], 100)
    stocked_product(ot, "TEA-1", PRICES["TEA-1"], 100)
    ot.run_processes()
    return ot


def follower(ot: Ordertrail, kind: type[Any]) -> Any:
    return next(f for f in ot.followers if isinstance(f, kind))


def counting_saves(ot: Ordertrail) -> dict[str, int]:
    """Counts the transactions of the orders and inventory applications from now on."""
    counts = {"orders": 0, "inventory": 0}
    for name, app in (("orders", ot.orders), ("inventory", ot.inventory)):
        original = app.save_all

        def counted(items: Any, _original: Callable[..., Any] = original, _n: str = name) -> Any:
            counts[_n] += 1
            return _original(items)

        app.save_all = counted  # type: ignore[method-assign]
    return counts


def test_a_page_of_due_orders_expires_in_one_transaction_per_context(
    shop: Ordertrail, clock: FakeClock
) -> None:
    ids_ = place(shop, 12)
    paid = ids_[5]
    order = shop.orders.order(paid)
    payment = next(iter(order.payments.values()))
    shop.orders.capture_payment(
        CapturePayment(paid, payment.payment_id, payment.amount, "ali-paid"), provider()
    )
    clock.advance(shop.config.payment_window + timedelta(seconds=1))
    saves = counting_saves(shop)
    assert follower(shop, OrderExpiry).run_once() == 12
    assert saves == {"orders": 1, "inventory": 0}
    for order_id in ids_:
        status = shop.orders.order(order_id).status
        assert status is (OrderStatus.READY_TO_SHIP if order_id == paid else OrderStatus.EXPIRED)
    assert shop.inventory.stock_level("HOT-1").reserved == 12  # until the releaser runs
    assert follower(shop, StockReleaser).run_once() == 11
    assert saves == {"orders": 1, "inventory": 1}
    assert shop.inventory.stock_level("HOT-1").reserved == 0
    assert shop.inventory.stock_level("TEA-1").reserved == 1  # the paid order's
    before = heads(shop)
    shop.run_processes()  # the other process managers see the expiries: nothing to write
    assert heads(shop) == before


def test_expiry_by_page_records_the_receipt_a_single_expiry_would(
    shop: Ordertrail, clock: FakeClock
) -> None:
    [order_id] = place(shop, 1)
    clock.advance(shop.config.payment_window + timedelta(seconds=1))
    follower(shop, OrderExpiry).run_once()
    shop.run_processes()  # and the releaser gives the stock back
    [placed] = shop.orders.repository.event_store.get(order_id, lte=1)
    assert isinstance(placed, Order.Placed)
    ctx = CommandContext(actor=customer().actor, command_id=event_ref(placed))
    before = heads(shop)
    again = shop.ordering.expire_order(ExpireOrder(order_id), ctx)
    assert again.replayed
    assert again.value.status is OrderStatus.EXPIRED
    assert heads(shop) == before


def test_only_the_due_prefix_expires(shop: Ordertrail, clock: FakeClock) -> None:
    early = place(shop, 3)
    clock.advance(timedelta(minutes=10))
    late = place(shop, 3)
    clock.advance(shop.config.payment_window - timedelta(minutes=5))
    expiry = follower(shop, OrderExpiry)
    assert expiry.run_once() == 3
    assert expiry.run_once() == 0  # the next ones are not due: the position waits there
    assert {shop.orders.order(i).status for i in early} == {OrderStatus.EXPIRED}
    assert {shop.orders.order(i).status for i in late} == {OrderStatus.AWAITING_PAYMENT}
    clock.advance(timedelta(minutes=6))
    assert expiry.run_once() == 3
    assert {shop.orders.order(i).status for i in late} == {OrderStatus.EXPIRED}


def test_an_order_cancelled_during_the_page_is_not_expired(
    shop: Ordertrail, clock: FakeClock
) -> None:
    ids_ = place(shop, 6)
    clock.advance(shop.config.payment_window + timedelta(seconds=1))
    save_all = shop.orders.save_all
    cancelled = ids_[3]

    def cancel_first(items: Any) -> Any:
        # Someone cancels one of the page's orders just before the page is saved.
        shop.orders.save_all = save_all  # type: ignore[method-assign]
        shop.ordering.cancel_order(CancelOrder(cancelled, "changed mind"), customer("c-3"))
        return save_all(items)

    shop.orders.save_all = cancel_first  # type: ignore[method-assign]
    due = [(i, CommandContext(actor=customer().actor)) for i in ids_]
    assert expire_orders(shop.ordering, due) == 5
    shop.run_processes()
    statuses = {i: shop.orders.order(i).status for i in ids_}
    assert statuses.pop(cancelled) is OrderStatus.CANCELLED
    assert set(statuses.values()) == {OrderStatus.EXPIRED}
    assert shop.inventory.stock_level("HOT-1").reserved == 0
    assert shop.inventory.stock_level("TEA-1").reserved == 0


class Crash(Exception):
    pass


def test_a_releaser_that_crashes_releases_the_whole_page_when_run_again(
    shop: Ordertrail, clock: FakeClock
) -> None:
    ids_ = place(shop, 8)
    clock.advance(shop.config.payment_window + timedelta(seconds=1))
    assert follower(shop, OrderExpiry).run_once() == 8
    release = shop.inventory.release_for_orders

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash("process died before the inventory transaction")

    shop.inventory.release_for_orders = crash  # type: ignore[method-assign]
    releaser = follower(shop, StockReleaser)
    with pytest.raises(Crash):
        releaser.run_once()
    assert {shop.orders.order(i).status for i in ids_} == {OrderStatus.EXPIRED}
    assert shop.inventory.stock_level("HOT-1").reserved == 8  # still held
    shop.inventory.release_for_orders = release  # type: ignore[method-assign]
    assert releaser.run_once() == 8  # the page again
    assert shop.inventory.stock_level("HOT-1").reserved == 0
    assert shop.inventory.stock_level("TEA-1").reserved == 0
    assert shop.inventory.stock_level("HOT-1").available == 100
    before = heads(shop)
    shop.run_processes()  # the other process managers see the expiries: nothing to write
    assert heads(shop) == before


def test_a_release_that_meets_a_concurrent_writer_saves_the_untouched_records_together(
    shop: Ordertrail,
) -> None:
    for n in range(8):
        stocked_product(shop, f"TAIL-{n}", 10, 10)
    placed = []
    for n in range(8):
        order = order_of((f"TAIL-{n}", 2), total=20, customer_id=f"t-{n}")
        placed.append(shop.ordering.place_order(order, customer(f"t-{n}")).value.order_id)
    save_all = shop.inventory.save_all
    outcomes: list[str] = []

    def placement_writer_first(items: Any) -> Any:
        if not outcomes:  # a placement lands on TAIL-5 between the read and the save
            outcomes.append("other writer")
            shop.ordering.place_order(
                order_of(("TAIL-5", 1), total=10, customer_id="x"), customer("x")
            )
        try:
            position = save_all(items)
        except Exception:
            outcomes.append(f"conflict:{len(items)}")
            raise
        outcomes.append(f"saved:{len(items)}")
        return position

    shop.inventory.save_all = placement_writer_first  # type: ignore[method-assign]
    holds = {order_id: [] for order_id in placed}
    for n, order_id in enumerate(placed):
        holds[order_id] = [ids.inventory_item_id(f"TAIL-{n}", "main")]
    shop.inventory.release_for_orders(holds, ReleaseReason.ORDER_EXPIRED, lambda _: staff().meta)
    shop.inventory.save_all = save_all  # type: ignore[method-assign]
    # The placement's own save, the release's failed one, then each half in one go.
    assert outcomes == ["other writer", "saved:1", "conflict:8", "saved:4", "saved:4"]
    for n in range(8):
        assert shop.inventory.stock_level(f"TAIL-{n}").reserved == (1 if n == 5 else 0)


def test_a_slow_process_manager_does_not_hold_up_the_expiry(
    shop: Ordertrail, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each process manager has its own thread: while the placement reaper is stuck in
    a long page, unpaid orders still expire and give their stock back."""
    [order_id] = place(shop, 1)
    clock.advance(shop.config.payment_window + timedelta(seconds=1))
    reaper = next(f for f in shop.followers if isinstance(f, PlacementReaper))
    stuck, release = threading.Event(), threading.Event()

    def long_page() -> int:
        stuck.set()
        release.wait(30)
        return 0

    monkeypatch.setattr(reaper, "run_once", long_page)
    threads = FollowerThreads(shop.followers, interval=0.05)
    threads.start()
    try:
        assert stuck.wait(10)
        deadline = time.monotonic() + 20
        while shop.inventory.stock_level("HOT-1").reserved:
            assert time.monotonic() < deadline, "the expiry waited for the reaper"
            time.sleep(0.05)
        assert shop.orders.order(order_id).status is OrderStatus.EXPIRED
        assert not release.is_set()  # the reaper is still in its page
    finally:
        release.set()
        threads.stop()
