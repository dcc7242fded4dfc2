"""The customer order list: a customer's orders newest first, filtered by status and time,
cut into pages by keyset so paging is stable while orders keep arriving; on SQLite and
PostgreSQL; built incrementally, it equals a rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Order, OrderLine, OrderStatus, PaymentMethod, PlannedPayment
from ordertrail.projections.customer_orders import (
    MAX_LIMIT,
    CustomerOrders,
    CustomerOrdersQueries,
    InvalidCursor,
    Page,
)
from ordertrail.projections.readmodel import Position
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.orders_support import (
    CUSTOMERS,
    HOME,
    ORDER_STEP,
    VARIANTS,
    Shop,
    empty_read_store,
    run_step,
    worker_for,
)
from tests.projections.support import GatedSource, empty_store_like, opened, table_rows
from tests.support.builders import cny, staff
from tests.support.clock import FakeClock

TABLES = CustomerOrders().tables()


@dataclass
class Listing:
    store: ReadStore
    worker: ProjectionWorker

    def page(self, customer_id: str, **filters: Any) -> Page:
        self.worker.run_until_idle()
        return CustomerOrdersQueries(self.store).list(customer_id, **filters)

    def ids(self, customer_id: str, **filters: Any) -> list[UUID]:
        return [item.order_id for item in self.page(customer_id, **filters).items]


@pytest.fixture
def shop(ot: Ordertrail, clock: FakeClock) -> Shop:
    return Shop(ot, clock).stock()


@pytest.fixture
def listing(ot: Ordertrail, store_settings: Settings) -> Iterator[Listing]:
    with opened(store_settings) as store:
        yield Listing(store, worker_for(CustomerOrders(), ot, store))


def place_at_intervals(shop: Shop, *variants: int, customer_id: str = "li-lei") -> list[UUID]:
    placed = []
    for variant in variants:
        shop.clock.advance(timedelta(minutes=10))
        placed.append(shop.place(variant, customer_id))
    return placed


def test_a_customer_sees_their_own_orders_newest_first(shop: Shop, listing: Listing) -> None:
    first, second = place_at_intervals(shop, 0, 3)
    (someone_elses,) = place_at_intervals(shop, 1, customer_id="han-meimei")
    (third,) = place_at_intervals(shop, 2)
    page = listing.page("li-lei")
    assert page.next_cursor is None
    assert [(o.order_id, o.status, o.total, o.currency, o.item_count, o.first_item_title)
            for o in page.items] == [
        (third, OrderStatus.AWAITING_PAYMENT, 18800, "CNY", 2, "Oolong tea, 250 g"),
        (second, OrderStatus.AWAITING_PAYMENT, 16600, "CNY", 3, "Oolong tea, 250 g"),
        (first, OrderStatus.AWAITING_PAYMENT, 13600, "CNY", 2, "Oolong tea, 250 g"),
    ]  # fmt: skip
    placed_at = [o.placed_at for o in page.items]
    assert placed_at == sorted(placed_at, reverse=True)
    assert all(t.tzinfo is not None for t in placed_at)
    assert listing.ids("han-meimei") == [someone_elses]
    assert listing.page("nobody") == Page((), None)

    shop.pay(first)
    shop.cancel(second)
    shop.confirm_cod(third)
    parcel = shop.ship(first)
    assert parcel is not None
    shop.deliver(parcel)
    assert [o.status for o in listing.page("li-lei").items] == [
        OrderStatus.READY_TO_SHIP,
        OrderStatus.CANCELLED,
        OrderStatus.DELIVERED,
    ]


def test_filters_by_status_and_when_the_order_was_placed(
    shop: Shop, listing: Listing, clock: FakeClock
) -> None:
    unpaid, paid, cancelled, expired = place_at_intervals(shop, 0, 1, 0, 4)
    shop.pay(paid)
    shop.cancel(cancelled)
    clock.advance(timedelta(hours=1))
    shop.ot.run_processes()  # the unpaid ones expire...
    (fresh,) = place_at_intervals(shop, 1)  # ...this one is new
    assert listing.ids("li-lei", status="expired") == [expired, unpaid]
    assert listing.ids("li-lei", status=[OrderStatus.CANCELLED, "ready_to_ship"]) == [
        cancelled,
        paid,
    ]
    assert listing.ids("li-lei", status=()) == [fresh, expired, cancelled, paid, unpaid]
    times = {o.order_id: o.placed_at for o in listing.page("li-lei").items}
    # placed_from is inclusive, placed_to exclusive
    window = {"placed_from": times[paid], "placed_to": times[expired]}
    assert listing.ids("li-lei", **window) == [cancelled, paid]
    assert listing.ids("li-lei", status="cancelled", **window) == [cancelled]
    assert listing.ids("li-lei", placed_from=times[expired]) == [fresh, expired]
    assert listing.ids("li-lei", placed_to=times[paid]) == [unpaid]
    beijing = times[paid].astimezone(timezone(timedelta(hours=8)))  # the same instant
    assert listing.ids("li-lei", placed_from=beijing, placed_to=times[cancelled]) == [paid]
    assert listing.ids("han-meimei", status="expired") == []


def test_pages_neither_repeat_nor_skip_orders_while_orders_arrive(
    shop: Shop, listing: Listing, clock: FakeClock
) -> None:
    original = place_at_intervals(shop, 0, 1, 2, 3, 4)  # oldest first
    newest_first = original[::-1]
    page = listing.page("li-lei", limit=2)
    assert [o.order_id for o in page.items] == newest_first[:2]
    assert page.next_cursor is not None

    # Between page fetches: newer orders arrive, another customer orders, an order on the
    # next page is cancelled, and a server whose clock is behind records an order that
    # sorts between the two oldest.
    newer = place_at_intervals(shop, 0, 1)
    place_at_intervals(shop, 2, customer_id="han-meimei")
    shop.cancel(newest_first[2])
    late_at = clock.now
    clock.now = listing.page("li-lei", limit=100).items[-1].placed_at + timedelta(minutes=5)
    late = shop.place(1, "li-lei")
    clock.now = late_at

    second = listing.page("li-lei", limit=2, cursor=page.next_cursor)
    assert [(o.order_id, o.status) for o in second.items] == [
        (newest_first[2], OrderStatus.CANCELLED),
        (newest_first[3], OrderStatus.AWAITING_PAYMENT),
    ]
    third = listing.page("li-lei", limit=2, cursor=second.next_cursor)
    assert [o.order_id for o in third.items] == [late, newest_first[4]]
    assert third.next_cursor is None
    # the new orders are at the top of a list read afresh
    assert listing.ids("li-lei", limit=2) == newer[::-1]


def test_a_filtered_list_pages_by_keyset_too(shop: Shop, listing: Listing) -> None:
    orders = place_at_intervals(shop, 0, 1, 0, 1, 0)
    for order_id in orders[::2]:
        shop.cancel(order_id)
    page = listing.page("li-lei", status="cancelled", limit=2)
    assert [o.order_id for o in page.items] == [orders[4], orders[2]]
    rest = listing.page("li-lei", status="cancelled", limit=2, cursor=page.next_cursor)
    assert [o.order_id for o in rest.items] == [orders[0]]
    assert rest.next_cursor is None


def test_bad_cursors_are_refused(shop: Shop, listing: Listing) -> None:
    place_at_intervals(shop, 0, 0, 0)
    place_at_intervals(shop, 0, customer_id="han-meimei")
    cursor = listing.page("li-lei", limit=1).next_cursor
    assert cursor is not None
    assert len(cursor) == 44
    assert cursor.isascii()
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)  # URL-safe as it is
    assert len(listing.ids("li-lei", limit=1, cursor=cursor)) == 1
    tampered = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    bad: list[Any] = [
        "",
        "not a cursor",
        "A" * 44,
        "=" * 44,
        cursor[:-1],
        cursor + "A",
        cursor + "====",
        tampered,
        cursor.upper(),
        "AQAGX_TgTAATEFEDJUQVWpOjFCDfvA6O-KPMkvGYBuFx",  # another store's
        12345,
        b"bytes",
    ]
    for value in bad:
        with pytest.raises(InvalidCursor):
            listing.page("li-lei", limit=1, cursor=value)
    # a cursor is for the list it came from: not another customer's, nor other filters
    with pytest.raises(InvalidCursor):
        listing.page("han-meimei", limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        listing.page("li-lei", limit=1, status="cancelled", cursor=cursor)
    with pytest.raises(InvalidCursor):
        listing.page("li-lei", limit=1, placed_to=datetime.now(UTC), cursor=cursor)
    assert issubclass(InvalidCursor, ValueError)
    # the page size is not part of it
    same = listing.page("li-lei", limit=5, cursor=cursor)
    assert len(same.items) == 2


def test_unknown_statuses_and_naive_times_are_refused(listing: Listing) -> None:
    queries = CustomerOrdersQueries(listing.store)
    with pytest.raises(ValueError, match="unknown order status"):
        queries.list("li-lei", status="lost")
    with pytest.raises(ValueError, match="time zone"):
        queries.list("li-lei", placed_from=datetime(2026, 11, 11))


def placed(customer_id: str, at: datetime) -> Order.Placed:
    """A real placement event, decided in memory (no store needed)."""
    order = Order.place(
        order_id=uuid4(),
        customer_id=customer_id,
        lines=[OrderLine(1, "TEA-1", "Oolong tea, 250 g", 1, cny(6800), "home", "main")],
        delivery_groups=[HOME],
        shipping_fee=cny(0),
        discounts=[],
        payment_plan=[PlannedPayment(PaymentMethod.ALIPAY, cny(6800))],
        payment_due_at=at + timedelta(minutes=30),
        meta=staff().meta,
        now=at,
    )
    event = order.collect_events()[0]
    assert isinstance(event, Order.Placed)
    return event


def test_the_page_size_is_clamped(store_settings: Settings) -> None:
    model = CustomerOrders()
    start = datetime(2026, 11, 11, tzinfo=UTC)
    with empty_read_store(store_settings) as store:
        with store.transaction() as tx:
            model.create(tx)
            for n in range(MAX_LIMIT + 5):
                event = placed("li-lei", start + timedelta(seconds=n))
                model.handle(tx, event, Position("Orders", n + 1))
        queries = CustomerOrdersQueries(store)
        assert len(queries.list("li-lei", limit=0).items) == 1
        assert len(queries.list("li-lei", limit=-3).items) == 1
        assert len(queries.list("li-lei").items) == 20
        page = queries.list("li-lei", limit=1000)
        assert len(page.items) == MAX_LIMIT
        rest = queries.list("li-lei", limit=1000, cursor=page.next_cursor)
        assert len(rest.items) == 5
        assert rest.next_cursor is None


def test_the_list_has_an_index_for_its_order(store_settings: Settings) -> None:
    with empty_read_store(store_settings) as store:
        with store.transaction() as tx:
            CustomerOrders().create(tx)
        with store.read() as tx:
            if tx.dialect == "postgres":
                rows = tx.all("SELECT indexdef FROM pg_indexes WHERE tablename = 'customer_orders'")
            else:
                rows = tx.all(
                    "SELECT sql FROM sqlite_master WHERE type = 'index'"
                    " AND tbl_name = 'customer_orders'"
                )
    definitions = " ".join(str(row[0]) for row in rows)
    assert "(customer_id, placed_at, order_id)" in definitions
    assert "(customer_id, status, placed_at, order_id)" in definitions


# --- incremental equals rebuilt --------------------------------------------------------------

FILTERS: tuple[dict[str, Any], ...] = (
    {},
    {"status": ("awaiting_payment", "cancelled")},
    {"status": "expired"},
)


def observe(store: ReadStore) -> dict[tuple[str, int], list[Page]]:
    """Every page of every customer's list, two orders a page, under a few filters."""
    queries = CustomerOrdersQueries(store)
    seen: dict[tuple[str, int], list[Page]] = {}
    for customer_id in CUSTOMERS:
        for n, filters in enumerate(FILTERS):
            pages = [queries.list(customer_id, limit=2, **filters)]
            while pages[-1].next_cursor is not None:
                cursor = pages[-1].next_cursor
                pages.append(queries.list(customer_id, limit=2, cursor=cursor, **filters))
            seen[(customer_id, n)] = pages
    return seen


def test_an_incremental_build_equals_a_rebuild(store_settings: Settings) -> None:
    """Random order histories (placements by several customers, some from a clock that is
    behind; payments, cancellations, expiry, shipping); the worker applies a small batch
    after some steps. Each example starts from empty stores."""

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        steps=st.lists(st.tuples(ORDER_STEP, st.booleans()), min_size=6, max_size=24),
        first=st.integers(0, len(VARIANTS) - 1),
        batch_size=st.integers(1, 3),
    )
    def check(steps: list[tuple[tuple[Any, ...], bool]], first: int, batch_size: int) -> None:
        clock = FakeClock()
        with (
            empty_store_like(store_settings) as fresh,
            open_ordertrail(fresh, clock=clock) as ot,
            opened(fresh) as store,
        ):
            shop = Shop(ot, clock).stock()
            shop.place(first)
            gate = GatedSource(ot.orders)
            worker = worker_for(CustomerOrders(), ot, store, (gate,), batch_size)
            for step, open_now in steps:
                run_step(shop, step)
                gate.open = open_now
                worker.run_once()
            gate.open = True
            worker.run_until_idle()
            incremental = (table_rows(store, TABLES), observe(store))
            with empty_read_store(fresh) as other:
                worker_for(CustomerOrders(), ot, other).run_until_idle()
                rebuilt = (table_rows(other, TABLES), observe(other))
            assert incremental == rebuilt
            listed = [
                o.order_id
                for customer_id in CUSTOMERS
                for page in incremental[1][(customer_id, 0)]
                for o in page.items
            ]
            assert sorted(listed) == sorted(shop.orders)  # each once, in its customer's list

    check()
