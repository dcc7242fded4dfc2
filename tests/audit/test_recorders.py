"""The chained recorders as deployed: the settings select them on SQLite and PostgreSQL
(and leave the tracking recorders alone), the chain is written in the events' own
transaction or the events are not written, a log written before the chain existed is
chained from its first event, and concurrent writers still make one valid chain."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, ProgrammingError
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from ordertrail.adapters.audit.recorders import (
    ChainedPostgresApplicationRecorder,
    ChainedSQLiteApplicationRecorder,
)
from ordertrail.adapters.audit.verify import chained as chained_recorder
from ordertrail.adapters.audit.verify import verify_all, verify_log
from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.application.catalog import ChangePrice, RegisterProduct
from ordertrail.application.errors import ConcurrencyConflict
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Actor, EventMeta, Product
from tests.audit import RawLog, open_chained, open_unchained, write_history
from tests.support.builders import cny, customer, order_of, staff
from tests.support.clock import FakeClock

CHAINED: dict[str, type] = {
    "sqlite": ChainedSQLiteApplicationRecorder,
    "postgres": ChainedPostgresApplicationRecorder,
}
TRACKING: dict[str, type] = {"sqlite": SQLiteTrackingRecorder, "postgres": PostgresTrackingRecorder}


@pytest.fixture
def chained(store_settings: Settings, clock: FakeClock) -> Iterator[Ordertrail]:
    with open_chained(store_settings, clock) as ot:
        yield ot


def test_every_deployment_chains_every_log_and_only_those(store_settings: Settings) -> None:
    with open_ordertrail(store_settings) as ot:
        for app in ot.applications:
            assert isinstance(app.recorder, CHAINED[store_settings.backend]), app.name
        # the process managers' positions are kept by the library's tracking recorder
        positions: object = ot.positions
        assert isinstance(positions, TRACKING[store_settings.backend])
        assert getattr(positions, "select_chain", None) is None
    with open_ordertrail(Settings(database_url="memory:")) as memory:
        assert getattr(memory.orders.recorder, "select_chain", None) is None


def test_a_fresh_log_is_chained_from_its_first_event(
    chained: Ordertrail, clock: FakeClock, store_settings: Settings
) -> None:
    raw = RawLog(store_settings, "Catalog")
    try:
        chained.catalog.register_product(
            RegisterProduct("TEA-9", "Lapsang", "tea", cny(900)), staff()
        )
        first = raw.positions()[0]
        prev, _ = raw.link(first)
        assert prev == bytes(32)
        assert verify_log(chained.catalog.recorder).count == len(raw.positions())
    finally:
        raw.close()


# --- the chain is written in the events' transaction ------------------------------------


def test_events_are_not_stored_when_their_link_cannot_be_computed(
    chained: Ordertrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ordertrail.adapters.audit import recorders

    chained.catalog.register_product(RegisterProduct("TEA-8", "Keemun", "tea", cny(800)), staff())
    head = chained.catalog.head()

    def broken(*_: object) -> list[tuple[int, bytes, bytes]]:
        raise RuntimeError("the chain could not be computed")

    monkeypatch.setattr(recorders, "chain_hashes", broken)
    with pytest.raises(RuntimeError):
        chained.catalog.register_product(
            RegisterProduct("TEA-9", "Lapsang", "tea", cny(900)), staff()
        )
    monkeypatch.undo()
    assert chained.catalog.head() == head  # nothing was committed
    chained.catalog.register_product(RegisterProduct("TEA-9", "Lapsang", "tea", cny(900)), staff())
    assert verify_log(chained.catalog.recorder).ok


def test_events_are_not_stored_when_the_database_refuses_their_link(
    chained: Ordertrail, store_settings: Settings
) -> None:
    chained.catalog.register_product(RegisterProduct("TEA-8", "Keemun", "tea", cny(800)), staff())
    raw = RawLog(store_settings, "Catalog")
    try:
        before = raw.positions()
        # a chain row already stands where the next event's link must go
        taken = raw.next_position()
        raw.insert_link(taken, bytes(32), bytes(32))
        product = Product.register(
            sku="TEA-9",
            title="Lapsang",
            category="tea",
            price=cny(900),
            meta=EventMeta(Actor.system("test"), uuid4(), uuid4()),
            now=datetime.now(UTC),
        )
        with pytest.raises(IntegrityError):
            chained.catalog.save_all([product])
        assert raw.positions() == before  # the events were rolled back with their link
        raw.delete_link(taken)
        chained.catalog.register_product(
            RegisterProduct("TEA-9", "Lapsang", "tea", cny(900)), staff()
        )
        assert len(raw.positions()) == len(before) + 2  # the product and its command receipt
        assert verify_log(chained.catalog.recorder).ok
    finally:
        raw.close()


# --- logs written before the chain --------------------------------------------------------


def test_a_log_written_before_the_chain_is_chained_by_its_next_write(
    store_settings: Settings, clock: FakeClock
) -> None:
    with open_unchained(store_settings, clock) as plain:  # the library's own recorders
        write_history(plain, clock)
    with open_chained(store_settings, clock) as ot:
        before = verify_log(ot.orders.recorder)
        assert before.broken is not None
        assert (before.broken.kind, before.broken.position) == ("unchained", 1)
        ot.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer())
        after = verify_log(ot.orders.recorder)
        assert after.ok, str(after)
        assert after.count == len(ot.orders.recorder.select_notifications(0, 10_000))


def test_a_log_that_is_not_written_to_is_sealed_once(
    store_settings: Settings, clock: FakeClock
) -> None:
    with open_unchained(store_settings, clock) as plain:
        write_history(plain, clock)
    with open_chained(store_settings, clock) as ot:
        recorder = chained_recorder(ot.logistics.recorder)
        assert not verify_log(recorder).ok
        sealed = recorder.seal_existing()
        assert sealed == len(recorder.select_notifications(0, 10_000)) > 0
        assert verify_log(recorder).ok
        with pytest.raises(IntegrityError, match="already has rows"):
            recorder.seal_existing()


@pytest.mark.postgres
def test_the_postgres_recorder_refuses_the_database_function_path(
    postgres_schema_url: str,
) -> None:
    target = Settings(database_url=postgres_schema_url).postgres()
    datastore = PostgresDatastore(
        target.dbname,
        target.host,
        str(target.port),
        target.user,
        target.password,
        schema=target.schema,
        enable_db_functions=True,
    )
    try:
        with pytest.raises(ProgrammingError, match="ENABLE_DB_FUNCTIONS"):
            ChainedPostgresApplicationRecorder(datastore, events_table_name="x_events")
    finally:
        datastore.close()


# --- concurrent writers ------------------------------------------------------------------

THREADS = 6
SAVES_PER_THREAD = 20


def _write_concurrently(deployments: list[Ordertrail]) -> None:
    """``THREADS`` writers, spread over ``deployments`` (each its own connections), each
    registering products and changing one shared product: version conflicts, rolled-back
    inserts and, on PostgreSQL, burnt notification ids."""
    deployments[0].catalog.register_product(
        RegisterProduct("HOT-1", "Hot", "tea", cny(100)), staff()
    )
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        ot = deployments[worker % len(deployments)]
        try:
            start.wait()
            for n in range(SAVES_PER_THREAD):
                ot.catalog.register_product(
                    RegisterProduct(f"W{worker}-{n}", "Tea", "tea", cny(100 + n)), staff()
                )
                with contextlib.suppress(ConcurrencyConflict):
                    ot.catalog.change_price(
                        ChangePrice("HOT-1", cny(101 + worker * 100 + n)), staff()
                    )
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def _one_valid_chain(ot: Ordertrail) -> None:
    report = verify_log(ot.catalog.recorder, application="Catalog", batch_size=50)
    assert report.ok, str(report)
    events = ot.catalog.recorder.select_notifications(0, 100_000)
    assert report.count == len(events) >= 1 + THREADS * SAVES_PER_THREAD
    assert report.head_position == events[-1].id


def test_concurrent_writers_from_two_deployments_make_one_valid_chain(
    store_settings: Settings,
) -> None:
    """Two deployments on one store stand for two processes (separate connections)."""
    with open_chained(store_settings) as first, open_chained(store_settings) as second:
        _write_concurrently([first, second])
        _one_valid_chain(first)
        assert all(report.ok for report in verify_all(second))


@pytest.mark.postgres
def test_concurrent_writers_through_one_pool_make_one_valid_chain(
    postgres_schema_url: str,
) -> None:
    with open_chained(Settings(database_url=postgres_schema_url)) as ot:
        _write_concurrently([ot])
        _one_valid_chain(ot)
