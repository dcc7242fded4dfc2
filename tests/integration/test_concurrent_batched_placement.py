"""Several OS processes, each with a placement batcher fed by several threads, place
orders for one hot SKU and a long tail on PostgreSQL: exactly the stock is sold, whether
the writers of different processes take turns (the advisory writer lock the API uses)
or race each other (their batches conflict on the hot stock record and are decided
again)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from uuid import UUID

import pytest

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.adapters.writer_lock import placement_writer_lock
from ordertrail.application.batching import PlacementBatcher
from ordertrail.domain import InventoryItem, Order, ids
from ordertrail.domain.errors import DomainError
from tests.support.builders import customer, order_of, stocked_product

STOCK = 40
PROCESSES = 4
CHILDREN_TIMEOUT = 300  # seconds
THREADS = 8
ORDERS_PER_THREAD = 4  # 128 attempts on the hot SKU for 40 units, plus the tail


def place_many(
    url: str, worker: int, take_turns: bool
) -> tuple[list[str], list[str], list[str], int]:
    """Runs in a child process: hot-SKU orders and tail orders through one batcher.
    Returns the orders placed, refused and of the tail, and the batcher's conflicts."""
    placed: list[str] = []
    refused: list[str] = []
    tail: list[str] = []
    settings = Settings(database_url=url)
    lock = placement_writer_lock(settings) if take_turns else None
    with open_ordertrail(settings, create_tables=False) as ot:
        batcher = PlacementBatcher(ot.ordering, max_batch=32, writer_lock=lock or nullcontext)

        def buyer(thread: int) -> None:
            for n in range(ORDERS_PER_THREAD):
                name = f"buyer-{worker}-{thread}-{n}"
                try:
                    accepted = batcher.place_order(
                        order_of(("HOT-1", 1), total=100, customer_id=name), customer(name)
                    )
                    placed.append(str(accepted.value.order_id))
                except DomainError as error:
                    refused.append(error.code)
                accepted = batcher.place_order(
                    order_of((f"TAIL-{n}", 1), total=10, customer_id=name), customer(name)
                )
                tail.append(str(accepted.value.order_id))

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(buyer, range(THREADS)))
        batcher.close()
    if lock is not None:
        lock.close()
    return placed, refused, tail, batcher.stats.inventory_conflicts


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("take_turns", [True, False], ids=["writer-lock", "racing"])
def test_batching_processes_never_oversell_a_hot_sku(
    postgres_schema_url: str, take_turns: bool
) -> None:
    with open_ordertrail(Settings(database_url=postgres_schema_url)) as ot:
        stocked_product(ot, "HOT-1", 100, STOCK)
        for n in range(ORDERS_PER_THREAD):
            stocked_product(ot, f"TAIL-{n}", 10, 1000)
        ot.run_processes()

    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        # A child that dies (a crash, not an exception) loses its task: wait boundedly,
        # so that the test fails instead of hanging the suite.
        results = pool.starmap_async(
            place_many, [(postgres_schema_url, w, take_turns) for w in range(PROCESSES)]
        ).get(timeout=CHILDREN_TIMEOUT)

    placed = [UUID(order_id) for ids_, _, _, _ in results for order_id in ids_]
    refused = Counter(code for _, codes, _, _ in results for code in codes)
    tail = [UUID(order_id) for _, _, ids_, _ in results for order_id in ids_]
    conflicts = sum(n for *_, n in results)
    if take_turns:
        # Under the lock a writer decides on stock nobody else can change before it
        # saves; only a record a caller read before the lock was taken can be stale,
        # which happens for the first records a process sees (one per record and
        # process at most: afterwards the records are kept up to date in memory).
        assert conflicts <= PROCESSES * (1 + ORDERS_PER_THREAD)
    attempts = PROCESSES * THREADS * ORDERS_PER_THREAD
    assert len(placed) == STOCK
    assert refused == {"inventory.insufficient_stock": attempts - STOCK}
    assert len(set(tail)) == attempts

    with open_ordertrail(Settings(database_url=postgres_schema_url)) as ot:
        item = ot.inventory.find_as(ids.inventory_item_id("HOT-1", "main"), InventoryItem)
        assert item is not None
        assert (item.on_hand, item.reserved, item.available) == (STOCK, STOCK, 0)
        assert set(item.reservations) == set(placed)
        for order_id in [*placed, *tail]:
            assert isinstance(ot.orders.find(order_id), Order)
