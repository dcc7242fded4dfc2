"""Random interleavings of placing, paying, cancelling, expiring and restocking never
oversell, and the stock held always matches the orders that hold it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.inventory import AdjustStock, ReceiveStock
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.domain import AdjustmentReason, InventoryItem, Order, OrderStatus, ids
from ordertrail.domain.errors import DomainError
from tests.support.builders import customer, order_of, provider, staff, stocked_product
from tests.support.clock import FakeClock

SKUS = ("TEA-1", "CUP-1")
PRICES = {"TEA-1": 300, "CUP-1": 100}


class StockMachine(RuleBasedStateMachine):
    backend = "memory"

    @initialize()
    def open_store(self) -> None:
        self.tmp = TemporaryDirectory()
        url = "memory:" if self.backend == "memory" else f"sqlite://{Path(self.tmp.name)}"
        self.clock = FakeClock()
        self.ot = open_ordertrail(Settings(database_url=url), clock=self.clock)
        for sku in SKUS:
            stocked_product(self.ot, sku, PRICES[sku], 3)
        self.orders: list[UUID] = []

    def teardown(self) -> None:
        if hasattr(self, "ot"):
            self.ot.close()
            self.tmp.cleanup()

    @rule(tea=st.integers(0, 4), cup=st.integers(0, 4))
    def place(self, tea: int, cup: int) -> None:
        lines = [(sku, qty) for sku, qty in (("TEA-1", tea), ("CUP-1", cup)) if qty]
        if not lines:
            return
        total = sum(PRICES[sku] * qty for sku, qty in lines)
        try:
            accepted = self.ot.ordering.place_order(order_of(*lines, total=total), customer())
        except DomainError as error:
            assert error.code == "inventory.insufficient_stock"
        else:
            self.orders.append(accepted.value.order_id)

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 100))
    def pay(self, pick: int) -> None:
        order = self.ot.orders.order(self.orders[pick % len(self.orders)])
        payment = next(iter(order.payments.values()))
        if payment.uncaptured.is_zero:
            return
        self.ot.orders.capture_payment(
            CapturePayment(order.id, payment.payment_id, payment.uncaptured, f"p-{order.id}"),
            provider(),
        )

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 100))
    def cancel(self, pick: int) -> None:
        try:
            self.ot.ordering.cancel_order(
                CancelOrder(self.orders[pick % len(self.orders)], "changed mind"), customer()
            )
        except DomainError as error:
            assert error.code == "order.not_cancellable"

    @rule(minutes=st.integers(1, 40))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        self.ot.run_processes()

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 3))
    def restock(self, sku: str, quantity: int) -> None:
        self.ot.inventory.receive_stock(ReceiveStock(sku, quantity), staff())

    @rule(sku=st.sampled_from(SKUS), delta=st.integers(-3, 3).filter(bool))
    def adjust(self, sku: str, delta: int) -> None:
        try:
            self.ot.inventory.adjust_stock(
                AdjustStock(sku, delta, AdjustmentReason.COUNT_CORRECTION), staff()
            )
        except DomainError as error:
            assert error.code == "inventory.adjustment_below_reserved"

    @invariant()
    def stock_is_never_oversold_and_matches_the_open_orders(self) -> None:
        if not hasattr(self, "ot"):
            return
        open_orders = {}
        for order_id in self.orders:
            order = self.ot.orders.order(order_id)
            assert isinstance(order, Order)
            if not order.status.is_terminal:
                open_orders[order_id] = order
        for sku in SKUS:
            item = self.ot.inventory.find_as(ids.inventory_item_id(sku, "main"), InventoryItem)
            assert item is not None
            assert item.on_hand >= 0
            assert 0 <= item.reserved <= item.on_hand
            held = {
                oid: sum(line.quantity for line in o.lines if line.sku == sku)
                for oid, o in open_orders.items()
            }
            assert {oid: r.quantity for oid, r in item.reservations.items()} == {
                oid: qty for oid, qty in held.items() if qty
            }
        for order in open_orders.values():
            assert order.status in (OrderStatus.AWAITING_PAYMENT, OrderStatus.READY_TO_SHIP)


StockMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30)
TestStockOnTheInMemoryStore = StockMachine.TestCase


class SQLiteStockMachine(StockMachine):
    backend = "sqlite"


SQLiteStockMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=25)
TestStockOnSQLite = SQLiteStockMachine.TestCase
