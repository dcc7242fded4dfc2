"""Read stores for tests, and a small read model that counts events exactly."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import uuid4

import psycopg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification
from psycopg import sql

from ordertrail.adapters.settings import Settings
from ordertrail.projections.readmodel import FilteredSource, Position, ReadModel
from ordertrail.projections.store import PostgresReadStore, ReadStore, SQLiteReadStore, Tx


def read_store_for(settings: Settings) -> ReadStore:
    if settings.backend == "postgres":
        target = settings.postgres()
        return PostgresReadStore(target.conninfo(), target.schema)
    return SQLiteReadStore(str(settings.sqlite_dir() / "projections.db"))


@contextmanager
def opened(settings: Settings) -> Iterator[ReadStore]:
    store = read_store_for(settings)
    try:
        yield store
    finally:
        store.close()


class EventCounter(ReadModel):
    """Counts the events of each aggregate, and the positions it has applied."""

    name = "event_counter"
    sources = ("Inventory",)
    delay = 0.0

    def tables(self) -> Sequence[str]:
        return ("counted_events", "counted_positions")

    def create(self, tx: Tx) -> None:
        tx.ddl(
            "CREATE TABLE IF NOT EXISTS counted_events ("
            " aggregate {text} PRIMARY KEY, events {int} NOT NULL)"
        )
        tx.ddl("CREATE TABLE IF NOT EXISTS counted_positions (position {int} PRIMARY KEY)")

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        if self.delay:
            time.sleep(self.delay)
        tx.execute(
            "INSERT INTO counted_events (aggregate, events) VALUES (?, 1)"
            " ON CONFLICT (aggregate) DO UPDATE SET events = counted_events.events + 1",
            (str(event.originator_id),),
        )
        # A second application of one position would violate this primary key.
        tx.execute("INSERT INTO counted_positions (position) VALUES (?)", (position.id,))

    @staticmethod
    def counts(store: ReadStore) -> dict[str, int]:
        with store.read() as tx:
            rows = tx.all("SELECT aggregate, events FROM counted_events")
        return {str(aggregate): int(events) for aggregate, events in rows}


class SlowEventCounter(EventCounter):
    delay = 0.002


@contextmanager
def empty_store_like(settings: Settings) -> Iterator[Settings]:
    """Settings for a new, empty store of the same kind: another SQLite directory next to
    the given one, or another schema in the same PostgreSQL database (dropped after)."""
    name = f"kb_{uuid4().hex[:12]}"
    if settings.backend != "postgres":
        yield replace(settings, database_url=f"sqlite://{settings.sqlite_dir().parent / name}")
        return
    parts = urlsplit(settings.database_url)
    query = dict(parse_qsl(parts.query))
    query["schema"] = name
    fresh = replace(settings, database_url=urlunsplit(parts._replace(query=urlencode(query))))
    try:
        yield fresh
    finally:
        with psycopg.connect(fresh.postgres().conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


class GatedSource(FilteredSource):
    """An application's log that a test can close: while closed, a worker reading it finds
    nothing new (as if that store were slow), so the other source runs ahead."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.open = True

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        if not self.open:
            return []
        return super().select_notifications(
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )


def table_rows(store: ReadStore, tables: Iterable[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the given tables, in a stable order: for comparing a model built
    incrementally with one rebuilt from scratch."""
    with store.read() as tx:
        return {table: sorted(tx.all(f"SELECT * FROM {table}"), key=repr) for table in tables}
