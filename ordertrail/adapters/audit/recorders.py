"""Application recorders that chain every stored event to the previous one of its log.

Select them with the eventsourcing env key ``APPLICATION_RECORDER_TOPIC``::

    ordertrail.adapters.audit.recorders:ChainedSQLiteApplicationRecorder
    ordertrail.adapters.audit.recorders:ChainedPostgresApplicationRecorder

The hashes live in a side table (the library's events table is not altered):

- SQLite: ``event_chain`` in each application's database file;
- PostgreSQL: ``<events table>_chain`` in the same schema (``orders_events_chain``).

Each row is ``(position, prev_hash, hash)``: the notification id of the event, the hash
of the event before it in the log and its own hash (``chain.link_hash``). The rows are
written in the transaction that inserts the events, after the insert, so they use the
notification ids it returned and read the previous hash while this writer is the only
one: on PostgreSQL the library holds ``LOCK TABLE <events> IN EXCLUSIVE MODE`` by then;
on SQLite the insert has taken the database's single write lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ordertrail.adapters.audit.chain import GENESIS, HASH_SIZE, Link, chain_hashes

if TYPE_CHECKING:
    from psycopg import Cursor
    from psycopg.rows import DictRow

SQLITE_CHAIN_TABLE = "event_chain"
SEAL_BATCH = 5_000

ChainRow = tuple[int, bytes, bytes]
EventRow = tuple[int, str, int, str, bytes]


class ChainedRecorder(Protocol):
    """What the verifier and the exports need from a chained recorder."""

    @property
    def chain_table(self) -> str: ...

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def select_stored(self, after: int, stop: int, limit: int) -> list[EventRow]:
        """Events with ``after < position <= stop``, in position order, as ``(position,
        originator id as hashed, version, topic, state)``: read as the verifier needs
        them, without building the library's notification objects."""
        ...

    def select_chain(self, after: int, stop: int, limit: int) -> list[ChainRow]:
        """Chain rows with ``after < position <= stop``, in position order."""
        ...

    def log_stop(self) -> int:
        """The highest position of the log, events or chain rows (0 when empty), read in
        one statement: every row at or below it is committed and stays put."""
        ...

    def select_links(self, originator_id: UUID | str) -> list[Link]:
        """The events of one aggregate with their chain rows, in version order."""
        ...

    def seal_existing(self) -> int:
        """Chain a log's events written before the chain existed (see the module)."""
        ...


def _prev_hash(head: object) -> bytes:
    """What a new link follows: the newest chain row's hash (``GENESIS`` for none). A
    malformed stored hash (tampering) does not stop writes: the new link follows its
    digest, and the verifier reports the malformed row."""
    if head is None:
        return GENESIS
    raw = _as_bytes(head)
    return raw if len(raw) == HASH_SIZE else hashlib.sha256(raw).digest()


def _as_bytes(value: object) -> bytes:
    """A stored hash as bytes, whatever an SQLite column was made to hold."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _coerced(row: tuple[Any, ...]) -> EventRow:
    """An event row whose columns do not hold the types the library writes (a NULL
    state or topic; on SQLite, whose columns take any type, text for bytes and so on),
    as values that hash: the verifier then reports the row as changed, instead of
    failing on it or taking it for a deleted event."""
    position, originator_id, version, topic, state = row

    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return "" if value is None else str(value)

    if not isinstance(state, bytes):
        state = text(state).encode("utf-8")
    version = version if type(version) is int else -1
    return int(position), text(originator_id), version, text(topic), state


def _ordered(
    ids: Sequence[int], stored_events: Sequence[StoredEvent], key: Any
) -> list[tuple[int, UUID | str, int, str, bytes]]:
    if len(ids) != len(stored_events):
        msg = f"got {len(ids)} notification ids for {len(stored_events)} events"
        raise ProgrammingError(msg)
    return sorted(
        (
            (position, key(s.originator_id), s.originator_version, s.topic, s.state)
            for position, s in zip(ids, stored_events, strict=True)
        ),
        key=lambda row: row[0],
    )


# --- SQLite --------------------------------------------------------------------------------


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """``SQLiteApplicationRecorder`` plus an ``event_chain`` table in the same file."""

    chain_table = SQLITE_CHAIN_TABLE

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        chain, events = self.chain_table, self.events_table_name
        self.select_chain_head_statement = (
            f"SELECT hash FROM {chain} ORDER BY position DESC LIMIT 1"
        )
        self.insert_chain_statement = (
            f"INSERT INTO {chain} (position, prev_hash, hash) VALUES (?,?,?)"
        )
        self.select_chain_statement = (
            f"SELECT position, prev_hash, hash FROM {chain} "
            "WHERE position>? AND position<=? ORDER BY position LIMIT ?"
        )
        self.select_unchained_statement = (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {events} "
            "WHERE rowid>? AND rowid<? ORDER BY rowid LIMIT ?"
        )
        # A UUID is stored as its 32 hex digits and hashed as str(UUID): hyphenated here.
        text_id = (
            "CASE WHEN length(originator_id) = 32 THEN lower(substr(originator_id, 1, 8) "
            "|| '-' || substr(originator_id, 9, 4) || '-' || substr(originator_id, 13, 4) "
            "|| '-' || substr(originator_id, 17, 4) || '-' || substr(originator_id, 21)) "
            "ELSE originator_id END"
            if self.datastore.originator_id_type == "uuid"
            else "originator_id"
        )
        self.select_stored_statement = (
            f"SELECT rowid, {text_id}, originator_version, topic, state FROM {events} "
            "WHERE rowid>? AND rowid<=? ORDER BY rowid LIMIT ?"
        )
        self.log_stop_statement = (
            f"SELECT max(coalesce((SELECT max(rowid) FROM {events}), 0), "
            f"coalesce((SELECT max(position) FROM {chain}), 0))"
        )
        self.select_links_statement = (
            "SELECT e.rowid AS position, e.originator_id, e.originator_version, e.topic, "
            f"e.state, c.prev_hash, c.hash FROM {events} AS e "
            f"LEFT JOIN {chain} AS c ON c.position = e.rowid "
            "WHERE e.originator_id=? ORDER BY e.originator_version"
        )

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.chain_table} ("
            "position INTEGER PRIMARY KEY, "
            "prev_hash BLOB NOT NULL, "
            "hash BLOB NOT NULL)"
        )
        return statements

    def _canonical_id(self, originator_id: UUID | str) -> UUID | str:
        # As ``select_notifications`` will read it back.
        stored = originator_id.hex if isinstance(originator_id, UUID) else originator_id
        return self.convert_originator_id(stored)

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if stored_events:
            # The events are inserted: this connection holds the database's write lock,
            # so the newest chain row cannot change under us. Any exception rolls the
            # whole transaction back, events included.
            self._insert_chain(c, list(ids or ()), stored_events)
        return ids

    def _insert_chain(
        self, c: SQLiteCursor, ids: Sequence[int], stored_events: Sequence[StoredEvent]
    ) -> None:
        events = _ordered(ids, stored_events, self._canonical_id)
        c.execute(self.select_chain_head_statement)
        row = c.fetchone()
        # No chain row yet: this is the first link; chain what the log held before it.
        prev = self._seal_below(c, events[0][0]) if row is None else _prev_hash(row[0])
        c.executemany(self.insert_chain_statement, chain_hashes(prev, events))

    def _seal_below(self, c: SQLiteCursor, below: int) -> bytes:
        """Chain the events at positions below ``below`` (none in a log that had the
        chain from its first event); return the hash the next link follows."""
        prev, after = GENESIS, 0
        while True:
            c.execute(self.select_unchained_statement, (after, below, SEAL_BATCH))
            batch = [
                (int(r[0]), self.convert_originator_id(r[1]), int(r[2]), str(r[3]), bytes(r[4]))
                for r in c.fetchall()
            ]
            if not batch:
                return prev
            rows = chain_hashes(prev, batch)
            c.executemany(self.insert_chain_statement, rows)
            prev, after = rows[-1][2], rows[-1][0]

    def select_stored(self, after: int, stop: int, limit: int) -> list[EventRow]:
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None  # plain tuples: faster than sqlite3.Row
            c.execute(self.select_stored_statement, (after, stop, limit))
            return [
                r
                if type(r[1]) is str
                and type(r[2]) is int
                and type(r[3]) is str
                and type(r[4]) is bytes
                else _coerced(r)
                for r in c.fetchall()
            ]

    def select_chain(self, after: int, stop: int, limit: int) -> list[ChainRow]:
        with self.datastore.transaction(commit=False) as c:
            c.sqlite_cursor.row_factory = None
            c.execute(self.select_chain_statement, (after, stop, limit))
            return [
                r
                if type(r[1]) is bytes and type(r[2]) is bytes
                else (int(r[0]), _as_bytes(r[1]), _as_bytes(r[2]))
                for r in c.fetchall()
            ]

    def log_stop(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.log_stop_statement)
            return int(c.fetchone()[0] or 0)

    def select_events_of_many(
        self, originator_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> list[StoredEvent]:
        """The events of the given aggregates (those after ``after[i]`` for the i-th,
        all of them without ``after``) in one query, ordered by aggregate and version
        (``OrdertrailApplication.find_many_as`` and ``catch_up_many``)."""
        if not originator_ids:
            return []
        params: list[Any] = []
        for index, originator_id in enumerate(originator_ids):
            params += [originator_id.hex, after[index] if after else 0]
        where = " OR ".join(["(originator_id=? AND originator_version>?)"] * len(originator_ids))
        statement = (
            f"SELECT * FROM {self.events_table_name} WHERE {where}"
            " ORDER BY originator_id, originator_version"
        )
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                StoredEvent(
                    originator_id=self.convert_originator_id(r["originator_id"]),
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=r["state"],
                )
                for r in c.fetchall()
            ]

    def select_links(self, originator_id: UUID | str) -> list[Link]:
        key = originator_id.hex if isinstance(originator_id, UUID) else originator_id
        with self.datastore.transaction(commit=False) as c:
            c.execute(self.select_links_statement, (key,))
            return [
                Link(
                    position=int(r["position"]),
                    originator_id=self.convert_originator_id(r["originator_id"]),
                    originator_version=int(r["originator_version"]),
                    topic=r["topic"],
                    state=bytes(r["state"]),
                    stored_hash=None if r["hash"] is None else bytes(r["hash"]),
                    stored_prev=None if r["prev_hash"] is None else bytes(r["prev_hash"]),
                )
                for r in c.fetchall()
            ]

    def seal_existing(self) -> int:
        with self.datastore.transaction(commit=True) as c:
            # Take the write lock first, so that no event is written while we read.
            c.execute(f"DELETE FROM {self.chain_table} WHERE 0")
            c.execute(f"SELECT count(*) FROM {self.chain_table}")
            if c.fetchone()[0]:
                msg = f"{self.chain_table} already has rows: only an unchained log is sealed"
                raise IntegrityError(msg)
            self._seal_below(c, 2**63 - 1)
            c.execute(f"SELECT count(*) FROM {self.chain_table}")
            return int(c.fetchone()[0])


# --- PostgreSQL ----------------------------------------------------------------------------


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """``PostgresApplicationRecorder`` plus a ``<events table>_chain`` table.

    How it fits the library's write path (``PostgresApplicationRecorder.insert_events``,
    one pipelined transaction): the library takes ``LOCK TABLE <events> IN EXCLUSIVE
    MODE``, inserts the events and syncs the pipeline. The insert's ``RETURNING`` clause
    is extended to return, with each notification id, the newest chain row's hash, read
    by that statement after the lock was granted (so no other writer can have moved it,
    and it costs no extra round trip). ``_fetch_ids_after_insert_events``, which the
    library calls next in the same transaction, computes the links and queues their
    insert; it is sent with the ``COMMIT`` and fails it if it fails, so events are never
    committed without their links. The lock is held until the commit, so the chain is
    written in notification-id order, which is commit order.
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            # That path inserts through a database function, without the table lock and
            # without calling _fetch_ids_after_insert_events: events would go unchained.
            msg = "the chained recorder needs POSTGRES_ENABLE_DB_FUNCTIONS off"
            raise ProgrammingError(msg)
        self.chain_table = f"{self.events_table_name}_chain"
        self.check_identifier_length(self.chain_table)
        schema = Identifier(self.datastore.schema)
        chain = Identifier(self.chain_table)
        events = Identifier(self.events_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "position bigint PRIMARY KEY, "
                "prev_hash bytea NOT NULL, "
                "hash bytea NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        # The library's statement unnests an array of a composite type, which psycopg
        # dumps as text in Python (~34 us of CPU per event); four arrays of plain types
        # sent in binary (%b) cost ~5 us. Same columns, same RETURNING, plus the chain
        # head read under the table lock.
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{events} AS t "
            "(originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id, originator_id, originator_version, "
            "(SELECT hash FROM {schema}.{chain} ORDER BY position DESC LIMIT 1) AS chain_head"
        ).format(
            schema=schema,
            events=events,
            chain=chain,
            id_type=Identifier(self.datastore.originator_id_type),
        )
        self.notify_statement = SQL("NOTIFY {0}").format(Identifier(self.channel_name))
        self.insert_chain_statement = SQL(
            "INSERT INTO {schema}.{chain} (position, prev_hash, hash) "
            "SELECT * FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[])"
        ).format(schema=schema, chain=chain)
        self.select_unchained_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s AND notification_id < %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        self.abort_statement = SQL(
            "DO $$BEGIN RAISE EXCEPTION "
            "'ordertrail.audit: the chain was not written, so neither are the events'; "
            "END$$"
        )
        self.select_chain_statement = SQL(
            "SELECT position, prev_hash, hash FROM {schema}.{chain} "
            "WHERE position > %s AND position <= %s ORDER BY position LIMIT %s"
        ).format(schema=schema, chain=chain)
        # uuid::text is str(UUID): lower case, hyphenated.
        self.select_stored_statement = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        self.log_stop_statement = SQL(
            "SELECT GREATEST((SELECT max(notification_id) FROM {schema}.{events}), "
            "(SELECT max(position) FROM {schema}.{chain})) AS stop"
        ).format(schema=schema, chain=chain, events=events)
        self.select_links_statement = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, "
            "e.state, c.prev_hash, c.hash FROM {schema}.{events} AS e "
            "LEFT JOIN {schema}.{chain} AS c ON c.position = e.notification_id "
            "WHERE e.originator_id = %s ORDER BY e.originator_version"
        ).format(schema=schema, chain=chain, events=events)
        # The common read of a log (after a position, all topics), for catch-ups and
        # projections; other shapes go through the library's method.
        self.select_after_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        # Aggregates' events after a version each (find_many_as, catch_up_many): a
        # placement writer asks it once per batch.
        # A lateral subquery per key: an index lookup each, whatever the table's
        # statistics say. As a plain join, a table that grew faster than autovacuum
        # analysed it (a sale) was read whole (a hash join over a sequential scan): 4.6 ms
        # for 15 keys over 8,000 events, and growing with the table.
        self.select_events_of_many_statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state"
            " FROM unnest(%b::uuid[], %b::bigint[]) AS k(id, after)"
            " CROSS JOIN LATERAL (SELECT * FROM {schema}.{events} s"
            " WHERE s.originator_id = k.id AND s.originator_version > k.after OFFSET 0) e"
            " ORDER BY e.originator_id, e.originator_version"
        ).format(schema=schema, events=events)
        # Rendered once: psycopg renders a composed statement (quoting every identifier)
        # on each execute, ~6 % of a placement writer's CPU.
        self.insert_events_statement = self.insert_events_statement.as_string()
        self.notify_statement = self.notify_statement.as_string()
        self.insert_chain_statement = self.insert_chain_statement.as_string()
        self.max_notification_id_statement = self.max_notification_id_statement.as_string()
        self.select_after_statement = self.select_after_statement.as_string()
        self.select_events_of_many_statement = self.select_events_of_many_statement.as_string()
        self.lock_table_statements = [
            s if isinstance(s, str | bytes) else s.as_string() for s in self.lock_table_statements
        ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        if start is None or inclusive_of_start or stop is not None or topics:
            return super().select_notifications(
                start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        return self._select_after(start, limit)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _select_after(self, start: int, limit: int) -> list[Notification]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_after_statement, (start, limit), prepare=True)
            return [
                Notification(
                    id=row[0],
                    originator_id=row[1],
                    originator_version=row[2],
                    topic=row[3],
                    state=bytes(row[4]),
                )
                for row in curs.fetchall()
            ]

    def _canonical_id(self, originator_id: UUID | str) -> UUID | str:
        # As the database returns it: a uuid column gives back a UUID.
        if self.datastore.originator_id_type == "uuid":
            return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        return str(originator_id)

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **_: Any,
    ) -> None:
        # As the library's (lock the table, notify, insert), with the insert above.
        self._lock_table(curs)
        curs.execute(self.notify_statement)
        curs.execute(
            self.insert_events_statement,
            (
                [self._canonical_id(s.originator_id) for s in stored_events],
                [s.originator_version for s in stored_events],
                [s.topic for s in stored_events],
                [s.state for s in stored_events],
            ),
            prepare=True,
        )

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        try:
            rows = curs.fetchall()
            if len(rows) != len(stored_events):
                msg = f"got {len(rows)} notification ids for {len(stored_events)} events"
                raise ProgrammingError(msg)
            # Pair ids with events by key, not by the order of the RETURNING rows.
            position = {
                (self._canonical_id(r["originator_id"]), int(r["originator_version"])): int(
                    r["notification_id"]
                )
                for r in rows
            }
            ids = [
                position[(self._canonical_id(s.originator_id), s.originator_version)]
                for s in stored_events
            ]
            head = rows[0]["chain_head"] if rows else None
            self._insert_chain(curs, ids, stored_events, head)
        except Exception:
            # The library catches this and leaves the transaction block normally, which
            # would COMMIT the events without their links: abort the transaction first.
            self._abort_transaction(curs)
            raise
        # In the order of ``stored_events``, as the library's own method returns them.
        return ids

    def _insert_chain(
        self,
        curs: Cursor[DictRow],
        ids: Sequence[int],
        stored_events: Sequence[StoredEvent],
        head: bytes | None,
    ) -> None:
        events = _ordered(ids, stored_events, self._canonical_id)
        # No chain row yet: this is the first link; chain what the log held before it.
        prev = self._seal_below(curs, events[0][0]) if head is None else _prev_hash(head)
        rows = chain_hashes(prev, events)
        # Not fetched: queued in the pipeline, it goes with the COMMIT, which fails (and
        # raises from ``insert_events``) if this insert fails.
        curs.execute(
            self.insert_chain_statement,
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            prepare=True,
        )

    def _seal_below(self, curs: Cursor[DictRow], below: int) -> bytes:
        """Chain the events at positions below ``below`` (none in a log that had the
        chain from its first event); return the hash the next link follows."""
        prev, after = GENESIS, 0
        while True:
            curs.execute(self.select_unchained_statement, (after, below, SEAL_BATCH))
            batch: list[tuple[int, UUID | str, int, str, bytes]] = [
                (
                    int(r["notification_id"]),
                    r["originator_id"],
                    int(r["originator_version"]),
                    r["topic"],
                    bytes(r["state"]),
                )
                for r in curs.fetchall()
            ]
            if not batch:
                return prev
            rows = chain_hashes(prev, batch)
            curs.execute(
                self.insert_chain_statement,
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            )
            prev, after = rows[-1][2], rows[-1][0]

    def _abort_transaction(self, curs: Cursor[DictRow]) -> None:
        with contextlib.suppress(Exception):
            curs.execute(self.abort_statement)
            curs.fetchall()

    def select_stored(self, after: int, stop: int, limit: int) -> list[EventRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_stored_statement, (after, stop, limit), prepare=True)
            return [
                r if r[3] is not None and r[4] is not None else _coerced(r) for r in curs.fetchall()
            ]

    def select_chain(self, after: int, stop: int, limit: int) -> list[ChainRow]:
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_chain_statement, (after, stop, limit), prepare=True)
            return curs.fetchall()

    def log_stop(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.log_stop_statement)
            row = curs.fetchone()
            return int(row["stop"] or 0) if row is not None else 0

    def select_events_of_many(
        self, originator_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> list[StoredEvent]:
        """The events of the given aggregates (those after ``after[i]`` for the i-th,
        all of them without ``after``) in one query, ordered by aggregate and version
        (``OrdertrailApplication.find_many_as`` and ``catch_up_many``)."""
        if not originator_ids:
            return []
        versions = list(after) if after else [0] * len(originator_ids)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_events_of_many_statement, (list(originator_ids), versions))
            return [
                StoredEvent(
                    originator_id=r["originator_id"],
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=bytes(r["state"]),
                )
                for r in curs.fetchall()
            ]

    def select_links(self, originator_id: UUID | str) -> list[Link]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_links_statement, (originator_id,))
            return [
                Link(
                    position=int(r["notification_id"]),
                    originator_id=r["originator_id"],
                    originator_version=int(r["originator_version"]),
                    topic=r["topic"],
                    state=bytes(r["state"]),
                    stored_hash=None if r["hash"] is None else bytes(r["hash"]),
                    stored_prev=None if r["prev_hash"] is None else bytes(r["prev_hash"]),
                )
                for r in curs.fetchall()
            ]

    def seal_existing(self) -> int:
        schema = Identifier(self.datastore.schema)
        chain = Identifier(self.chain_table)
        count = SQL("SELECT count(*) AS n FROM {}.{}").format(schema, chain)
        with self.datastore.transaction(commit=True) as curs:
            for statement in self.lock_table_statements:
                curs.execute(statement)
            curs.execute(count)
            row = curs.fetchone()
            if row is not None and row["n"]:
                msg = f"{self.chain_table} already has rows: only an unchained log is sealed"
                raise IntegrityError(msg)
            self._seal_below(curs, 2**63 - 1)
            curs.execute(count)
            row = curs.fetchone()
            return int(row["n"]) if row is not None else 0


def links_of(recorder: ChainedRecorder, originator_ids: Iterable[UUID]) -> list[Link]:
    """The chained events of several aggregates of one log, in position order."""
    found = [link for oid in originator_ids for link in recorder.select_links(oid)]
    return sorted(found, key=lambda link: link.position)
