"""The read store on PostgreSQL sizes its pool from the URL, like the event store."""

from __future__ import annotations

import pytest

from ordertrail.adapters.read_models import read_store
from ordertrail.adapters.settings import Settings
from ordertrail.projections.store import PostgresReadStore


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
