"""Group commit for order placement (``PlacementBatcher``), on SQLite and PostgreSQL: a
batch never oversells, every command gets its own outcome, retries get the recorded
outcome, and a failed batch transaction acknowledges nothing and leaves nothing held."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import nullcontext
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ordertrail.application.batching import PlacementBatcher, drain
from ordertrail.application.catalog import ChangePrice, DelistProduct
from ordertrail.application.context import CommandContext
from ordertrail.application.errors import StoreUnavailable
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.ordering import PlaceOrder
from ordertrail.application.orders import OrderSnapshot
from ordertrail.application.receipts import Accepted
from ordertrail.application.system import Ordertrail
from ordertrail.domain import ids
from ordertrail.domain.errors import (
    InsufficientStock,
    PaymentPlanMismatch,
    ProductNotListed,
)
from ordertrail.domain.orders import Order
from tests.support.builders import cny, customer, heads, order_of, staff, stocked_product

PRICES = {"HOT-1": 100, "TEA-1": 30, "CUP-1": 50}


class Crash(BaseException):
    """Stands for the process dying between the batch's two transactions."""


@pytest.fixture
def stocked(ot: Ordertrail) -> Ordertrail:
    stocked_product(ot, "HOT-1", PRICES["HOT-1"], 5)
    stocked_product(ot, "TEA-1", PRICES["TEA-1"], 100)
    stocked_product(ot, "CUP-1", PRICES["CUP-1"], 100)
    return ot


@pytest.fixture
def paused(stocked: Ordertrail) -> Iterator[PlacementBatcher]:
    """A batcher whose writer starts when the test says: what was submitted before
    ``start()`` goes into one batch."""
    batcher = PlacementBatcher(stocked.ordering, start=False)
    yield batcher
    if not batcher._thread.is_alive() and not batcher._closed:
        batcher.start()
    batcher.close()


def submit(
    batcher: PlacementBatcher, command: PlaceOrder, ctx: CommandContext
) -> Future[Accepted[OrderSnapshot]]:
    out = batcher.submit(command, ctx)
    assert isinstance(out, Future)
    return out


def test_one_batch_sells_exactly_the_stock_and_tells_each_buyer(
    stocked: Ordertrail, paused: PlacementBatcher
) -> None:
    buyers = [customer(f"buyer-{n}") for n in range(8)]
    futures = [submit(paused, order_of(("HOT-1", 1), total=100), ctx) for ctx in buyers]
    tail = submit(paused, order_of(("TEA-1", 2), ("CUP-1", 1), total=110), customer())
    paused.start()
    outcomes = drain(futures)
    placed = [o for o in outcomes if isinstance(o, Accepted)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(placed), len(refused)) == (5, 3)
    assert isinstance(tail.result(), Accepted)
    assert paused.stats.batches == 1
    level = stocked.inventory.stock_level("HOT-1")
    assert (level.on_hand, level.reserved, level.available) == (5, 5, 0)
    for accepted, ctx in zip(outcomes, buyers, strict=True):
        order = stocked.orders.find(ids.order_id(ctx.command_id))
        if isinstance(accepted, Accepted):
            assert isinstance(order, Order)
            assert accepted.value.order_id == order.id
            assert set(accepted.positions) == {"Orders", "Inventory"}
        else:
            assert order is None


def test_an_order_the_batch_cannot_serve_reserves_none_of_its_lines(
    stocked: Ordertrail, paused: PlacementBatcher
) -> None:
    first = submit(paused, order_of(("HOT-1", 4), total=400), customer())
    both = submit(paused, order_of(("TEA-1", 1), ("HOT-1", 2), total=230), customer())
    paused.start()
    assert isinstance(first.result(), Accepted)
    with pytest.raises(InsufficientStock):
        both.result()
    assert stocked.inventory.stock_level("TEA-1").reserved == 0
    assert stocked.inventory.stock_level("HOT-1").reserved == 4


def test_errors_found_before_batching_are_raised_to_their_caller_only(
    stocked: Ordertrail, paused: PlacementBatcher
) -> None:
    stocked.catalog.delist_product(DelistProduct("CUP-1", "discontinued"), staff())
    fine = submit(paused, order_of(("TEA-1", 1), total=30), customer())
    with pytest.raises(ProductNotListed):
        paused.submit(order_of(("CUP-1", 1), total=50), customer())
    paused.start()
    assert isinstance(fine.result(), Accepted)


def test_a_retry_gets_the_recorded_outcome(stocked: Ordertrail) -> None:
    batcher = PlacementBatcher(stocked.ordering)
    try:
        ctx = customer()
        command = order_of(("HOT-1", 2), total=200)
        first = batcher.place_order(command, ctx)
        again = batcher.place_order(command, ctx)
        assert again.replayed
        assert not first.replayed
        assert again.value == first.value
        assert stocked.inventory.stock_level("HOT-1").reserved == 2
    finally:
        batcher.close()


def test_the_same_command_twice_in_one_batch_places_one_order(
    stocked: Ordertrail, paused: PlacementBatcher
) -> None:
    ctx = customer()
    command = order_of(("HOT-1", 3), total=300)
    futures = [submit(paused, command, ctx) for _ in range(3)]
    paused.start()
    results = [f.result() for f in futures]
    assert len({r.value.order_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert stocked.inventory.stock_level("HOT-1").reserved == 3


def test_a_failed_inventory_transaction_fails_the_whole_batch_and_writes_nothing(
    stocked: Ordertrail, paused: PlacementBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = heads(stocked)

    def down(*_: object) -> int:
        raise StoreUnavailable("Inventory store unavailable: simulated")

    monkeypatch.setattr(stocked.inventory, "save_all", down)
    futures = [submit(paused, order_of(("TEA-1", 1), total=30), customer()) for _ in range(4)]
    paused.start()
    for future in futures:
        with pytest.raises(StoreUnavailable):
            future.result()
    assert heads(stocked) == before


def test_a_failed_orders_transaction_fails_every_command_and_gives_the_stock_back(
    stocked: Ordertrail, paused: PlacementBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders_head = stocked.orders.head()

    def down(*_: object) -> int:
        raise StoreUnavailable("Orders store unavailable: simulated")

    monkeypatch.setattr(stocked.orders, "save_all", down)
    contexts = [customer() for _ in range(4)]
    futures = [submit(paused, order_of(("HOT-1", 1), total=100), ctx) for ctx in contexts]
    paused.start()
    for future in futures:
        with pytest.raises(StoreUnavailable):
            future.result()
    assert stocked.orders.head() == orders_head
    level = stocked.inventory.stock_level("HOT-1")
    assert (level.reserved, level.available) == (0, 5)
    monkeypatch.undo()
    # The stock is sellable again, through the same batcher.
    again = [submit(paused, order_of(("HOT-1", 1), total=100), customer()) for _ in range(5)]
    assert all(isinstance(f.result(), Accepted) for f in again)


def test_a_crash_between_the_two_transactions_is_completed_by_a_retry(
    stocked: Ordertrail,
) -> None:
    batcher = PlacementBatcher(stocked.ordering)

    def crash(step: str) -> None:
        raise Crash(step)

    batcher.crashpoint = crash
    ctx = customer()
    command = order_of(("HOT-1", 2), total=200)
    with pytest.raises(Crash):
        batcher.place_order(command, ctx)
    assert stocked.inventory.stock_level("HOT-1").reserved == 2  # held, no order yet
    assert stocked.orders.find(ids.order_id(ctx.command_id)) is None
    restarted = PlacementBatcher(stocked.ordering)  # a new process
    try:
        accepted = restarted.place_order(command, ctx)
    finally:
        restarted.close()
    assert not accepted.replayed
    assert stocked.inventory.stock_level("HOT-1").reserved == 2  # held once
    assert isinstance(stocked.orders.find(accepted.value.order_id), Order)


def test_stock_changed_by_another_writer_is_seen_by_the_next_batch(
    stocked: Ordertrail,
) -> None:
    batcher = PlacementBatcher(stocked.ordering)
    try:
        batcher.place_order(order_of(("HOT-1", 5), total=500), customer())
        with pytest.raises(InsufficientStock):
            batcher.place_order(order_of(("HOT-1", 1), total=100), customer())
        stocked.inventory.receive_stock(ReceiveStock("HOT-1", 3), staff())  # by someone else
        batcher.place_order(order_of(("HOT-1", 3), total=300), customer())
        level = stocked.inventory.stock_level("HOT-1")
        assert (level.on_hand, level.reserved) == (8, 8)
    finally:
        batcher.close()


def test_a_price_change_is_used_by_the_next_batch_though_the_caller_saw_the_old(
    stocked: Ordertrail,
) -> None:
    batcher = PlacementBatcher(stocked.ordering)
    try:
        batcher.place_order(order_of(("TEA-1", 1), total=30), customer())  # cached now
        stocked.catalog.change_price(ChangePrice("TEA-1", cny(35)), staff())
        # The caller checks against the cached (old) price; the writer prices the batch
        # on the product as it is now, so the old total no longer matches.
        with pytest.raises(PaymentPlanMismatch):
            batcher.place_order(order_of(("TEA-1", 1), total=30), customer())
        accepted = batcher.place_order(order_of(("TEA-1", 2), total=70), customer())
        order = stocked.orders.find(accepted.value.order_id)
        assert isinstance(order, Order)
        assert [line.unit_price for line in order.lines] == [cny(35)]
        assert stocked.inventory.stock_level("TEA-1").reserved == 3
    finally:
        batcher.close()


def test_a_product_delisted_after_it_was_cached_is_refused_by_the_writer(
    stocked: Ordertrail,
) -> None:
    batcher = PlacementBatcher(stocked.ordering)
    try:
        batcher.place_order(order_of(("CUP-1", 1), total=50), customer())
        stocked.catalog.delist_product(DelistProduct("CUP-1", "recalled"), staff())
        before = heads(stocked)
        with pytest.raises(ProductNotListed):
            batcher.place_order(order_of(("CUP-1", 1), total=50), customer())
        assert heads(stocked) == before  # nothing reserved, nothing recorded
        assert isinstance(
            batcher.place_order(order_of(("TEA-1", 1), total=30), customer()), Accepted
        )
    finally:
        batcher.close()


def test_retries_in_one_batch_get_their_outcome_without_touching_the_stock(
    stocked: Ordertrail, paused: PlacementBatcher
) -> None:
    placed = {}
    for n in range(3):
        ctx = customer(f"buyer-{n}")
        placed[n] = (ctx, stocked.ordering.place_order(order_of(("HOT-1", 1), total=100), ctx))
    before = heads(stocked)
    retries = [submit(paused, order_of(("HOT-1", 1), total=100), ctx) for ctx, _ in placed.values()]
    new = submit(paused, order_of(("HOT-1", 2), total=200), customer())
    paused.start()
    for future, (_, first) in zip(retries, placed.values(), strict=True):
        again = future.result()
        assert again.replayed
        assert again.value == first.value
    assert isinstance(new.result(), Accepted)
    assert paused.stats.batches == 1
    assert stocked.inventory.stock_level("HOT-1").reserved == 5
    assert stocked.orders.head() > before["Orders"]


@hsettings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    wanted=st.lists(
        st.tuples(st.sampled_from(["HOT-1", "TEA-1", "CUP-1"]), st.integers(1, 4)),
        min_size=1,
        max_size=3,
        unique_by=lambda line: line[0],
    ).map(tuple),
    orders=st.integers(1, 25),
    threads=st.integers(1, 6),
    max_batch=st.integers(1, 16),
)
def test_many_threads_through_the_batcher_never_oversell(
    stocked: Ordertrail,
    wanted: tuple[tuple[str, int], ...],
    orders: int,
    threads: int,
    max_batch: int,
) -> None:
    ot = stocked
    start = {sku: ot.inventory.stock_level(sku) for sku in ("HOT-1", "TEA-1", "CUP-1")}
    batcher = PlacementBatcher(ot.ordering, max_batch=max_batch)
    outcomes: list[tuple[PlaceOrder, object]] = []
    lock = threading.Lock()

    def buyer(n: int) -> None:
        for _ in range(n):
            command = order_of(*wanted, total=sum(q * PRICES[sku] for sku, q in wanted))
            try:
                result: object = batcher.place_order(command, customer(str(uuid4())))
            except InsufficientStock as error:
                result = error
            with lock:
                outcomes.append((command, result))

    workers = [
        threading.Thread(target=buyer, args=(orders // threads + (i < orders % threads),))
        for i in range(threads)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        batcher.close()
    assert len(outcomes) == orders
    sold = dict.fromkeys(start, 0)
    for _command, result in outcomes:
        if isinstance(result, Accepted):
            assert isinstance(ot.orders.find(result.value.order_id), Order)
            for sku, quantity in wanted:
                sold[sku] += quantity
    for sku, before in start.items():
        level = ot.inventory.stock_level(sku)
        assert level.available >= 0
        assert level.reserved == before.reserved + sold[sku]
    # Refused only when one of its SKUs could not serve it any more.
    for _command, result in outcomes:
        if isinstance(result, InsufficientStock):
            assert any(
                ot.inventory.stock_level(sku).available < quantity for sku, quantity in wanted
            )


@pytest.mark.parametrize("take_turns", [True, False], ids=["writer-lock", "no-lock"])
def test_writers_that_take_turns_do_not_invalidate_each_others_batches(
    stocked: Ordertrail, take_turns: bool
) -> None:
    """Two batchers (two processes' writers) on one hot SKU. While A decides a batch, B
    places an order. Under a shared writer lock B waits for A's save, and neither batch
    conflicts; without one, B's commit lands between A's catch-up and A's save, and A's
    batch fails on the version and is decided again. Both ways exactly the stock asked
    for is reserved."""
    shared = threading.Lock()
    turns = (lambda: shared) if take_turns else nullcontext
    a = PlacementBatcher(stocked.ordering, writer_lock=turns, name="writer-a")
    b = PlacementBatcher(stocked.ordering, writer_lock=turns, name="writer-b")
    try:
        a.place_order(order_of(("HOT-1", 1), total=100), customer())  # both hold the record
        b.place_order(order_of(("HOT-1", 1), total=100), customer())
        b_started, b_done = threading.Event(), threading.Event()
        decide = a._decide

        def decide_while_b_places(*args: Any) -> None:
            if not b_started.is_set():
                b_started.set()

                def b_places() -> None:
                    b.place_order(order_of(("HOT-1", 1), total=100), customer())
                    b_done.set()

                threading.Thread(target=b_places).start()
                assert b_done.wait(1.0) is not take_turns  # B waits only for the lock
            decide(*args)

        a._decide = decide_while_b_places  # type: ignore[method-assign]
        a.place_order(order_of(("HOT-1", 1), total=100), customer())
        assert b_done.wait(10)
    finally:
        a.close()
        b.close()
    assert (a.stats.inventory_conflicts, b.stats.inventory_conflicts) == (
        (0, 0) if take_turns else (1, 0)
    )
    level = stocked.inventory.stock_level("HOT-1")
    assert (level.reserved, level.available) == (4, 1)
