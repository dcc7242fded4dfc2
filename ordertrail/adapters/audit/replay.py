"""Replay verification: rebuild every read model from the events into a scratch store,
through the same projection code, and compare it row by row with the live one; and fold
every aggregate from its events, reporting any that does not reconstruct.

Positions: a live read model is compared with a replay that stops at exactly the
positions the live model had reached, read in the same snapshot as its rows, so a
worker that lags (or runs meanwhile) never shows up as a difference. How far each live
model was behind the head of its logs is reported as its lag; ``wait_seconds`` first
gives lagging models that long to catch up.

The scratch store has the live store's dialect (a temporary SQLite file, or a scratch
schema in the same PostgreSQL database, dropped afterwards), so values compare as they
are stored.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from psycopg import sql

from ordertrail.adapters.audit.history import applications_of, jsonable
from ordertrail.adapters.audit.pointintime import state_of
from ordertrail.adapters.read_models import READ_MODELS, UnknownReadModel, sources_of
from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.system import Ordertrail
from ordertrail.projections import positions as projection_positions
from ordertrail.projections.readmodel import EventSource, FilteredSource, ReadModel
from ordertrail.projections.runner import ProjectionFailed, ProjectionWorker
from ordertrail.projections.store import PostgresReadStore, ReadStore, SQLiteReadStore, Tx

#: Differences listed per model at most (the count is always exact).
MAX_LISTED = 1_000


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One cell (or one whole row) where the live read model and the replay disagree."""

    model: str
    table: str
    key: dict[str, Any]  # the row's primary key (or the whole row, for tables without one)
    column: str | None  # None: the row exists on one side only
    live: Any
    replayed: Any

    def __str__(self) -> str:
        key = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        if self.column is None:
            side = "live only" if self.replayed is None else "replay only"
            return f"{self.model}.{self.table} [{key}]: row {side}"
        return (
            f"{self.model}.{self.table} [{key}] {self.column}: "
            f"live {self.live!r}, replayed {self.replayed!r}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "table": self.table,
            "key": jsonable(self.key),
            "column": self.column,
            "live": jsonable(self.live),
            "replayed": jsonable(self.replayed),
        }


@dataclass(frozen=True)
class ModelReport:
    name: str
    positions: dict[str, int]  # where the live model was (and the replay stopped)
    heads: dict[str, int]  # the head of each log when the model was read
    rows: int  # live rows compared
    difference_count: int
    differences: list[Difference]  # the first MAX_LISTED
    health: str
    error: str | None = None  # the replay itself failed (an event the model cannot apply)

    @property
    def lag(self) -> dict[str, int]:
        return {s: max(self.heads[s] - self.positions.get(s, 0), 0) for s in self.heads}

    @property
    def ok(self) -> bool:
        return self.difference_count == 0 and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "positions": dict(self.positions),
            "heads": dict(self.heads),
            "lag": self.lag,
            "health": self.health,
            "rows": self.rows,
            "difference_count": self.difference_count,
            "differences": [d.to_json() for d in self.differences],
            "error": self.error,
        }


@dataclass(frozen=True)
class AggregateFailure:
    application: str
    aggregate_id: str
    version: int  # the version at which it failed (0: before any event)
    error: str

    def __str__(self) -> str:
        return f"{self.application} {self.aggregate_id} v{self.version}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "aggregate_id": self.aggregate_id,
            "version": self.version,
            "error": self.error,
        }


@dataclass(frozen=True)
class AggregatesReport:
    checked: int
    events: int
    failures: list[AggregateFailure]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "events": self.events,
            "failures": [f.to_json() for f in self.failures],
        }


@dataclass(frozen=True)
class ReplayReport:
    models: list[ModelReport]
    aggregates: AggregatesReport | None
    seconds: float

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.models) and (self.aggregates is None or self.aggregates.ok)

    @property
    def difference_count(self) -> int:
        return sum(m.difference_count for m in self.models)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "difference_count": self.difference_count,
            "seconds": round(self.seconds, 3),
            "models": [m.to_json() for m in self.models],
            "aggregates": self.aggregates.to_json() if self.aggregates else None,
        }


def format_report(report: ReplayReport) -> str:
    lines = []
    for model in report.models:
        lag = sum(model.lag.values())
        verdict = "OK" if model.ok else f"{model.difference_count} DIFFERENCES"
        if model.error:
            verdict = f"REPLAY FAILED: {model.error}"
        lines.append(
            f"{model.name}: {verdict} ({model.rows} rows at "
            + ", ".join(f"{s}={p}" for s, p in sorted(model.positions.items()))
            + (f"; {lag} events behind the head" if lag else "")
            + ")"
        )
        lines.extend(f"  {difference}" for difference in model.differences)
    if report.aggregates is not None:
        aggregates = report.aggregates
        verdict = "OK" if aggregates.ok else f"{len(aggregates.failures)} FAILED"
        lines.append(
            f"aggregates: {verdict} ({aggregates.checked} aggregates, {aggregates.events} events)"
        )
        lines.extend(f"  {failure}" for failure in aggregates.failures)
    lines.append(f"{'OK' if report.ok else 'DIFFERENCES FOUND'} in {report.seconds:.2f} s")
    return "\n".join(lines)


# --- replaying read models -------------------------------------------------------------------


class _BoundedSource(FilteredSource):
    """An application's log that ends at ``stop``: the replay stops where the live model was."""

    def __init__(self, app: EventSource, stop: int) -> None:
        super().__init__(app)
        self.stop = stop

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        if self.stop <= 0 or (start is not None and start >= self.stop):
            return []
        bound = self.stop if stop is None else min(stop, self.stop)
        return super().select_notifications(
            start, limit, bound, topics, inclusive_of_start=inclusive_of_start
        )

    def max_notification_id(self) -> int | None:
        return self.stop


@contextmanager
def scratch_store(live: ReadStore) -> Iterator[ReadStore]:
    """An empty store of the live store's kind, removed afterwards."""
    if isinstance(live, PostgresReadStore):
        schema = f"replay_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(live.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        store = PostgresReadStore(live.conninfo, schema, pool_size=2)
        try:
            yield store
        finally:
            store.close()
            with psycopg.connect(live.conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        return
    if not isinstance(live, SQLiteReadStore):
        raise TypeError(f"cannot make a scratch store like {type(live).__name__}")
    with tempfile.TemporaryDirectory(prefix="ordertrail-replay-") as directory:
        lite = SQLiteReadStore(str(Path(directory) / "replay.db"))
        try:
            yield lite
        finally:
            lite.close()


@dataclass(frozen=True)
class _Table:
    name: str
    columns: list[str]
    key: list[str]  # primary-key columns; empty: compare whole rows


def _table(tx: Tx, name: str) -> _Table | None:
    """A table's columns and primary key, or None if it does not exist in this store."""
    if tx.dialect == "sqlite":
        info = tx.all(f"PRAGMA table_info({name})")
        if not info:
            return None
        columns = [str(row[1]) for row in info]
        key = [str(row[1]) for row in sorted(info, key=lambda row: int(row[5])) if int(row[5])]
        return _Table(name, columns, key)
    if not tx.scalar("SELECT to_regclass(?) IS NOT NULL", (name,)):
        return None
    columns = [
        str(row[0])
        for row in tx.all(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?)::oid"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (name,),
        )
    ]
    key = [
        str(row[0])
        for row in tx.all(
            "SELECT a.attname FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = to_regclass(?)::oid AND i.indisprimary"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (name,),
        )
    ]
    return _Table(name, columns, key)


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _rows(tx: Tx, table: _Table) -> list[tuple[Any, ...]]:
    columns = ", ".join(_quoted(c) for c in table.columns)
    return tx.all(f"SELECT {columns} FROM {table.name}")


@dataclass
class _Snapshot:
    positions: dict[str, int]
    health: str
    tables: dict[str, tuple[_Table, list[tuple[Any, ...]]]]


def _read_model(store: ReadStore, model: ReadModel) -> _Snapshot:
    """The model's positions and all its rows, in one snapshot."""
    with store.read() as tx:
        stored = projection_positions.all_positions(tx, model.name)
        health = projection_positions.get_health(tx, model.name).state
        tables: dict[str, tuple[_Table, list[tuple[Any, ...]]]] = {}
        for name in model.tables():
            table = _table(tx, name)
            if table is not None:
                tables[name] = (table, _rows(tx, table))
    return _Snapshot({s: stored.get(s, 0) for s in model.sources}, health, tables)


def _heads(sources: Mapping[str, EventSource], names: Iterable[str]) -> dict[str, int]:
    return {name: int(sources[name].recorder.max_notification_id() or 0) for name in names}


def _positions_table_exists(store: ReadStore) -> bool:
    with store.read() as tx:
        if tx.dialect == "postgres":
            return bool(tx.scalar("SELECT to_regclass('projection_positions') IS NOT NULL"))
        return bool(
            tx.scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                " AND name = 'projection_positions'"
            )
        )


def _wait_caught_up(
    store: ReadStore, model: ReadModel, sources: Mapping[str, EventSource], seconds: float
) -> None:
    """Give a lagging live model up to ``seconds`` to reach the heads seen now."""
    if seconds <= 0 or not _positions_table_exists(store):
        return
    targets = _heads(sources, model.sources)
    deadline = time.monotonic() + seconds
    delay = 0.01
    while time.monotonic() < deadline:
        with store.read() as tx:
            stored = projection_positions.all_positions(tx, model.name)
        if all(stored.get(s, 0) >= target for s, target in targets.items()):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def compare_tables(
    model: str,
    live: Mapping[str, tuple[_Table, list[tuple[Any, ...]]]],
    replayed: Mapping[str, tuple[_Table, list[tuple[Any, ...]]]],
) -> tuple[int, list[Difference]]:
    """Every difference between two sets of tables: (count, the first MAX_LISTED)."""
    found: list[Difference] = []
    count = 0

    def add(difference: Difference) -> None:
        nonlocal count
        count += 1
        if len(found) < MAX_LISTED:
            found.append(difference)

    for name in sorted(set(live) | set(replayed)):
        if name not in live or name not in replayed:
            add(
                Difference(
                    model,
                    name,
                    {},
                    None,
                    "table" if name in live else None,
                    "table" if name in replayed else None,
                )
            )
            continue
        table, live_rows = live[name]
        replay_table, replay_rows = replayed[name]
        if table.columns != replay_table.columns:
            add(Difference(model, name, {}, "(columns)", table.columns, replay_table.columns))
            continue
        for difference in _compare_rows(model, table, live_rows, replay_rows):
            add(difference)
    return count, found


def _compare_rows(
    model: str,
    table: _Table,
    live_rows: list[tuple[Any, ...]],
    replay_rows: list[tuple[Any, ...]],
) -> Iterator[Difference]:
    columns = table.columns
    if table.key:
        at = [columns.index(k) for k in table.key]

        def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(row[i] for i in at)

        live_by_key = {key_of(row): row for row in live_rows}
        replay_by_key = {key_of(row): row for row in replay_rows}
        for key in sorted(set(live_by_key) | set(replay_by_key), key=repr):
            named = dict(zip(table.key, key, strict=True))
            live_row = live_by_key.get(key)
            replay_row = replay_by_key.get(key)
            if live_row is None or replay_row is None:
                yield Difference(
                    model,
                    table.name,
                    named,
                    None,
                    None if live_row is None else dict(zip(columns, live_row, strict=True)),
                    None if replay_row is None else dict(zip(columns, replay_row, strict=True)),
                )
                continue
            for column, live_value, replay_value in zip(columns, live_row, replay_row, strict=True):
                if live_value != replay_value:
                    yield Difference(model, table.name, named, column, live_value, replay_value)
        return
    live_counts = Counter(live_rows)
    replay_counts = Counter(replay_rows)
    for row in sorted(set(live_counts) | set(replay_counts), key=repr):
        surplus = live_counts[row] - replay_counts[row]
        whole = dict(zip(columns, row, strict=True))
        for _ in range(abs(surplus)):
            yield Difference(
                model,
                table.name,
                whole,
                None,
                whole if surplus > 0 else None,
                whole if surplus < 0 else None,
            )


def verify_model(
    model: ReadModel,
    live: ReadStore,
    sources: Mapping[str, EventSource],
    *,
    wait_seconds: float = 0.0,
    batch_size: int = 500,
) -> ModelReport:
    """Replay one read model up to the live model's positions and compare the two."""
    # A model that was never run has no tables yet: create them (empty, at position 0),
    # as its worker would, so that it reads as "nothing built yet" and not as an error.
    ProjectionWorker(type(model)(), live, dict(sources), batch_size).setup()
    _wait_caught_up(live, model, sources, wait_seconds)
    heads = _heads(sources, model.sources)
    snapshot = _read_model(live, model)
    with scratch_store(live) as scratch:
        bounded: dict[str, EventSource] = {
            name: _BoundedSource(sources[name], snapshot.positions[name]) for name in model.sources
        }
        worker = ProjectionWorker(type(model)(), scratch, bounded, batch_size)
        worker.setup()
        error: str | None = None
        try:
            worker.run_until_idle()
        except ProjectionFailed as failure:
            error = str(failure)
        replayed = _read_model(scratch, model)
    if error is None and replayed.positions != snapshot.positions:  # pragma: no cover
        error = f"the replay stopped at {replayed.positions}, not at {snapshot.positions}"
    rows = sum(len(rows) for _, rows in snapshot.tables.values())
    if error is not None:
        return ModelReport(
            model.name, snapshot.positions, heads, rows, 0, [], snapshot.health, error
        )
    count, differences = compare_tables(model.name, snapshot.tables, replayed.tables)
    return ModelReport(
        model.name, snapshot.positions, heads, rows, count, differences, snapshot.health
    )


# --- replaying aggregates --------------------------------------------------------------------


def verify_aggregates(ot: Ordertrail, batch_size: int = 1_000) -> AggregatesReport:
    """Fold every aggregate of every application from its events; report each that fails
    to decode or apply, whose versions are not 1..n, or (with snapshots on) whose
    library reconstruction differs from the fold."""
    failures: list[AggregateFailure] = []
    checked = 0
    events = 0
    for app in applications_of(ot).values():
        for aggregate_id in _aggregate_ids(app, batch_size):
            checked += 1
            count, failure = _fold_one(app, aggregate_id)
            events += count
            if failure is not None:
                failures.append(failure)
    return AggregatesReport(checked, events, failures)


def _aggregate_ids(app: OrdertrailApplication, batch_size: int) -> list[Any]:
    """Each aggregate id of the log once, in order of its first event."""
    seen: dict[Any, None] = {}
    start = 0
    while True:
        batch = app.recorder.select_notifications(
            start=start, limit=batch_size, inclusive_of_start=False
        )
        for notification in batch:
            seen.setdefault(notification.originator_id, None)
        if len(batch) < batch_size:
            return list(seen)
        start = batch[-1].id


def _fold_one(app: OrdertrailApplication, aggregate_id: Any) -> tuple[int, AggregateFailure | None]:
    stored = app.recorder.select_events(aggregate_id)
    aggregate: Aggregate | None = None
    for expected, item in enumerate(stored, start=1):
        if item.originator_version != expected:
            return len(stored), AggregateFailure(
                app.name,
                str(aggregate_id),
                expected,
                f"version {item.originator_version} where {expected} was expected",
            )
        try:
            event = app.mapper.to_domain_event(item)
            aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        except Exception as error:
            return len(stored), AggregateFailure(
                app.name, str(aggregate_id), expected, f"{type(error).__name__}: {error}"
            )
        if aggregate is None or aggregate.version != expected:
            return len(stored), AggregateFailure(
                app.name,
                str(aggregate_id),
                expected,
                f"folding gave version {getattr(aggregate, 'version', None)}",
            )
    if aggregate is None:
        return 0, AggregateFailure(app.name, str(aggregate_id), 0, "no events")
    if app.snapshots is not None:
        try:
            rebuilt: Aggregate = app.repository.get(aggregate_id, version=aggregate.version)
        except Exception as error:
            return len(stored), AggregateFailure(
                app.name, str(aggregate_id), aggregate.version, f"{type(error).__name__}: {error}"
            )
        if state_of(rebuilt) != state_of(aggregate):
            return len(stored), AggregateFailure(
                app.name,
                str(aggregate_id),
                aggregate.version,
                "the snapshot-based reconstruction differs from folding the events",
            )
    return len(stored), None


# --- everything ------------------------------------------------------------------------------


def verify_replay(
    ot: Ordertrail,
    live: ReadStore,
    *,
    names: Iterable[str] | None = None,
    aggregates: bool = True,
    wait_seconds: float = 0.0,
) -> ReplayReport:
    """Replay the named read models (default: all) and, with ``aggregates``, every
    aggregate; report every difference."""
    started = time.perf_counter()
    chosen = list(names) if names is not None else list(READ_MODELS)
    unknown = [name for name in chosen if name not in READ_MODELS]
    if unknown:
        raise UnknownReadModel(
            f"no read model {', '.join(unknown)}; known: {', '.join(READ_MODELS)}"
        )
    sources = sources_of(ot)
    reports = [
        verify_model(READ_MODELS[name](), live, sources, wait_seconds=wait_seconds)
        for name in chosen
    ]
    folded = verify_aggregates(ot) if aggregates else None
    return ReplayReport(reports, folded, time.perf_counter() - started)
