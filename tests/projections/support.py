"""Read stores for tests, and a small read model that counts events exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from ordertrail.adapters.settings import Settings
from ordertrail.projections.readmodel import Position, ReadModel
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
        tx.ddl("CREATE TABLE IF NOT EXISTS counted_events ("
               " aggregate {text} PRIMARY KEY, events {int} NOT NULL)")
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
