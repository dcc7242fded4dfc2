"""``OrdertrailApplication.find_many_as``: many aggregates in one query, the same state
as reading each one (SQLite, PostgreSQL, and the in-memory store's one-by-one path)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.application import base
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.application.system import Ordertrail
from ordertrail.domain import ids
from ordertrail.domain.catalog import Product
from ordertrail.domain.orders import Order
from tests.support.builders import customer, order_of, provider, staff, stocked_product
from tests.support.spies import counted


def place(ot: Ordertrail, n: int) -> list[UUID]:
    return [
        ot.ordering.place_order(
            order_of(("TEA-1", 1), total=30, customer_id=f"c-{i}"), customer(f"c-{i}")
        ).value.order_id
        for i in range(n)
    ]


def first(order: Order) -> Any:
    return next(iter(order.payments.values()))


def state(order: Order) -> tuple[Any, ...]:
    return (order.id, order.version, order.status, order.total, order.payments)


@pytest.fixture
def shop(ot: Ordertrail) -> Ordertrail:
    stocked_product(ot, "TEA-1", 30, 1_000)
    return ot


def test_many_orders_in_one_query_equal_each_read_alone(shop: Ordertrail) -> None:
    placed = place(shop, 7)
    shop.ordering.cancel_order(CancelOrder(placed[1], "changed mind"), customer("c-1"))
    order = shop.orders.order(placed[2])
    shop.orders.capture_payment(
        CapturePayment(placed[2], first(order).payment_id, first(order).amount, "psp-1"),
        provider(),
    )
    missing = uuid4()
    each = [shop.orders.find_as(i, Order) for i in placed]
    selects = counted(shop.orders, "select_events")
    found = shop.orders.find_many_as([*placed, missing, placed[0]], Order)
    assert set(found) == set(placed)  # the missing one is left out, the repeat once
    assert [state(found[i]) for i in placed] == [state(o) for o in each if o is not None]
    assert found[placed[1]].status is not found[placed[0]].status
    assert selects[0] == 0  # not read one by one


def test_chunks_and_other_kinds(shop: Ordertrail, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MANY_PER_QUERY", 2)
    placed = place(shop, 5)
    queries = counted(shop.orders, "select_events_of_many")
    found = shop.orders.find_many_as(placed, Order)
    assert sorted(found) == sorted(placed)
    assert queries[0] == 3  # 2 + 2 + 1
    product_id = ids.product_id("TEA-1")
    assert shop.catalog.find_many_as([product_id], Order) == {}
    assert list(shop.catalog.find_many_as([product_id], Product)) == [product_id]


def test_what_it_returns_can_be_changed_and_saved(shop: Ordertrail) -> None:
    [order_id] = place(shop, 1)
    order = shop.orders.find_many_as([order_id], Order)[order_id]
    cached = shop.orders.find_as(order_id, Order)  # a copy from the cache
    assert cached is not None
    assert cached is not order
    version = order.version
    order.cancel("changed mind", meta=staff().meta, now=shop.orders.clock())
    shop.orders.save_all([order])
    again = shop.orders.find_as(order_id, Order)
    assert again is not None
    assert again.version > version


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=st.lists(st.sampled_from(["place", "cancel", "pay"]), min_size=1, max_size=12))
def test_find_many_equals_find_over_random_histories(shop: Ordertrail, actions: list[str]) -> None:
    placed: list[UUID] = []
    for i, action in enumerate(actions):
        if action == "place" or not placed:
            placed += place(shop, 1)
            continue
        target = placed[i % len(placed)]
        order = shop.orders.order(target)
        if order.status.name != "AWAITING_PAYMENT":
            continue
        if action == "cancel":
            shop.ordering.cancel_order(CancelOrder(target, "changed mind"), staff())
        else:
            shop.orders.capture_payment(
                CapturePayment(target, first(order).payment_id, first(order).amount, f"psp-{i}"),
                provider(),
            )
    found = shop.orders.find_many_as(placed, Order)
    for order_id in placed:
        alone = shop.orders.find_as(order_id, Order)
        assert alone is not None
        assert state(found[order_id]) == state(alone)


def test_a_recorder_without_bulk_reads_is_read_one_by_one(tmp_path: Any) -> None:
    from ordertrail.adapters.bootstrap import open_ordertrail
    from ordertrail.adapters.settings import Settings
    from ordertrail.application.system import Config

    with open_ordertrail(Settings(database_url="memory:", config=Config())) as ot:
        assert not hasattr(ot.orders.recorder, "select_events_of_many")
        stocked_product(ot, "TEA-1", 30, 10)
        placed = place(ot, 3)
        found = ot.orders.find_many_as([*placed, uuid4()], Order)
        assert sorted(found) == sorted(placed)


def test_catch_up_many_reads_only_what_others_wrote_since(shop: Ordertrail) -> None:
    from ordertrail.application.inventory import ReceiveStock
    from ordertrail.domain.inventory import InventoryItem

    stocked_product(shop, "TEA-2", 30, 5)
    items = [ids.inventory_item_id(sku, "main") for sku in ("TEA-1", "TEA-2")]
    known: dict[UUID, Any] = {}
    first = shop.inventory.catch_up_many(known, [*items, uuid4()])
    assert first[2] is None
    assert [i.version for i in first if i is not None] == [known[i].version for i in items]
    first[0].on_hand = -1  # a copy: the caller's own
    assert known[items[0]].on_hand == 1_000

    shop.inventory.receive_stock(ReceiveStock("TEA-2", 7), staff())  # another writer
    after: list[list[int]] = []
    original = shop.inventory.recorder.select_events_of_many

    def spy(originator_ids: Any, versions: Any) -> Any:
        after.append(list(versions))
        return original(originator_ids, versions)

    shop.inventory.recorder.select_events_of_many = spy
    again = shop.inventory.catch_up_many(known, items)
    assert after == [[known[items[0]].version, known[items[1]].version - 1]]
    fresh = shop.inventory.find_as(items[1], InventoryItem)
    assert fresh is not None
    assert again[1] is not None
    assert (
        (again[1].version, again[1].on_hand)
        == (fresh.version, fresh.on_hand)
        == (
            fresh.version,
            12,
        )
    )


def test_update_items_with_known_copies_decides_on_fresh_stock(shop: Ordertrail) -> None:
    from ordertrail.application.inventory import ReceiveStock
    from ordertrail.domain.inventory import InventoryItem

    item_id = ids.inventory_item_id("TEA-1", "main")
    known: dict[UUID, Any] = {}
    shop.inventory.catch_up_many(known, [item_id])
    shop.inventory.receive_stock(ReceiveStock("TEA-1", 3), staff())  # known is stale now
    seen: list[int] = []

    def note(item: InventoryItem, now: Any) -> bool:
        seen.append(item.on_hand)
        return False

    assert shop.inventory.update_items([item_id], note, "look", known=known) is None
    assert seen == [1_003]  # caught up before deciding: no conflict, no retry
