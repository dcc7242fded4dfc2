"""The placement writers' advisory lock on a real PostgreSQL: writers take turns, a writer
that cannot get it goes ahead without it, and a lost connection is replaced."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.settings import Settings
from ordertrail.adapters.writer_lock import (
    AdvisoryWriterLock,
    advisory_key,
    placement_writer_lock,
)
from ordertrail.application.processes import StockReleaser
from tests.support.builders import customer, order_of, stocked_product

pytestmark = pytest.mark.postgres


def conninfo_of(url: str) -> str:
    return Settings(database_url=url).postgres().conninfo()


def holders(conninfo: str, key: int) -> int:
    """Sessions holding the advisory lock ``key`` now."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (key,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_writers_take_turns(postgres_schema_url: str) -> None:
    conninfo = conninfo_of(postgres_schema_url)
    first = AdvisoryWriterLock(conninfo, "turns")
    second = AdvisoryWriterLock(conninfo, "turns")
    order: list[str] = []
    inside = threading.Event()

    def other_writer() -> None:
        inside.wait(5)
        with second() as locked:
            order.append(f"second:{locked}")

    thread = threading.Thread(target=other_writer)
    thread.start()
    with first() as locked:
        assert locked
        assert holders(conninfo, first.key) == 1
        inside.set()
        time.sleep(0.3)  # the other writer is waiting for the lock meanwhile
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second:True"]
    assert holders(conninfo, first.key) == 0
    assert (first.turns, second.turns, second.skipped) == (1, 1, 0)
    first.close()
    second.close()


def test_stores_in_other_schemas_do_not_share_the_lock(postgres_schema_url: str) -> None:
    conninfo = conninfo_of(postgres_schema_url)
    a, b = AdvisoryWriterLock(conninfo, "shop_a"), AdvisoryWriterLock(conninfo, "shop_b")
    assert a.key != b.key
    with a() as got_a, b() as got_b:
        assert got_a
        assert got_b
    a.close()
    b.close()


def test_a_writer_that_cannot_get_the_lock_in_time_goes_ahead(postgres_schema_url: str) -> None:
    conninfo = conninfo_of(postgres_schema_url)
    holder = AdvisoryWriterLock(conninfo, "stuck")
    waiter = AdvisoryWriterLock(conninfo, "stuck", wait_seconds=0.2)
    with holder():
        with waiter() as locked:
            assert not locked
        assert waiter.skipped == 1
    with waiter() as locked:  # the same connection still works afterwards
        assert locked
    holder.close()
    waiter.close()


def test_a_lost_connection_is_replaced(postgres_schema_url: str) -> None:
    conninfo = conninfo_of(postgres_schema_url)
    lock = AdvisoryWriterLock(conninfo, "lost")
    with lock():
        pass
    assert lock._conn is not None
    pid = lock._conn.info.backend_pid
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with lock() as locked:  # the dead connection fails this turn: no lock, no error
        assert not locked
    with lock() as locked:  # and the next turn reconnects
        assert locked
    assert lock._conn is not None
    assert lock._conn.info.backend_pid != pid
    assert holders(conninfo, lock.key) == 0
    lock.close()


def test_an_unreachable_server_means_no_lock_not_an_error() -> None:
    lock = AdvisoryWriterLock("host=127.0.0.1 port=1 dbname=none user=none", "gone")
    with lock() as locked:
        assert not locked
    assert (lock.turns, lock.skipped) == (0, 1)


def test_only_postgres_has_a_writer_lock(tmp_path: object, postgres_schema_url: str) -> None:
    assert placement_writer_lock(Settings(database_url=f"sqlite:///{tmp_path}")) is None
    lock = placement_writer_lock(Settings(database_url=postgres_schema_url))
    assert lock is not None
    schema = Settings(database_url=postgres_schema_url).postgres().schema
    assert lock.key == advisory_key(f"ordertrail:placement-writer:{schema}")


def test_the_stock_releaser_waits_its_turn_with_the_placement_writers(
    postgres_schema_url: str,
) -> None:
    """The releaser holds the writers' lock around a page: while a writer holds it the
    release waits, and it goes through once the writer lets go."""
    settings = Settings(database_url=postgres_schema_url)
    with open_ordertrail(settings) as ot:
        releaser = next(f for f in ot.followers if isinstance(f, StockReleaser))
        assert isinstance(releaser.writer_lock, AdvisoryWriterLock)
        stocked_product(ot, "TEA-1", 30, 10)
        ctx = customer()
        placed = ot.ordering.place_order(order_of(("TEA-1", 2), total=60), ctx)
        order_id = placed.value.order_id
        # Cancelled by someone whose process died before it gave the stock back.
        order = ot.orders.order(order_id)
        order.cancel("changed mind", meta=ctx.meta, now=ot.orders.clock())
        ot.orders.save_all([order])
        assert ot.inventory.stock_level("TEA-1").reserved == 2
        writer = placement_writer_lock(settings)
        assert writer is not None
        with writer():  # a placement batch being decided and saved
            done = threading.Thread(target=releaser.run_until_idle)
            done.start()
            time.sleep(0.5)
            assert done.is_alive()  # waiting for its turn
            assert ot.inventory.stock_level("TEA-1").reserved == 2
        done.join(10)
        assert not done.is_alive()
        assert ot.inventory.stock_level("TEA-1").reserved == 0
        assert releaser.writer_lock.turns >= 1
        writer.close()
