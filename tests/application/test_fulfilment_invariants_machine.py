"""Random interleavings of shipping, carrier notices (repeated, out of order), cash on
delivery, cases, inspections, refunds and process-manager runs keep the cross-aggregate
invariants: refunds never exceed what was captured, returns never exceed what was
delivered, accepted returns restock exactly once, cash on delivery is captured exactly
once, stock is never negative. Runs on the in-memory store, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psycopg
import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import ApproveCase, InspectReturn, ReceiveReturn, RejectCase
from ordertrail.application.aftersales_flows import CaseLineRequest, IssueRefund, RequestCase
from ordertrail.domain import InventoryItem, PaymentMethod, ids
from ordertrail.domain.aftersales import (
    AfterSalesCase,
    CaseKind,
    CaseReason,
    CaseStatus,
    LineInspection,
    ReturnLedger,
)
from ordertrail.domain.errors import DomainError
from ordertrail.domain.shipments import Milestone, Shipment
from tests.support.builders import cny, customer, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import notify, ready_order, scan, ship

SKU = "TEA-1"
EXPECTED_REFUSALS = {
    "aftersales.exceeds_delivered",
    "aftersales.window_closed",
    "aftersales.invalid_transition",
    "aftersales.refund_exceeds_case",
    "payment.refund_exceeds_captured",
    "logistics.exceeds_ordered",
    "order.invalid_transition",
    "aftersales.invalid_case",
    "logistics.cod_amount_mismatch",
    "logistics.invalid_transition",
}


class FulfilmentMachine(RuleBasedStateMachine):
    def __init__(self, url_for: Callable[[], str]) -> None:
        super().__init__()
        self.url_for = url_for

    @initialize()
    def open_store(self) -> None:
        self.clock = FakeClock()
        self.ot = open_ordertrail(Settings(database_url=self.url_for()), clock=self.clock)
        self.orders: list[uuid.UUID] = []
        self.parcels: list[Any] = []
        self.cases: list[uuid.UUID] = []

    def attempt(self, action: Callable[[], object]) -> None:
        try:
            action()
        except DomainError as error:
            event(f"refused: {error.code}")
            assert error.code in EXPECTED_REFUSALS, error

    @rule(quantity=st.integers(1, 3), cod=st.booleans())
    def an_order_is_paid(self, quantity: int, cod: bool) -> None:
        method = PaymentMethod.CASH_ON_DELIVERY if cod else PaymentMethod.ALIPAY
        try:
            order = ready_order(self.ot, (SKU, quantity), stock=40, method=method)
        except DomainError as error:
            assert error.code == "inventory.insufficient_stock"
            return
        self.orders.append(order.order_id)

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 99), quantity=st.integers(1, 3))
    def a_parcel_is_created(self, pick: int, quantity: int) -> None:
        order_id = self.orders[pick % len(self.orders)]
        self.attempt(lambda: self.parcels.append(ship(self.ot, order_id, (1, quantity))))

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 99))
    def the_rest_of_an_order_is_shipped_and_delivered(self, pick: int) -> None:
        order = self.ot.orders.order(self.orders[pick % len(self.orders)])
        remaining = order.unallocated_quantities().get(1, 0)
        if remaining:
            self.attempt(lambda: self.parcels.append(ship(self.ot, order.id, (1, remaining))))
        for parcel in self.parcels:
            if parcel.order_id == order.id:
                when = self.clock.now
                self.attempt(
                    lambda p=parcel, t=when: notify(
                        self.ot,
                        p,
                        scan(Milestone.PICKED_UP, t),
                        scan(Milestone.DELIVERED, t + timedelta(hours=30)),
                        cash=p.cod_amount,
                        at=t,
                    )
                )
        self.ot.run_processes()

    @precondition(lambda self: self.parcels)
    @rule(
        pick=st.integers(0, 99),
        milestone=st.sampled_from(Milestone),
        hours=st.integers(-48, 48),
        twice=st.booleans(),
    )
    def the_carrier_reports(self, pick: int, milestone: Milestone, hours: int, twice: bool) -> None:
        parcel = self.parcels[pick % len(self.parcels)]
        report = scan(milestone, self.clock.now + timedelta(hours=hours))
        self.attempt(lambda: notify(self.ot, parcel, report))
        if twice:
            self.attempt(lambda: notify(self.ot, parcel, report))

    @precondition(lambda self: any(p.cod_amount for p in self.parcels))
    @rule(pick=st.integers(0, 99), twice=st.booleans(), right=st.booleans())
    def the_courier_collects_cash(self, pick: int, twice: bool, right: bool) -> None:
        with_cash = [p for p in self.parcels if p.cod_amount]
        parcel = with_cash[pick % len(with_cash)]
        amount = parcel.cod_amount if right else parcel.cod_amount + cny(1)
        self.attempt(lambda: notify(self.ot, parcel, cash=amount, at=self.clock.now))
        if twice:
            self.attempt(lambda: notify(self.ot, parcel, cash=amount, at=self.clock.now))

    @precondition(lambda self: self.orders)
    @rule(
        pick=st.integers(0, 99),
        quantity=st.integers(1, 3),
        kind=st.sampled_from(CaseKind),
        reason=st.sampled_from(CaseReason),
    )
    def a_customer_opens_a_case(
        self, pick: int, quantity: int, kind: CaseKind, reason: CaseReason
    ) -> None:
        order_id = self.orders[pick % len(self.orders)]
        command = RequestCase(order_id, kind, reason, (CaseLineRequest(1, quantity),))
        self.attempt(
            lambda: self.cases.append(
                self.ot.returns.request_case(command, customer()).value.case_id
            )
        )

    @precondition(lambda self: self.cases)
    @rule(
        pick=st.integers(0, 99),
        step=st.sampled_from(["approve", "reject", "receive", "inspect", "refund"]),
        accepted=st.integers(0, 3),
        amount=st.integers(1, 4000),
    )
    def staff_work_a_case(self, pick: int, step: str, accepted: int, amount: int) -> None:
        case_id = self.cases[pick % len(self.cases)]
        aftersales = self.ot.aftersales
        if step == "approve":
            self.attempt(lambda: aftersales.approve(ApproveCase(case_id), staff()))
        elif step == "reject":
            self.attempt(lambda: aftersales.reject(RejectCase(case_id, "no"), staff()))
        elif step == "receive":
            self.attempt(
                lambda: aftersales.receive_return(ReceiveReturn(case_id, self.clock.now), staff())
            )
        elif step == "inspect":
            case = aftersales.case(case_id)
            quantity = case.lines[0].quantity
            good = min(accepted, quantity)
            self.attempt(
                lambda: aftersales.inspect(
                    InspectReturn(case_id, (LineInspection(1, good, quantity - good),)), staff()
                )
            )
        else:
            self.attempt(
                lambda: self.ot.returns.issue_refund(IssueRefund(case_id, cny(amount)), staff())
            )

    @precondition(lambda self: self.cases)
    @rule(pick=st.integers(0, 99), accepted=st.integers(0, 3), settle=st.booleans())
    def a_case_is_worked_through(self, pick: int, accepted: int, settle: bool) -> None:
        """Approve, receive and inspect in a row (each may be refused), maybe settle."""
        for step in ("approve", "receive", "inspect"):
            self.staff_work_a_case(pick, step, accepted, 1)
        if settle:
            self.ot.run_processes()

    @rule(hours=st.integers(0, 24 * 4))
    def processes_run(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))
        self.ot.run_processes()

    # --- invariants ----------------------------------------------------------------------

    def teardown(self) -> None:
        if hasattr(self, "ot"):
            for case_id in self.cases:
                case = self.ot.aftersales.find_as(case_id, AfterSalesCase)
                if case is not None:
                    event(f"case reached {case.status.value}")
                    if case.refunded.amount:
                        event("a case was refunded")
            for order_id in self.orders:
                event(f"order reached {self.ot.orders.order(order_id).status.value}")
            self.ot.close()

    @invariant()
    def refunds_never_exceed_what_was_captured(self) -> None:
        for order_id in getattr(self, "orders", []):
            order = self.ot.orders.order(order_id)
            for payment in order.payments.values():
                assert 0 <= payment.refunded.amount <= payment.captured.amount
            assert order.refunded <= order.captured

    @invariant()
    def returns_never_exceed_what_was_delivered(self) -> None:
        for order_id in getattr(self, "orders", []):
            ledger = self.ot.aftersales.find_as(ids.return_ledger_id(order_id), ReturnLedger)
            if ledger is not None:
                delivered = self.ot.orders.order(order_id).delivered_quantities()
                for line_no, claimed in ledger.claimed.items():
                    assert 0 <= claimed <= delivered.get(line_no, 0)

    @invariant()
    def cases_refund_within_their_limits(self) -> None:
        for case_id in getattr(self, "cases", []):
            case = self.ot.aftersales.find_as(case_id, AfterSalesCase)
            assert case is not None
            assert case.refunded <= case.refund_limit or case.status is CaseStatus.CLOSED

    @invariant()
    def cash_on_delivery_is_captured_exactly_once(self) -> None:
        for order_id in getattr(self, "orders", []):
            order = self.ot.orders.order(order_id)
            cod = order.cod_payment()
            if cod is None:
                continue
            collected = [
                self.ot.logistics.find_as(p.shipment_id, Shipment) for p in order.parcels.values()
            ]
            cash = sum(
                s.cash_collected.amount
                for s in collected
                if s is not None and s.cash_collected is not None
            )
            captured_refs = [r for r in cod.provider_refs if r.startswith("capture:cod:")]
            assert len(captured_refs) == len(set(captured_refs))
            assert cod.captured.amount <= cash  # the courier's cash, counted at most once

    @invariant()
    def stock_is_never_negative_and_returns_restock_once(self) -> None:
        if not hasattr(self, "ot"):
            return
        item = self.ot.inventory.find_as(ids.inventory_item_id(SKU, "main"), InventoryItem)
        if item is None:
            return
        assert item.on_hand >= 0
        assert 0 <= item.reserved <= item.on_hand
        accepted_units = 0
        for case_id in self.cases:
            case = self.ot.aftersales.find_as(case_id, AfterSalesCase)
            assert case is not None
            accepted_units += sum(r.accepted for r in case.inspections)
            refs = [r for r in item.restock_refs if r.startswith(f"case:{case_id}:")]
            assert len(refs) <= 1
        restocked = sum(1 for r in item.restock_refs if r.startswith("case:"))
        assert restocked <= len(self.cases)
        assert accepted_units >= 0


def run(url_for: Callable[[], str], examples: int, steps: int) -> None:
    run_state_machine_as_test(
        lambda: FulfilmentMachine(url_for),
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None),
    )


def test_invariants_hold_on_the_in_memory_store() -> None:
    run(lambda: "memory:", examples=100, steps=30)


def test_invariants_hold_on_sqlite(tmp_path: Path) -> None:
    directories: list[TemporaryDirectory[str]] = []

    def fresh() -> str:
        directories.append(TemporaryDirectory(dir=tmp_path))
        return f"sqlite://{directories[-1].name}"

    run(fresh, examples=25, steps=25)


@pytest.mark.postgres
def test_invariants_hold_on_postgresql(postgres_server_url: str) -> None:
    base = postgres_server_url.split("?", 1)[0]

    def fresh() -> str:
        schema = f"m_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return f"{base}?schema={schema}"

    run(fresh, examples=15, steps=25)
