"""Replay verification: on a busy history every read model replays to exactly the live
rows and every aggregate folds; a live row changed behind the projections is reported
exactly (model, table, key, column, live value, replayed value); lag is reported, never
counted as a difference; a stored event that no longer decodes is reported, not raised."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from ordertrail.adapters.audit.history_commands import add_history_commands
from ordertrail.adapters.audit.replay import (
    Difference,
    ReplayReport,
    format_report,
    verify_replay,
)
from ordertrail.adapters.demo import run_scenario
from ordertrail.adapters.read_models import READ_MODELS, ReadSide, read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.domain import ids
from ordertrail.projections.store import ReadStore
from tests.audit.history_support import Shop, busy_shop, overwrite_stored_event
from tests.support.builders import customer, order_of
from tests.support.clock import FakeClock


@pytest.fixture
def side(ot: Ordertrail, store: ReadStore) -> Iterator[ReadSide]:
    opened = ReadSide.open(ot, store)
    try:
        yield opened
    finally:
        opened.stop()


@pytest.fixture
def shop(ot: Ordertrail, clock: FakeClock, side: ReadSide) -> Shop:
    built = busy_shop(ot, clock)
    run_scenario(ot, clock, lambda _: None)  # type: ignore[arg-type]  # the demo, on top
    side.run_until_idle()
    return built


def differences(report: ReplayReport) -> list[Difference]:
    return [d for model in report.models for d in model.differences]


def test_a_busy_history_replays_to_exactly_the_live_read_models(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    report = verify_replay(ot, store)
    assert differences(report) == []
    assert [m.name for m in report.models] == list(READ_MODELS)
    assert all(m.ok and m.error is None and not any(m.lag.values()) for m in report.models)
    assert all(m.rows > 0 for m in report.models)
    assert report.aggregates is not None
    assert report.aggregates.failures == []
    aggregates = {
        (app.name, n.originator_id)
        for app in ot.applications
        for n in app.recorder.select_notifications(start=0, limit=100_000)
    }
    assert report.aggregates.checked == len(aggregates)
    assert report.aggregates.events == sum(
        len(app.recorder.select_notifications(start=0, limit=100_000)) for app in ot.applications
    )
    assert report.ok
    assert format_report(report).endswith(f"OK in {report.seconds:.2f} s")


def execute(store: ReadStore, statement: str, params: tuple[Any, ...] = ()) -> int:
    with store.transaction() as tx:
        return tx.count(statement, params)


def test_a_changed_live_row_is_reported_exactly(
    ot: Ordertrail, store: ReadStore, shop: Shop
) -> None:
    item = str(ids.inventory_item_id("TEA-1", "main"))
    with store.read() as tx:
        on_hand = int(tx.scalar("SELECT on_hand FROM inventory_levels WHERE item_id = ?", (item,)))
        row = tx.one(
            "SELECT order_id, customer_id, status FROM customer_orders WHERE order_id = ?",
            (str(shop.cod),),
        )
    assert row is not None
    assert (
        execute(
            store, "UPDATE inventory_levels SET on_hand = ? WHERE item_id = ?", (on_hand + 7, item)
        )
        == 1
    )
    assert execute(store, "DELETE FROM customer_orders WHERE order_id = ?", (str(shop.cod),)) == 1
    assert (
        execute(
            store,
            "UPDATE aftersales_queue SET status = 'closed' WHERE case_id = ?",
            (str(shop.return_case),),
        )
        == 1
    )

    report = verify_replay(ot, store, aggregates=False)

    assert not report.ok
    assert report.difference_count == 3
    found = {(d.model, d.table, d.column): d for d in differences(report)}
    changed = found["inventory_levels", "inventory_levels", "on_hand"]
    assert (changed.key, changed.live, changed.replayed) == (
        {"item_id": item},
        on_hand + 7,
        on_hand,
    )
    deleted = found["customer_orders", "customer_orders", None]
    assert deleted.key == {"order_id": str(shop.cod)}
    assert deleted.live is None
    assert (deleted.replayed["order_id"], deleted.replayed["customer_id"]) == row[:2]
    closed = found["aftersales_queue", "aftersales_queue", "status"]
    assert (closed.key, closed.live, closed.replayed) == (
        {"case_id": str(shop.return_case)},
        "closed",
        "inspected",
    )
    others = [
        m
        for m in report.models
        if m.name not in {"inventory_levels", "customer_orders", "aftersales_queue"}
    ]
    assert all(m.ok for m in others)
    assert "inventory_levels.inventory_levels" in format_report(report)


def test_lag_is_reported_and_never_counted_as_a_difference(
    ot: Ordertrail, store: ReadStore, side: ReadSide, shop: Shop, clock: FakeClock
) -> None:
    clock.advance(timedelta(minutes=1))
    for _ in range(3):  # recorded after the read models last ran
        ot.ordering.place_order(order_of(("TEA-1", 1), total=1000), customer())
    report = verify_replay(ot, store, names=["customer_orders", "audit_index"], aggregates=False)
    assert report.ok
    by_name = {m.name: m for m in report.models}
    assert by_name["customer_orders"].lag == {"Orders": 6}  # an order and a receipt each
    assert by_name["audit_index"].lag["Inventory"] == 3
    assert report.aggregates is None

    side.start(idle_wait=0.05)  # the workers catch up while the verification waits
    caught_up = verify_replay(ot, store, names=["customer_orders"], wait_seconds=20)
    assert caught_up.ok
    assert caught_up.models[0].lag == {"Orders": 0}


def test_an_event_that_no_longer_decodes_is_reported_not_raised(
    ot: Ordertrail, store: ReadStore, store_settings: Settings, shop: Shop
) -> None:
    overwrite_stored_event(store_settings, "Orders", shop.awaiting, 1, b'{"customer_id": 7}')
    report = verify_replay(ot, store, names=["customer_orders", "inventory_levels"])
    assert not report.ok
    customer_orders, inventory_levels = report.models
    assert customer_orders.error is not None
    assert "Order.Placed" in customer_orders.error
    assert inventory_levels.ok  # it does not read the orders log
    assert report.aggregates is not None
    assert [(f.application, f.aggregate_id, f.version) for f in report.aggregates.failures] == [
        ("Orders", str(shop.awaiting), 1)
    ]
    assert "REPLAY FAILED" in format_report(report)


def cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ordertrail audit")
    add_history_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return int(args.run(args, out)), out.getvalue()


def test_the_replay_verify_command(
    ot: Ordertrail, store: ReadStore, store_settings: Settings, shop: Shop
) -> None:
    url = store_settings.database_url
    status, printed = cli("replay-verify", "--database-url", url)
    assert status == 0, printed
    assert "inventory_levels: OK" in printed
    item = str(ids.inventory_item_id("TEA-1", "main"))
    execute(store, "UPDATE inventory_levels SET reserved = reserved + 1 WHERE item_id = ?", (item,))
    status, printed = cli(
        "replay-verify", "inventory_levels", "--no-aggregates", "--database-url", url
    )
    assert status == 1
    assert f"inventory_levels.inventory_levels [item_id='{item}'] reserved" in printed
    assert "DIFFERENCES FOUND" in printed
    assert cli("replay-verify", "no_such_model", "--database-url", url)[0] == 2


@pytest.mark.postgres
def test_the_scratch_schema_is_dropped_afterwards(
    ot: Ordertrail, postgres_schema_url: str, clock: FakeClock
) -> None:
    settings = Settings(database_url=postgres_schema_url)
    live = read_store(settings)
    try:
        ReadSide.open(ot, live, ["customer_orders"])
        verify_replay(ot, live, names=["customer_orders"], aggregates=False)
    finally:
        live.close()
    with psycopg.connect(settings.postgres().conninfo()) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'replay\\_%'"
        ).fetchone()
    assert left == (0,)


def test_read_models_that_never_ran_verify_as_empty_and_behind(
    ot: Ordertrail, clock: FakeClock, store: ReadStore
) -> None:
    busy_shop(ot, clock)  # events, but no worker has ever run: no read-model tables
    report = verify_replay(ot, store, aggregates=False)
    assert report.ok, format_report(report)
    orders = next(model for model in report.models if model.name == "order_tracking")
    assert orders.rows == 0
    assert orders.lag["Orders"] > 0
