"""Where read models live: an SQLite file on the embedded default, tables in the
PostgreSQL schema of the event store in production.

Read models write SQL once, with ``?`` placeholders and these type words, which the store
turns into its dialect: ``{int}`` (64-bit integer), ``{text}``, ``{bool}``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any] | Mapping[str, Any]

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"int": "INTEGER", "text": "TEXT", "bool": "INTEGER"},
    "postgres": {"int": "BIGINT", "text": "TEXT", "bool": "BOOLEAN"},
}


class Tx:
    """One transaction (or one read) on a read store."""

    def __init__(self, dialect: Dialect, cursor: Any, pipeline: Any = None) -> None:
        self.dialect = dialect
        self._cursor = cursor
        self._pipeline = pipeline

    def ddl(self, statement: str) -> None:
        self._cursor.execute(statement.format(**_TYPES[self.dialect]))

    def execute(self, statement: str, params: Params = ()) -> None:
        """Run one statement. In a pipelined transaction (a projection batch on
        PostgreSQL) it is sent without waiting for its result; use ``count`` when the
        number of rows it changed matters."""
        self._cursor.execute(self._dialect_sql(statement), params)

    def count(self, statement: str, params: Params = ()) -> int:
        """Run one statement and return the number of rows it changed."""
        self._cursor.execute(self._dialect_sql(statement), params)
        if self._pipeline is not None:
            self._pipeline.sync()
        return int(self._cursor.rowcount)

    def _dialect_sql(self, statement: str) -> str:
        if self.dialect == "postgres":
            return statement.replace("%", "%%").replace("?", "%s")
        return statement

    def executemany(self, statement: str, rows: Sequence[Params]) -> None:
        if rows:
            self._cursor.executemany(self._dialect_sql(statement), rows)

    def one(self, statement: str, params: Params = ()) -> tuple[Any, ...] | None:
        self.execute(statement, params)
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def all(self, statement: str, params: Params = ()) -> list[tuple[Any, ...]]:
        self.execute(statement, params)
        return [tuple(row) for row in self._cursor.fetchall()]

    def scalar(self, statement: str, params: Params = ()) -> Any:
        row = self.one(statement, params)
        return None if row is None else row[0]


#: Rows per coalesced INSERT, and the most parameters one statement may carry (SQLite
#: allows 32,766).
ROWS_PER_INSERT = 500
MAX_PARAMETERS = 32_000

#: One row's insert of placeholders only, with nothing after it but perhaps
#: ``ON CONFLICT (...) DO NOTHING`` (no RETURNING, no DO UPDATE).
_HOLDABLE_INSERT = re.compile(
    r"\s*INSERT INTO (\w+)\s*\(([^()]*)\)\s*VALUES\s*\((\s*\?\s*(?:,\s*\?\s*)*)\)"
    r"(\s*ON CONFLICT\s*\([^()]*\)\s*DO NOTHING)?\s*"
)


class BatchTx(Tx):
    """A projection batch's transaction: one-row INSERTs of placeholders (``execute`` or
    ``executemany``; ``ON CONFLICT DO NOTHING`` allowed) are held and sent as one
    multi-row INSERT per statement, just before any other statement and at the end.

    Read models insert a few rows per event (an order placed is a row in each of five
    tables of order tracking, three of the dashboard, ...): one statement each was most
    of the projector's CPU and statements. Holding the inserts back is safe because read
    models have no foreign keys or triggers: inserts into different tables commute, the
    rows of one table keep their order (one statement per table is held at a time; an
    ``ON CONFLICT DO NOTHING`` insert skips a row whose key an earlier row of the same
    statement took, as it would one inserted before it), and anything else — an update, a delete, a
    query, an insert with DO UPDATE or RETURNING — first sends what is held, so it sees
    (and orders after) every row inserted before it."""

    def __init__(self, dialect: Dialect, cursor: Any, pipeline: Any = None) -> None:
        super().__init__(dialect, cursor, pipeline)
        self._held: dict[str, list[Sequence[Any]]] = {}
        self._held_for: dict[str, str] = {}  # table -> the one statement held for it

    def execute(self, statement: str, params: Params = ()) -> None:
        if isinstance(params, Sequence) and self._hold(statement):
            self._held[statement].append(params)
            return
        self.flush()
        super().execute(statement, params)

    def _hold(self, statement: str) -> bool:
        """Whether rows of ``statement`` can be held (then its list is ready)."""
        match = _HOLDABLE_INSERT.fullmatch(statement)
        if match is None:
            return False
        table = match.group(1)
        if self._held_for.setdefault(table, statement) != statement:
            # Another statement into the same table (with or without ON CONFLICT):
            # what is held goes first, so that the table sees its rows in order.
            self.flush()
            self._held_for[table] = statement
        self._held.setdefault(statement, [])
        return True

    def count(self, statement: str, params: Params = ()) -> int:
        self.flush()
        return super().count(statement, params)

    def executemany(self, statement: str, rows: Sequence[Params]) -> None:
        if all(isinstance(row, Sequence) for row in rows) and self._hold(statement):
            self._held[statement].extend(rows)  # type: ignore[arg-type]
            return
        self.flush()
        super().executemany(statement, rows)

    def ddl(self, statement: str) -> None:
        self.flush()
        super().ddl(statement)

    def flush(self) -> None:
        """Send the held inserts (statements in the order they were first used)."""
        held, self._held = self._held, {}
        self._held_for.clear()
        for statement, rows in held.items():
            match = _HOLDABLE_INSERT.fullmatch(statement)
            assert match is not None
            table, columns, placeholders, on_conflict = match.groups()
            width = placeholders.count("?")
            per_statement = max(1, min(ROWS_PER_INSERT, MAX_PARAMETERS // width))
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                values = ", ".join([f"({placeholders})"] * len(chunk))
                super().execute(
                    f"INSERT INTO {table} ({columns}) VALUES {values}{on_conflict or ''}",
                    tuple(value for row in chunk for value in row),
                )


class Listener:
    """Waits for new events by polling: the embedded default has no notifications."""

    def wait(self, timeout: float) -> None:
        threading.Event().wait(timeout)

    def close(self) -> None:
        return None


class PostgresListener(Listener):
    """LISTENs on the event tables' channels (the event store NOTIFYs on every insert).

    It listens before the caller's next poll, so an insert after that poll always wakes it.
    A lost connection (the server restarted) never reaches the caller: the wait becomes a
    plain sleep and the next wait connects again, so the worker keeps polling meanwhile.
    """

    def __init__(self, conninfo: str, channels: Sequence[str]) -> None:
        self._conninfo = conninfo
        self._channels = tuple(channels)
        self._conn: psycopg.Connection[Any] | None = None
        self._connect()

    def _connect(self) -> None:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as error:
            log.warning("read store: cannot listen for new events (%s); polling", error)
            return
        try:
            for channel in self._channels:
                conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(channel)))
        except psycopg.Error:
            conn.close()
            return
        self._conn = conn

    def wait(self, timeout: float) -> None:
        if self._conn is None:
            self._connect()
            if self._conn is None:
                time.sleep(timeout)
                return
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                break
        except psycopg.Error as error:
            log.warning("read store: lost the event listener (%s); reconnecting", error)
            self.close()
            time.sleep(timeout)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class ReadStore(ABC):
    dialect: Dialect

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A read-write transaction, committed if the block ends normally."""

    @contextmanager
    def batch(self) -> Iterator[Tx]:
        """A read-write transaction for many small writes (``BatchTx``; pipelined on
        PostgreSQL)."""
        with self.transaction() as tx:
            batch = BatchTx(tx.dialect, tx._cursor)
            yield batch
            batch.flush()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read (a transaction that is never committed)."""
        with self.transaction() as tx:
            yield tx

    @contextmanager
    def single(self) -> Iterator[Tx]:
        """For one statement that is a transaction on its own (committed when it ends;
        one round trip where the store can)."""
        with self.transaction() as tx:
            yield tx

    def listener(self, channels: Sequence[str]) -> Listener:
        """Something to wait on until new events may have been recorded."""
        return Listener()

    def close(self) -> None:
        return None


class SQLiteReadStore(ReadStore):
    """One SQLite file (WAL mode) holding every read model of the embedded default."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._uri = path.startswith("file:")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, uri=self._uri, isolation_level=None, timeout=30, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self._connection()
        with self._write_lock:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Tx("sqlite", cursor)
            except BaseException:
                conn.rollback()
                raise
            else:
                conn.commit()
            finally:
                cursor.close()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        conn = self._connection()
        cursor = conn.cursor()
        cursor.execute("BEGIN")
        try:
            yield Tx("sqlite", cursor)
        finally:
            conn.rollback()
            cursor.close()


class PostgresReadStore(ReadStore):
    """Read-model tables in the event store's PostgreSQL schema."""

    dialect: Dialect = "postgres"

    def __init__(self, conninfo: str, schema: str = "public", pool_size: int = 4) -> None:
        self.conninfo = conninfo
        self.schema = schema
        search_path = pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema))

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(search_path)
            conn.commit()

        self.pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            configure=configure,
            open=True,
            kwargs={"row_factory": tuple_row},
            name="ordertrail-read-store",
        )

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield Tx("postgres", cursor)

    @contextmanager
    def batch(self) -> Iterator[Tx]:
        with (
            self.pool.connection() as conn,
            conn.pipeline() as pipeline,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            batch = BatchTx("postgres", cursor, pipeline)
            yield batch
            batch.flush()

    @contextmanager
    def single(self) -> Iterator[Tx]:
        # Autocommit for the statement: one round trip instead of BEGIN, it, COMMIT. The
        # connection goes back to the pool as it came (not autocommit).
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cursor:
                    yield Tx("postgres", cursor)
            finally:
                conn.autocommit = False

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """One snapshot for every query of the read (as SQLite's read transaction is), so
        a batch a worker commits meanwhile is seen whole or not at all."""
        with (
            self.pool.connection() as conn,
            conn.transaction(force_rollback=True),
            conn.cursor() as cursor,
        ):
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield Tx("postgres", cursor)

    def listener(self, channels: Sequence[str]) -> Listener:
        return PostgresListener(self.conninfo, channels)

    def close(self) -> None:
        self.pool.close()
