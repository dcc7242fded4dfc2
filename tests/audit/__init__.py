"""Helpers of the audit tests: a deployment whose logs are chained (every SQLite and
PostgreSQL deployment is), a realistic history, and raw SQL access to one log's rows (to
tamper with them as an intruder would)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from ordertrail.adapters.bootstrap import open_ordertrail, prepare_store
from ordertrail.adapters.carriers import carrier_directory, load_rules
from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import ApproveCase, InspectReturn, ReceiveReturn
from ordertrail.application.aftersales_flows import CaseLineRequest, RequestCase
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.system import Ordertrail
from ordertrail.domain import PaymentMethod
from ordertrail.domain.aftersales import CaseKind, CaseReason, LineInspection
from tests.support.builders import cny, customer, order_of, staff, stocked_product
from tests.support.clock import FakeClock
from tests.support.fulfilment import deliver, ready_order, ship


def open_chained(settings: Settings, clock: FakeClock | None = None) -> Ordertrail:
    """The deployment as ``open_ordertrail`` opens it: its settings chain every log."""
    return open_ordertrail(settings, clock=clock or FakeClock())


def open_unchained(settings: Settings, clock: FakeClock | None = None) -> Ordertrail:
    """The deployment with the library's own recorders, as before the chain existed."""
    prepare_store(settings)
    env = settings.eventsourcing_env()
    del env["APPLICATION_RECORDER_TOPIC"]
    return Ordertrail(
        env,
        settings.config,
        clock=clock or FakeClock(),
        carriers=carrier_directory(
            kuaidi100_salt=settings.kuaidi100_salt, parcelhub_secret=settings.parcelhub_secret
        ),
        carrier_rules=load_rules(settings.carrier_rules),
    )


@dataclass(frozen=True)
class History:
    delivered: UUID  # shipped, delivered, with a return case inspected and refunded
    cod: UUID  # cash on delivery, delivered
    cancelled: UUID
    awaiting: UUID


def write_history(ot: Ordertrail, clock: FakeClock) -> History:
    """A shop's afternoon: products, paid and COD orders shipped and delivered, a
    cancellation, a return inspected and refunded, one order still awaiting payment."""
    stocked_product(ot, "TEA-2", 2500, 20)
    delivered = ready_order(ot, ("TEA-1", 3))
    parcel = ship(ot, delivered.order_id, (1, 2))
    deliver(ot, parcel, clock.now)
    second = ship(ot, delivered.order_id, (1, 1))
    deliver(ot, second, clock.now + timedelta(hours=2))
    case = ot.returns.request_case(
        RequestCase(
            delivered.order_id,
            CaseKind.RETURN,
            CaseReason.QUALITY_PROBLEM,
            (CaseLineRequest(1, 1),),
            ("https://img.example.com/dent.jpg",),
            "the tin is dented",
        ),
        customer(),
    ).value
    ot.aftersales.approve(ApproveCase(case.case_id, "send it back"), staff())
    ot.aftersales.receive_return(ReceiveReturn(case.case_id, clock.now, "SF1"), staff())
    ot.aftersales.inspect(
        InspectReturn(case.case_id, (LineInspection(1, accepted=1, rejected=0, note="ok"),)),
        staff(),
    )
    ot.run_processes()
    cod = ready_order(ot, ("TEA-2", 2), price=2500, method=PaymentMethod.CASH_ON_DELIVERY)
    deliver(ot, ship(ot, cod.order_id, (1, 2)), clock.now, cash=cny(5000))
    cancelled = ot.ordering.place_order(order_of(("TEA-1", 1), total=1000), customer()).value
    ot.ordering.cancel_order(CancelOrder(cancelled.order_id, "changed my mind"), customer())
    awaiting = ot.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer()).value
    ot.run_processes()
    return History(delivered.order_id, cod.order_id, cancelled.order_id, awaiting.order_id)


class RawLog:
    """One application's events and chain rows, reached with SQL behind the library."""

    def __init__(self, settings: Settings, application: str) -> None:
        self.backend = settings.backend
        name = application.lower()
        self.pg: psycopg.Connection[tuple[Any, ...]] | None = None
        self.lite: sqlite3.Connection | None = None
        if self.backend == "postgres":
            target = settings.postgres()
            self.pg = psycopg.connect(target.conninfo(), autocommit=True)
            schema = target.schema
            self.names = {
                "events": sql.Identifier(schema, f"{name}_events").as_string(self.pg),
                "chain": sql.Identifier(schema, f"{name}_events_chain").as_string(self.pg),
                "pos": "notification_id",
                "sequence": f"{schema}.{name}_events_notification_id_seq",
            }
        else:
            path = settings.sqlite_dir() / f"{name}.db"
            self.lite = sqlite3.connect(path, isolation_level=None)
            self.names = {"events": "stored_events", "chain": "event_chain", "pos": "rowid"}

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
        if self.lite is not None:
            self.lite.close()

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        text = statement.format(**self.names)
        if self.pg is not None:
            with self.pg.cursor() as cur:
                cur.execute(text.replace("?", "%s").encode(), params)
                return list(cur.fetchall()) if cur.description else []
        assert self.lite is not None
        return list(self.lite.execute(text, params).fetchall())

    def _stored_id(self, originator_id: UUID) -> Any:
        return originator_id if self.backend == "postgres" else originator_id.hex

    # --- reading ---

    def positions(self) -> list[int]:
        return [int(r[0]) for r in self.run("SELECT {pos} FROM {events} ORDER BY {pos}")]

    def event(self, position: int) -> tuple[UUID, int, str, bytes]:
        (row,) = self.run(
            "SELECT originator_id, originator_version, topic, state FROM {events} WHERE {pos} = ?",
            (position,),
        )
        oid = row[0] if isinstance(row[0], UUID) else UUID(row[0])  # SQLite stores the hex
        return oid, int(row[1]), str(row[2]), bytes(row[3])

    def link(self, position: int) -> tuple[bytes, bytes]:
        (row,) = self.run("SELECT prev_hash, hash FROM {chain} WHERE position = ?", (position,))
        return bytes(row[0]), bytes(row[1])

    def next_position(self) -> int:
        """Where the database will put the next event (on PostgreSQL, that id is drawn)."""
        if self.backend == "postgres":
            (row,) = self.run(f"SELECT nextval('{self.names['sequence']}')")
            return int(row[0]) + 1
        return max(self.positions(), default=0) + 1

    # --- tampering ---

    def set_state(self, position: int, state: bytes | None) -> None:
        self.run("UPDATE {events} SET state = ? WHERE {pos} = ?", (state, position))

    def set_originator(self, position: int, originator_id: UUID) -> None:
        self.run(
            "UPDATE {events} SET originator_id = ? WHERE {pos} = ?",
            (self._stored_id(originator_id), position),
        )

    def set_topic(self, position: int, topic: str) -> None:
        self.run("UPDATE {events} SET topic = ? WHERE {pos} = ?", (topic, position))

    def delete_event(self, position: int) -> None:
        self.run("DELETE FROM {events} WHERE {pos} = ?", (position,))

    def delete_link(self, position: int) -> None:
        self.run("DELETE FROM {chain} WHERE position = ?", (position,))

    def insert_event(
        self, position: int | None, originator_id: UUID, version: int, topic: str, state: bytes
    ) -> int:
        """Insert an event row at ``position``, or where the database puts the next one."""
        stored = self._stored_id(originator_id)
        if position is None:
            if self.backend == "postgres":
                (row,) = self.run(
                    "INSERT INTO {events} (originator_id, originator_version, topic, state) "
                    "VALUES (?, ?, ?, ?) RETURNING notification_id",
                    (stored, version, topic, state),
                )
                return int(row[0])
            assert self.lite is not None
            cursor = self.lite.execute(
                "INSERT INTO stored_events VALUES (?, ?, ?, ?)", (stored, version, topic, state)
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        self.run(
            "INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?, ?)",
            (position, stored, version, topic, state),
        )
        return position

    def insert_link(self, position: int, prev_hash: bytes, digest: bytes) -> None:
        self.run(
            "INSERT INTO {chain} (position, prev_hash, hash) VALUES (?, ?, ?)",
            (position, prev_hash, digest),
        )

    def swap_positions(self, a: int, b: int) -> None:
        """Swap two events' positions (their chain rows stay)."""
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.run("UPDATE {events} SET {pos} = ? WHERE {pos} = ?", (new, old))

    def swap_contents(self, a: int, b: int) -> None:
        """Swap two events' ids, versions, topics and states (positions and chain rows
        stay): each row now holds the other's event."""
        first, second = self.event(a), self.event(b)
        update = (
            "UPDATE {events} SET originator_id = ?, originator_version = ?, topic = ?, "
            "state = ? WHERE {pos} = ?"
        )
        # a's row is parked first: (originator_id, originator_version) is the primary key
        self.run(update, (self._stored_id(uuid4()), -1, first[2], first[3], a))
        self.run(update, (self._stored_id(first[0]), first[1], first[2], first[3], b))
        self.run(update, (self._stored_id(second[0]), second[1], second[2], second[3], a))

    def make_room(self, position: int) -> None:
        """Move every event and chain row from ``position`` on up by one, as a forger must
        to put a row between two consecutive positions."""
        for table, column in (("{events}", "{pos}"), ("{chain}", "position")):
            for delta, where in ((1_000_000, position), (-999_999, 1_000_000 + position)):
                self.run(
                    f"UPDATE {table} SET {column} = {column} + ? WHERE {column} >= ?",
                    (delta, where),
                )

    def truncate_from(self, position: int) -> None:
        """Delete the events and chain rows from ``position`` on: the log ends earlier."""
        self.run("DELETE FROM {events} WHERE {pos} >= ?", (position,))
        self.run("DELETE FROM {chain} WHERE position >= ?", (position,))


# --- one history per backend, copied into each test's store -------------------------------


def clone_store(template: Settings, target: Settings) -> None:
    """Copy the rows of ``template``'s store into the empty store ``target`` (faster than
    writing the history again for every test that tampers with it)."""
    if template.backend == "sqlite":
        shutil.copytree(template.sqlite_dir(), target.sqlite_dir(), dirs_exist_ok=True)
        return
    with open_ordertrail(target):  # the tables, sequences and types, empty
        pass
    source, destination = template.postgres(), target.postgres()
    with psycopg.connect(source.conninfo(), autocommit=True) as conn:
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (source.schema,),
            )
        ]
        sequences = [
            str(row[0])
            for row in conn.execute(
                "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = %s",
                (source.schema,),
            )
        ]
        with conn.transaction():
            for table in tables:
                copy = sql.Identifier(destination.schema, table)
                conn.execute(sql.SQL("TRUNCATE {}").format(copy))  # (the tracking table's row)
                conn.execute(
                    sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                        copy, sql.Identifier(source.schema, table)
                    )
                )
            for sequence in sequences:
                conn.execute(
                    sql.SQL("SELECT setval(%s, last_value, is_called) FROM {}").format(
                        sql.Identifier(source.schema, sequence)
                    ),
                    (f"{destination.schema}.{sequence}",),
                )


class Templates:
    """The history written once per backend (per test process), kept as a template."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.built: dict[str, tuple[Settings, History, datetime]] = {}
        self.postgres: tuple[str, list[str]] | None = None  # server URL, template schemas

    def get(self, backend: str, postgres_url: str = "") -> tuple[Settings, History, datetime]:
        """The template's settings, its history, and the time its clock stopped at."""
        if backend not in self.built:
            if backend == "sqlite":
                url = f"sqlite://{self.directory / 'template'}"
            else:
                schema = f"audit_template_{uuid4().hex[:12]}"
                base = postgres_url.split("?", 1)[0]
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                self.postgres = base, [*(self.postgres or ("", []))[1], schema]
                url = f"{base}?schema={schema}"
            settings = Settings(database_url=url)
            clock = FakeClock()
            with open_chained(settings, clock) as ot:
                history = write_history(ot, clock)
            self.built[backend] = settings, history, clock.now
        return self.built[backend]

    def drop(self) -> None:
        """Drop the template schemas (unless the throwaway server that held them is gone
        already: pytest may tear it down first)."""
        if self.postgres is None:
            return
        base, schemas = self.postgres
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(base, autocommit=True, connect_timeout=5) as conn,
        ):
            for schema in schemas:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
