"""Inventory levels: on hand, reserved and available per SKU and warehouse, and every
movement, built incrementally equal to rebuilt from scratch over random histories."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.settings import Settings
from ordertrail.application.inventory import AdjustStock, ReceiveStock
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.system import Ordertrail
from ordertrail.domain import AdjustmentReason
from ordertrail.domain.errors import DomainError
from ordertrail.projections.inventory_levels import InventoryLevels, InventoryLevelsQueries
from ordertrail.projections.runner import ProjectionWorker
from tests.projections.dashboard_support import empty_read_store
from tests.projections.support import opened, table_rows
from tests.support.builders import customer, order_of, staff, stocked_product
from tests.support.fulfilment import deliver, ready_order, ship

TABLES = ("inventory_levels", "inventory_movements")


def test_levels_and_movements_follow_stock(ot: Ordertrail, store_settings: Settings) -> None:
    stocked_product(ot, "TEA-1", 1000, 10)
    ot.inventory.adjust_stock(
        AdjustStock("TEA-1", -1, AdjustmentReason.DAMAGED, note="dent"), staff()
    )
    order = ready_order(ot, ("TEA-1", 3))
    cancelled = ot.ordering.place_order(order_of(("TEA-1", 2), total=2000), customer()).value
    ot.ordering.cancel_order(CancelOrder(cancelled.order_id, "changed mind"), customer())
    deliver(ot, ship(ot, order.order_id, (1, 3)), ot.clock())
    with opened(store_settings) as store:
        worker = ProjectionWorker(InventoryLevels(), store, {"Inventory": ot.inventory})
        worker.setup()
        worker.run_until_idle()
        queries = InventoryLevelsQueries(store)
        level = ot.inventory.stock_level("TEA-1")
        [projected] = queries.levels("TEA-1")
        assert (
            (projected.on_hand, projected.reserved, projected.available)
            == (level.on_hand, level.reserved, level.available)
            == (6, 0, 6)
        )
        kinds = [m.kind for m in reversed(queries.movements("TEA-1", "main"))]
        assert kinds == ["received", "adjusted", "reserved", "reserved", "released", "shipped"]
        assert [lv.sku for lv in queries.low_stock(6)] == ["TEA-1"]
        assert queries.low_stock(5) == []


steps = st.lists(
    st.tuples(
        st.sampled_from(["receive", "adjust", "order", "cancel", "run"]),
        st.integers(1, 4),
        st.integers(1, 5),
    ),
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_incremental_equals_rebuilt(
    ot: Ordertrail, store_settings: Settings, plan: list[tuple[str, int, int]]
) -> None:
    skus = [f"SKU-{n}" for n in range(1, 4)]
    with empty_read_store(store_settings) as live:
        worker = ProjectionWorker(
            InventoryLevels(), live, {"Inventory": ot.inventory}, batch_size=2
        )
        worker.setup()
        orders: list[Any] = []
        for action, pick, quantity in plan:
            sku = skus[pick % len(skus)]
            try:
                if action == "receive":
                    ot.inventory.receive_stock(ReceiveStock(sku, quantity), staff())
                elif action == "adjust":
                    ot.inventory.adjust_stock(
                        AdjustStock(sku, -quantity, AdjustmentReason.LOST), staff()
                    )
                elif action == "order":
                    if ot.catalog.find_as is not None and not _registered(ot, sku):
                        stocked_product(ot, sku, 100, 0)
                    orders.append(
                        ot.ordering.place_order(
                            order_of((sku, quantity), total=100 * quantity), customer()
                        ).value
                    )
                elif action == "cancel" and orders:
                    ot.ordering.cancel_order(
                        CancelOrder(orders[pick % len(orders)].order_id, "x"), customer()
                    )
                else:
                    worker.run_once()
            except DomainError:
                pass
        worker.run_until_idle()
        with empty_read_store(store_settings) as rebuilt:
            fresh = ProjectionWorker(InventoryLevels(), rebuilt, {"Inventory": ot.inventory})
            fresh.setup()
            fresh.run_until_idle()
            assert table_rows(live, TABLES) == table_rows(rebuilt, TABLES)
            assert InventoryLevelsQueries(live).levels() == InventoryLevelsQueries(rebuilt).levels()


def _registered(ot: Ordertrail, sku: str) -> bool:
    try:
        ot.catalog.product(sku)
    except DomainError:
        return False
    return True
