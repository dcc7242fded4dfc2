"""The read store on PostgreSQL sizes its pool from the URL, like the event store."""

from __future__ import annotations

import pytest

from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings
from ordertrail.projections.store import PostgresReadStore, ReadStore


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "size"), [("", 15), ("&pool_size=8&max_overflow=16", 24)])
def test_the_read_store_pool_follows_the_url(
    postgres_schema_url: str, query: str, size: int
) -> None:
    store = read_store(Settings(database_url=postgres_schema_url + query))
    try:
        assert isinstance(store, PostgresReadStore)
        assert store.pool.max_size == size
    finally:
        store.close()


def test_a_single_statement_commits_alone_and_leaves_transactions_as_they_were(
    backend: str, store_settings: Settings
) -> None:
    """``single`` runs in autocommit on PostgreSQL: the connection must go back to the
    pool able to roll a later transaction back."""
    url = store_settings.database_url
    if backend == "postgres":
        url += "&pool_size=1&max_overflow=0"  # one connection: the same one each time
    store = read_store(Settings(database_url=url))
    try:
        with store.transaction() as tx:
            tx.ddl("CREATE TABLE IF NOT EXISTS kv (k {text} PRIMARY KEY, v {int} NOT NULL)")
        with store.single() as tx:
            assert tx.count("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", 1)) == 1
        with pytest.raises(RuntimeError, match="rolled back"):
            insert_then_fail(store)
        with store.read() as tx:
            assert tx.all("SELECT k, v FROM kv ORDER BY k") == [("a", 1)]
        if isinstance(store, PostgresReadStore):
            with store.pool.connection() as conn:
                assert conn.autocommit is False
    finally:
        store.close()


def insert_then_fail(store: ReadStore) -> None:
    with store.transaction() as tx:
        tx.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("b", 2))
        raise RuntimeError("rolled back")
