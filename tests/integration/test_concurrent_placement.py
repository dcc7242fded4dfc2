"""Several OS processes place orders for one SKU at once on PostgreSQL: exactly the stock
is sold, every other order is refused for insufficient stock, nothing is left reserved
for an order that does not exist."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from uuid import UUID

import pytest

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.domain import InventoryItem, Order, ids
from ordertrail.domain.errors import DomainError
from tests.support.builders import customer, order_of, stocked_product

STOCK = 40
PROCESSES = 6
CHILDREN_TIMEOUT = 300  # seconds
ORDERS_PER_PROCESS = 12  # 72 attempts for 40 units


def place_many(url: str, worker: int) -> tuple[list[str], list[str]]:
    """Runs in a child process: place orders of one unit; report ids and error codes."""
    placed: list[str] = []
    refused: list[str] = []
    with open_ordertrail(Settings(database_url=url), create_tables=False) as ot:
        for n in range(ORDERS_PER_PROCESS):
            try:
                accepted = ot.ordering.place_order(
                    order_of(("HOT-1", 1), total=100, customer_id=f"buyer-{worker}-{n}"),
                    customer(f"buyer-{worker}-{n}"),
                )
                placed.append(str(accepted.value.order_id))
            except DomainError as error:
                refused.append(error.code)
    return placed, refused


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_processes_never_oversell_a_hot_sku(postgres_schema_url: str) -> None:
    with open_ordertrail(Settings(database_url=postgres_schema_url)) as ot:
        stocked_product(ot, "HOT-1", 100, STOCK)
        ot.run_processes()  # creates the process managers' tables before the children start

    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        # A child that dies (a crash, not an exception) loses its task: wait boundedly,
        # so that the test fails instead of hanging the suite.
        results = pool.starmap_async(
            place_many, [(postgres_schema_url, w) for w in range(PROCESSES)]
        ).get(timeout=CHILDREN_TIMEOUT)

    placed = [UUID(order_id) for ids_, _ in results for order_id in ids_]
    refused = Counter(code for _, codes in results for code in codes)
    assert len(placed) == STOCK
    assert refused == {"inventory.insufficient_stock": PROCESSES * ORDERS_PER_PROCESS - STOCK}

    with open_ordertrail(Settings(database_url=postgres_schema_url)) as ot:
        item = ot.inventory.find_as(ids.inventory_item_id("HOT-1", "main"), InventoryItem)
        assert item is not None
        assert (item.on_hand, item.reserved, item.available) == (STOCK, STOCK, 0)
        assert set(item.reservations) == set(placed)
        for order_id in placed:
            assert isinstance(ot.orders.find(order_id), Order)
