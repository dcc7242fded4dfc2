"""A PostgreSQL advisory lock that makes the placement writers of several processes (the
API's workers, the benchmark's load processes) take turns, one batch each.

Each process has its own ``PlacementBatcher`` with its stock records in memory. Without
the lock two writers decide batches on the same hot SKU at the same time; one of the two
saves fails on the record's version, drops the record and reads it again — for a hot
SKU, thousands of reservations — and decides its batch once more. With it, a writer
catches up from the inventory log (which holds every batch the other writers committed
before releasing the lock), decides and saves without anyone changing the record in
between. The store already serialises every inventory insert (the library locks the
table), so taking turns costs little concurrency.

The lock is an optimisation, never a guarantee the batcher relies on: a writer that
cannot get it in time, or whose lock connection is gone (PostgreSQL restarting), goes
ahead without it, and the version check on the save keeps every decision correct.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from ordertrail.adapters.settings import Settings

log = logging.getLogger(__name__)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryWriterLock:
    """``with lock(): ...`` holds a session advisory lock (named after the store's
    schema, so that stores in one database do not share it) on a connection of its own.

    Used by one thread at a time (a batcher's writer). ``turns`` counts the batches
    decided under the lock, ``skipped`` those decided without it.
    """

    def __init__(self, conninfo: str, name: str, *, wait_seconds: float = 5.0) -> None:
        self.conninfo = conninfo
        self.key = advisory_key(f"ordertrail:placement-writer:{name}")
        self.wait_seconds = wait_seconds
        self.turns = 0
        self.skipped = 0
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @contextmanager
    def __call__(self) -> Iterator[bool]:
        conn = self._acquire()
        try:
            yield conn is not None
        finally:
            if conn is not None:
                self._release(conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
            timeout_ms = int(self.wait_seconds * 1000)
            self._conn.execute(f"SET lock_timeout = {timeout_ms}")
        return self._conn

    def _acquire(self) -> psycopg.Connection[tuple[object, ...]] | None:
        try:
            conn = self._connection()
            conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        except psycopg.Error as error:
            # Not in time (another writer stuck?) or no connection: go ahead unlocked.
            log.warning("placement writer lock not taken, going ahead without it: %s", error)
            self.skipped += 1
            self._drop_if_broken()
            return None
        self.turns += 1
        return conn

    def _release(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error as error:
            # The session is gone, and its lock with it; or it is not: close it so that
            # PostgreSQL releases the lock.
            log.warning("placement writer lock not released cleanly: %s", error)
            self.close()

    def _drop_if_broken(self) -> None:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self.close()


def placement_writer_lock(settings: Settings) -> AdvisoryWriterLock | None:
    """The lock for the placement writers of the store the settings name (None where
    there is nothing to share it with: SQLite, memory)."""
    if settings.backend != "postgres":
        return None
    target = settings.postgres()
    return AdvisoryWriterLock(target.conninfo(), target.schema)
