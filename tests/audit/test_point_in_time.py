"""Any aggregate at a version or at a moment, and a whole order as of a moment; the
timestamp -> version index is maintained by its read model and answers exactly even
while it lags (or is absent)."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from ordertrail.adapters.audit.history import UnknownApplication
from ordertrail.adapters.audit.history_commands import add_history_commands
from ordertrail.adapters.audit.pointintime import (
    AggregateNotFound,
    InvalidAuditQuery,
    NotYetRecorded,
    VersionNotFound,
    aggregate_as_of,
    order_as_of,
    state_of,
    version_at,
)
from ordertrail.adapters.read_models import sources_of
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain import ids
from ordertrail.domain.errors import OrderNotFound
from ordertrail.projections.audit_index import EVENTS_TABLE, AuditIndexView, micros
from ordertrail.projections.store import ReadStore
from tests.audit.history_support import Shop
from tests.support.clock import FakeClock


def test_the_index_holds_every_event_of_every_context(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    with store.read() as tx:
        rows = {
            (app, agg, int(version)): (int(position), int(at))
            for app, agg, version, position, at in tx.all(
                f"SELECT application, aggregate_id, version, position, recorded_at"
                f" FROM {EVENTS_TABLE}"
            )
        }
    expected = {}
    for app in ot.applications:
        for notification in app.recorder.select_notifications(start=0, limit=10_000):
            event = app.mapper.to_domain_event(notification)
            key = (app.name, str(notification.originator_id), notification.originator_version)
            expected[key] = (notification.id, micros(event.timestamp))  # type: ignore[attr-defined]
    assert rows == expected


def test_an_order_at_each_version_and_at_each_moment(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    stored = ot.orders.recorder.select_events(shop.returned)
    events = [ot.orders.mapper.to_domain_event(item) for item in stored]
    folded = None
    for n, event in enumerate(events, start=1):
        folded = event.mutate(folded)  # type: ignore[attr-defined]
        at_version = aggregate_as_of(ot, store, "orders", shop.returned, version=n)
        assert at_version.version == n
        assert at_version.state == state_of(folded)
        moment = event.timestamp  # type: ignore[attr-defined]
        expected = max(
            i
            for i, e in enumerate(events, start=1)
            if e.timestamp <= moment  # type: ignore[attr-defined]
        )
        at_moment = aggregate_as_of(ot, store, "Orders", shop.returned, as_of=moment)
        assert (at_moment.version, at_moment.as_of) == (expected, moment)
        before = (
            aggregate_as_of(
                ot, store, "orders", shop.returned, as_of=moment - timedelta(microseconds=1)
            )
            if n > 1
            else None
        )
        if before is not None:
            assert before.version < n
    now = aggregate_as_of(ot, store, "orders", shop.returned)
    assert now.version == len(events)


def test_as_of_answers_exactly_while_the_index_lags(
    ot: Ordertrail, store: ReadStore, shop: Shop, clock: FakeClock
) -> None:
    item_id = ids.inventory_item_id("TEA-1", "main")
    before = ot.inventory.repository.get(item_id).version
    from tests.support.builders import customer, order_of

    clock.advance(timedelta(hours=1))
    ot.ordering.place_order(order_of(("TEA-1", 1), total=1000), customer())  # not indexed yet
    later = clock.now
    indexed_only = AuditIndexView(store, sources_of(ot), tail=False)
    assert indexed_only.version_at("Inventory", item_id, later) == before
    assert version_at(ot.inventory, item_id, later, indexed_only) == before + 1
    assert aggregate_as_of(ot, store, "inventory", item_id, as_of=later).version == before + 1
    # No index at all: the aggregate's events are scanned.
    assert aggregate_as_of(ot, None, "inventory", item_id, as_of=later).version == before + 1
    assert (
        aggregate_as_of(ot, None, "inventory", item_id, as_of=later - timedelta(hours=1)).version
        == before
    )


def test_bad_questions_are_refused(ot: Ordertrail, store: ReadStore, shop: Shop) -> None:
    with pytest.raises(VersionNotFound):
        aggregate_as_of(ot, store, "orders", shop.returned, version=10_000)
    with pytest.raises(InvalidAuditQuery):
        aggregate_as_of(ot, store, "orders", shop.returned, version=0)
    with pytest.raises(InvalidAuditQuery):
        aggregate_as_of(ot, store, "orders", shop.returned, version=1, as_of=datetime.now(UTC))
    with pytest.raises(InvalidAuditQuery):
        aggregate_as_of(ot, store, "orders", shop.returned, as_of=datetime(2026, 11, 11))
    with pytest.raises(AggregateNotFound):
        aggregate_as_of(ot, store, "orders", uuid4())
    with pytest.raises(AggregateNotFound):
        aggregate_as_of(ot, store, "orders", uuid4(), as_of=datetime.now(UTC))
    with pytest.raises(NotYetRecorded):
        aggregate_as_of(ot, store, "orders", shop.returned, as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(UnknownApplication):
        aggregate_as_of(ot, store, "warehouse", shop.returned)
    with pytest.raises(OrderNotFound):
        order_as_of(ot, store, uuid4(), datetime.now(UTC))


def test_a_whole_order_as_of_moments_of_its_life(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    paid = order_as_of(ot, store, shop.returned, shop.moments["returned_paid"])
    assert paid.order is not None
    assert paid.order.state["status"] == "ready_to_ship"
    assert paid.shipments == []
    assert paid.cases == []
    assert [(r.sku, r.holder_id, r.reservation["quantity"]) for r in paid.reservations] == [
        ("TEA-1", shop.returned, 3)
    ]

    booked = order_as_of(ot, store, shop.returned, shop.moments["first_parcel_booked"])
    assert [s.state["status"] for s in booked.shipments] == ["awaiting_pickup"]
    assert [r.reservation["quantity"] for r in booked.reservations] == [3]
    assert [o.aggregate_type for o in booked.others] == ["TrackingNumber"]

    requested = order_as_of(ot, store, shop.returned, shop.moments["case_requested"])
    assert requested.order is not None
    assert requested.order.state["status"] == "delivered"
    assert sorted(s.state["status"] for s in requested.shipments) == ["delivered", "delivered"]
    assert [c.state["status"] for c in requested.cases] == ["requested"]
    assert requested.reservations == []  # everything shipped: nothing held any more

    settled = order_as_of(ot, store, shop.returned, shop.moments["case_settled"])
    assert [c.state["status"] for c in settled.cases] == ["inspected"]
    assert settled.order is not None
    assert settled.order.state["case_refunds"] == {
        str(shop.return_case): {"amount": 1000, "currency": "CNY"}
    }

    ready = order_as_of(ot, store, shop.from_cart, shop.moments["cart_ready"])
    assert ready.order is None  # not placed yet
    assert [c.version for c in ready.carts] == [4]
    assert ready.reservations == []
    checked_out = order_as_of(ot, store, shop.from_cart, shop.moments["cart_checked_out"])
    assert checked_out.order is not None
    assert checked_out.order.state["status"] == "awaiting_payment"
    assert [c.state["order_id"] for c in checked_out.carts] == [str(shop.from_cart)]
    assert [r.reservation["quantity"] for r in checked_out.reservations] == [2]
    json.dumps(checked_out.to_json())  # plain JSON


def test_an_exchange_as_of_its_approval_holds_stock_for_the_case(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    case = ot.aftersales.case(shop.exchange_case)
    replacement = ot.logistics.shipment(case.replacement_shipment_id)  # type: ignore[arg-type]
    snapshot = order_as_of(ot, store, shop.exchanged, replacement.modified_on)
    assert [c.state["status"] for c in snapshot.cases] == ["approved"]
    assert {s.aggregate_id for s in snapshot.shipments} >= {replacement.id}
    assert [(r.holder_id, r.reservation["quantity"]) for r in snapshot.reservations] == [
        (shop.exchange_case, 1)
    ]


def cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ordertrail audit")
    add_history_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return int(args.run(args, out)), out.getvalue()


def test_the_as_of_and_aggregate_commands(
    ot: Ordertrail, store_settings: Settings, shop: Shop
) -> None:
    url = store_settings.database_url
    moment = shop.moments["first_parcel_booked"].isoformat().replace("+00:00", "Z")
    status, printed = cli("as-of", str(shop.returned), moment, "--database-url", url)
    assert status == 0
    snapshot = json.loads(printed)
    assert snapshot["order"]["state"]["status"] == "ready_to_ship"
    assert len(snapshot["shipments"]) == 1
    status, printed = cli(
        "aggregate", "orders", str(shop.returned), "--version", "2", "--database-url", url
    )
    assert status == 0
    assert json.loads(printed)["version"] == 2
    status, printed = cli(
        "aggregate", "orders", str(shop.returned), "--as-of", moment, "--database-url", url
    )
    assert (status, json.loads(printed)["version"]) == (0, 5)
    status, _ = cli("aggregate", "orders", str(uuid4()), "--database-url", url)
    assert status == 2
    with pytest.raises(SystemExit):  # no offset: refused by the parser
        cli("as-of", str(shop.returned), "2026-11-11T00:00:00", "--database-url", url)
