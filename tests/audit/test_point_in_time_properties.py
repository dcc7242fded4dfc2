"""Property: over random command sequences, an aggregate read at version N equals folding
its first N events (taken from the notification log, not from the aggregate's own
query), equals what the write side held when it was at N, and reading it as of the
timestamp of event N gives the highest version recorded by then. For orders, stock
records and parcels; with the audit index complete, half built or missing."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordertrail.adapters.audit.pointintime import aggregate_as_of, state_of
from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.catalog import RegisterProduct
from ordertrail.application.inventory import AdjustStock, ReceiveStock
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.application.system import Ordertrail
from ordertrail.domain import ids
from ordertrail.domain.errors import DomainError
from ordertrail.domain.inventory import AdjustmentReason
from ordertrail.domain.shipments import Milestone
from ordertrail.projections.audit_index import AuditIndex
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.support.builders import cny, customer, order_of, provider, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import notify, scan, ship

SKUS = itertools.count(1)

capture = st.tuples(st.just("capture"), st.integers(0, 3), st.sampled_from([True, True, False]))
shipping = st.tuples(st.just("ship"), st.integers(0, 3), st.integers(1, 2))
scanning = st.tuples(
    st.just("scan"),
    st.integers(0, 5),
    st.sampled_from([Milestone.PICKED_UP, Milestone.IN_TRANSIT, Milestone.DELIVERED]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("place"), st.integers(1, 3)),
        capture,
        capture,
        st.tuples(st.just("cancel"), st.integers(0, 3)),
        shipping,
        st.tuples(st.just("pay_and_ship"), st.integers(0, 3), st.integers(1, 2)),
        st.tuples(st.just("pay_and_ship"), st.integers(0, 3), st.integers(1, 2)),
        scanning,
        scanning,
        st.tuples(st.just("receive"), st.integers(1, 5)),
        st.tuples(st.just("adjust"), st.integers(-3, 3)),
        st.tuples(st.just("tick"), st.integers(1, 20)),
    ),
    min_size=1,
    max_size=20,
)


@dataclass
class Run:
    ot: Ordertrail
    clock: FakeClock
    sku: str
    orders: list[UUID] = field(default_factory=list)
    shipments: list[Any] = field(default_factory=list)
    #: (application, aggregate id) -> version -> the write side's state at that version
    seen: dict[tuple[str, UUID], dict[int, dict[str, Any]]] = field(default_factory=dict)

    def observe(self) -> None:
        for app, aggregate_id in self.aggregates():
            found = app.find(aggregate_id)
            if found is not None:
                self.seen.setdefault((app.name, aggregate_id), {})[found.version] = state_of(found)

    def aggregates(self) -> list[tuple[Any, UUID]]:
        return [
            (self.ot.inventory, ids.inventory_item_id(self.sku, "main")),
            *((self.ot.orders, order_id) for order_id in self.orders),
            *((self.ot.logistics, parcel.shipment_id) for parcel in self.shipments),
        ]

    def step(self, action: tuple[Any, ...]) -> None:
        ot = self.ot
        kind = action[0]
        if kind == "place":
            placed = ot.ordering.place_order(
                order_of((self.sku, action[1]), total=500 * action[1]), customer()
            )
            self.orders.append(placed.value.order_id)
        elif kind == "capture" and self.orders:
            order = ot.orders.order(self.orders[action[1] % len(self.orders)])
            payment = next(iter(order.payments.values()))
            amount = order.total.amount if action[2] else order.total.amount // 2
            ot.orders.capture_payment(
                CapturePayment(order.id, payment.payment_id, cny(amount), f"pay-{self.clock.now}"),
                provider(),
            )
        elif kind == "pay_and_ship" and self.orders:
            with contextlib.suppress(DomainError):
                self.step(("capture", action[1], True))
            self.step(("ship", action[1], action[2]))
        elif kind == "cancel" and self.orders:
            ot.ordering.cancel_order(
                CancelOrder(self.orders[action[1] % len(self.orders)], "changed my mind"),
                customer(),
            )
        elif kind == "ship" and self.orders:
            order_id = self.orders[action[1] % len(self.orders)]
            self.shipments.append(ship(ot, order_id, (1, action[2])))
        elif kind == "scan" and self.shipments:
            parcel = self.shipments[action[1] % len(self.shipments)]
            notify(ot, parcel, scan(action[2], self.clock.now))
            ot.run_processes()
        elif kind == "receive":
            ot.inventory.receive_stock(ReceiveStock(self.sku, action[1]), staff())
        elif kind == "adjust" and action[1]:
            ot.inventory.adjust_stock(
                AdjustStock(self.sku, action[1], AdjustmentReason.COUNT_CORRECTION), staff()
            )
        elif kind == "tick":
            self.clock.advance(timedelta(minutes=action[1]))
            ot.run_processes()


def events_from_the_log(app: Any, aggregate_id: UUID, after: int) -> list[Any]:
    found = []
    start = after
    while batch := app.recorder.select_notifications(
        start=start, limit=500, inclusive_of_start=False
    ):
        found.extend(
            app.mapper.to_domain_event(n) for n in batch if n.originator_id == aggregate_id
        )
        start = batch[-1].id
    return found


@pytest.fixture
def store(store_settings: Settings) -> Iterator[ReadStore]:
    opened = read_store(store_settings)
    try:
        yield opened
    finally:
        opened.close()


@settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(actions=steps, index_batches=st.integers(0, 4), use_store=st.booleans())
def test_the_state_at_version_n_is_the_fold_of_the_first_n_events(
    ot: Ordertrail,
    clock: FakeClock,
    store: ReadStore,
    actions: list[tuple[Any, ...]],
    index_batches: int,
    use_store: bool,
) -> None:
    sku = f"PROP-{next(SKUS)}"
    starts = {app.name: app.head() for app in ot.applications}
    ot.catalog.register_product(RegisterProduct(sku, sku, "tea", cny(500)), staff())
    ot.inventory.receive_stock(ReceiveStock(sku, 6), staff())
    run = Run(ot, clock, sku)
    run.observe()
    for action in [("place", 2), *actions]:
        clock.advance(timedelta(seconds=1))
        with contextlib.suppress(DomainError):
            run.step(action)
        run.observe()
    worker = ProjectionWorker(AuditIndex(), store, {app.name: app for app in ot.applications}, 25)
    worker.setup()
    for _ in range(index_batches):
        worker.run_once()
    chosen_store = store if use_store else None

    checked_types = set()
    for app, aggregate_id in run.aggregates():
        events = events_from_the_log(app, aggregate_id, starts[app.name])
        if not events:
            continue
        seen = run.seen.get((app.name, aggregate_id), {})
        folded = None
        for n, event in enumerate(events, start=1):
            assert event.originator_version == n
            folded = event.mutate(folded)
            at_n = aggregate_as_of(ot, chosen_store, app.name, aggregate_id, version=n)
            assert at_n.version == n
            assert at_n.state == state_of(folded)
            if n in seen:
                assert seen[n] == at_n.state
            moment = event.timestamp
            by_then = max(i for i, e in enumerate(events, start=1) if e.timestamp <= moment)
            at_moment = aggregate_as_of(ot, chosen_store, app.name, aggregate_id, as_of=moment)
            assert at_moment.version == by_then
            assert at_moment.state == state_of(app.repository.get(aggregate_id, version=by_then))
        checked_types.add(type(folded).__name__)
    assert {"Order", "InventoryItem"} <= checked_types
    assert ("Shipment" in checked_types) == bool(run.shipments)
    hypothesis.event(f"parcels: {len(run.shipments)}")
