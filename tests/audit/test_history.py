"""An order's history across every context: every event of its story and nothing of
other orders', in a deterministic order, with who and why; the same answer whether the
audit index is complete, half built or absent."""

from __future__ import annotations

import argparse
import io
import json
from uuid import UUID, uuid4

import msgspec
import pytest

from ordertrail.adapters.audit.history import (
    HistoryEntry,
    OrderHistory,
    order_history,
)
from ordertrail.adapters.audit.history_commands import add_history_commands
from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain.errors import OrderNotFound
from ordertrail.projections import audit_index
from ordertrail.projections.audit_index import AuditIndex
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.audit.history_support import Shop, busy_shop
from tests.support.clock import FakeClock


def types_of(history: OrderHistory, aggregate_type: str) -> list[str]:
    return [e.event_type for e in history.entries if e.aggregate_type == aggregate_type]


def test_the_history_tells_the_whole_story_of_a_returned_order(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    history = order_history(ot, store, shop.returned)
    order = ot.orders.order(shop.returned)
    assert [e.version for e in history.entries if e.aggregate_id == shop.returned] == list(
        range(1, order.version + 1)
    )
    assert types_of(history, "Shipment").count("Shipment.Booked") == 2
    assert types_of(history, "Shipment").count("Shipment.Delivered") == 2
    assert types_of(history, "TrackingNumber") == ["TrackingNumber.Assigned"] * 2
    assert types_of(history, "AfterSalesCase") == [
        "AfterSalesCase.Requested",
        "AfterSalesCase.Approved",
        "AfterSalesCase.ReturnReceived",
        "AfterSalesCase.Inspected",
        "AfterSalesCase.RefundIssued",
        "AfterSalesCase.ArticleLinked",
    ]
    assert types_of(history, "ReturnLedger") == ["ReturnLedger.Opened", "ReturnLedger.Claimed"]
    assert types_of(history, "InventoryItem") == [
        "InventoryItem.StockReserved",
        "InventoryItem.ReservationCommitted",
        "InventoryItem.ReservationCommitted",
        "InventoryItem.StockRestocked",
    ]
    receipts = [e for e in history.entries if e.aggregate_type == "CommandReceipt"]
    assert {e.payload["command_name"] for e in receipts} >= {
        "PlaceOrder",
        "CapturePayment",
        "CreateShipment",
        "RecordTrackingNotice",
        "RequestCase",
        "ApproveCase",
    }
    # Who and why: every kind of actor, and follow-ups keep the request's correlation.
    assert {e.actor_kind for e in history.entries} == {
        "customer",
        "staff",
        "provider",
        "carrier",
        "system",
    }
    assert all(e.correlation_id and e.causation_id for e in history.entries)
    restock = next(e for e in history.entries if e.event_type == "InventoryItem.StockRestocked")
    inspected = next(e for e in history.entries if e.event_type == "AfterSalesCase.Inspected")
    assert restock.actor == "system:case-settlement"
    assert restock.correlation_id == inspected.correlation_id
    assert restock.causation_id != inspected.causation_id


def test_nothing_of_other_orders_is_in_the_history(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    history = order_history(ot, store, shop.returned)
    own = {shop.returned, shop.return_case}
    others = {shop.exchanged, shop.cod, shop.from_cart, shop.cancelled, shop.awaiting}
    for entry in history.entries:
        text = json.dumps(entry.to_json())
        assert not any(str(other) in text for other in others), entry
        if entry.aggregate_type == "InventoryItem":
            assert UUID(entry.payload["order_id"]) in own
    # The shared stock record contributes only the events that name this order.
    item = next(a for a in history.aggregates if a.aggregate_type == "InventoryItem")
    assert not item.whole
    assert len(item.versions) < ot.inventory.repository.get(item.aggregate_id).version


def test_an_exchange_brings_its_replacement_parcel_and_held_stock(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    history = order_history(ot, store, shop.exchanged)
    case = ot.aftersales.case(shop.exchange_case)
    assert case.replacement_shipment_id is not None
    replacement = [e for e in history.entries if e.aggregate_id == case.replacement_shipment_id]
    assert [e.event_type for e in replacement][:1] == ["Shipment.Booked"]
    held = [
        e
        for e in history.entries
        if e.event_type == "InventoryItem.StockReserved"
        and e.payload["order_id"] == str(shop.exchange_case)
    ]
    assert len(held) == 1


def test_a_checked_out_cart_is_part_of_its_orders_history(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    history = order_history(ot, store, shop.from_cart)
    assert types_of(history, "Cart") == [
        "Cart.Opened",
        "Cart.ItemPut",
        "Cart.DeliveryAddressSet",
        "Cart.PaymentChosen",
        "Cart.CheckedOut",
    ]
    kinds = [e.event_type for e in history.entries if not e.event_type.startswith("Command")]
    assert kinds.index("Cart.PaymentChosen") < kinds.index("Order.Placed")
    assert kinds.index("Order.Placed") < kinds.index("Cart.CheckedOut")


def test_entries_are_ordered_by_time_then_context_then_position(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    for order_id in (shop.returned, shop.exchanged, shop.cod, shop.cancelled):
        entries = order_history(ot, store, order_id).entries
        assert entries == sorted(entries, key=HistoryEntry.sort_key)
        keys = [(e.application, e.position) for e in entries]
        assert len(set(keys)) == len(keys)  # no event twice
        per_aggregate: dict[UUID, list[int]] = {}
        for entry in entries:
            per_aggregate.setdefault(entry.aggregate_id, []).append(entry.version)
        assert all(versions == sorted(versions) for versions in per_aggregate.values())
        # Stock is reserved before the order is recorded, in the same instant.
        placed = next(i for i, e in enumerate(entries) if e.event_type == "Order.Placed")
        reserved = next(
            i for i, e in enumerate(entries) if e.event_type == "InventoryItem.StockReserved"
        )
        assert reserved < placed


@pytest.mark.parametrize("rows_per_insert", [2, audit_index.ROWS_PER_INSERT])
def test_the_history_is_the_same_with_a_full_a_partial_or_no_index(
    ot: Ordertrail,
    store_settings: Settings,
    clock: FakeClock,
    rows_per_insert: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch's rows go in a few hundred per INSERT; 2 makes every batch split.
    monkeypatch.setattr(audit_index, "ROWS_PER_INSERT", rows_per_insert)
    shop = busy_shop(ot, clock)
    expected = {
        order_id: order_history(ot, None, order_id).to_json()
        for order_id in (shop.returned, shop.exchanged, shop.from_cart)
    }
    store = read_store(store_settings)
    try:
        worker = ProjectionWorker(AuditIndex(), store, {app.name: app for app in ot.applications})
        worker.setup()
        worker.batch_size = 7
        for step in range(40):
            if step % 4 == 0:
                for order_id, history in expected.items():
                    found = order_history(ot, store, order_id).to_json()
                    lag = found.pop("index_lag")
                    history.pop("index_lag", None)
                    assert found == history
                    assert (sum(lag.values()) == 0) == worker.status().caught_up
            worker.run_once()
        assert worker.status().caught_up
    finally:
        store.close()


def test_the_history_is_plain_json(ot: Ordertrail, store: ReadStore, shop: Shop) -> None:
    history = order_history(ot, store, shop.returned).to_json()
    assert msgspec.json.decode(msgspec.json.encode(history)) == history
    placed = next(e for e in history["entries"] if e["event_type"] == "Order.Placed")
    assert placed["payload"]["total"] == {"amount": 3000, "currency": "CNY"}
    assert placed["payload"]["lines"][0]["sku"] == "TEA-1"


def test_an_unknown_order_has_no_history(ot: Ordertrail, store: ReadStore, shop: Shop) -> None:
    with pytest.raises(OrderNotFound):
        order_history(ot, store, uuid4())
    with pytest.raises(OrderNotFound):  # a case id is not an order id
        order_history(ot, store, shop.return_case)


def cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ordertrail audit")
    add_history_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    status = args.run(args, out)
    return int(status), out.getvalue()


def test_the_history_command_prints_a_table_or_json(
    ot: Ordertrail, store_settings: Settings, shop: Shop
) -> None:
    url = store_settings.database_url
    status, table = cli("history", str(shop.returned), "--database-url", url)
    assert status == 0
    lines = table.splitlines()
    assert lines[0] == f"order {shop.returned}: {len(lines) - 1} events"
    assert "Order.Placed" in table
    assert "customer:cust-1" in table
    status, printed = cli("history", str(shop.returned), "--json", "--database-url", url)
    assert status == 0
    assert json.loads(printed)["entries"][0]["event_type"] == "InventoryItem.StockReserved"
    status, _ = cli("history", str(uuid4()), "--database-url", url)
    assert status == 2
