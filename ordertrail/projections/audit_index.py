"""The audit index: for every event of every context, where it is (application, aggregate,
version, position), when it happened, and which other aggregates it names.

It answers two questions auditors ask without reading whole logs:

- *which version of an aggregate was current at time T?* (the library can load version N,
  not "as of T");
- *which events concern this order?* Every UUID an event carries (``order_id``,
  ``shipment_id``, ``case_id``, the holder of a reservation, ids inside reference strings
  and inside a command receipt's outcome) is a reference; following references from an
  order id finds its shipments, cases, carts, reservations and receipts in every context.

Each row depends on its own event only, so the tables are the same whatever the
interleaving of the sources (a rebuild equals the incremental build).

``AuditIndexView`` reads the index *and* the tail of each log that the index has not
reached yet, so answers are complete and current even while the worker lags (with no
index at all, the tail is the whole log: a full scan).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic

from ordertrail.projections import positions as projection_positions
from ordertrail.projections.readmodel import EventSource, Position, ReadModel
from ordertrail.projections.store import ReadStore, Tx

NAME = "audit_index"
#: Every application log an order's history can touch, in the order history breaks ties.
SOURCES = ("Catalog", "Inventory", "Orders", "Logistics", "AfterSales", "Knowledge", "Carts")
EVENTS_TABLE = "audit_index_events"
REFS_TABLE = "audit_index_refs"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
#: Envelope fields: not references (``meta`` holds correlation and causation ids, which
#: name requests and commands, not aggregates).
_UUID_BYTES = re.compile(_UUID_TEXT.pattern.encode())
_JSON = msgspec.json.Encoder()
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "meta"})
_SCAN_BATCH = 1_000
_IN_CHUNK = 500


def micros(moment: datetime) -> int:
    """Microseconds since the epoch (UTC): how the index stores and compares times."""
    if moment.tzinfo is None:
        raise ValueError("a moment must carry its UTC offset")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def timestamp_of(event: object) -> datetime:
    """When an event was recorded (every event of this package has a timestamp)."""
    moment = getattr(event, "timestamp", None)
    if not isinstance(moment, datetime):
        raise TypeError(f"{type(event).__name__} has no timestamp")
    return moment


def aggregate_type_of(topic: str) -> str:
    """``ordertrail.orders:Order.Placed`` -> ``Order``: events are nested in their aggregate."""
    qualname = topic.rpartition(":")[2]
    head, dot, _ = qualname.rpartition(".")
    return head if dot else qualname


def event_type_of(topic: str) -> str:
    """``ordertrail.orders:Order.Placed`` -> ``Order.Placed``."""
    return topic.rpartition(":")[2]


def references(event: DomainEventProtocol[Any]) -> frozenset[UUID]:
    """Every aggregate id an event names in its own fields (not its envelope): UUIDs, and
    UUIDs written in text, anywhere in them — in a field of bytes holding JSON (a command
    receipt's outcome), anywhere in that JSON.

    Each field is written as JSON by msgspec and the UUIDs are found in that text by one
    regular expression, which finds what walking the field's values in Python finds
    (``_collect``, the way for values msgspec cannot write) at a fraction of the cost:
    the index reads every event of every log, and the walk was most of its CPU."""
    found: set[UUID] = set()
    for name, value in vars(event).items():
        if name in _ENVELOPE or value is None or isinstance(value, bool | int | float | Enum):
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            text = bytes(value)
            try:
                msgspec.json.decode(text)  # only JSON is looked into
            except msgspec.DecodeError:
                continue
        else:
            try:
                text = _JSON.encode(value)
            except (TypeError, msgspec.EncodeError):
                _collect(value, found, depth=0)
                continue
        found.update(UUID(match.decode()) for match in _UUID_BYTES.findall(text))
    found.discard(event.originator_id)
    return frozenset(found)


def _collect(value: Any, found: set[UUID], depth: int) -> None:
    if depth > 12 or value is None or isinstance(value, bool | int | float | Enum | datetime):
        return
    if isinstance(value, UUID):
        found.add(value)
    elif isinstance(value, str):
        found.update(UUID(text) for text in _UUID_TEXT.findall(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        try:  # a command receipt's outcome: the JSON of the command's result
            decoded = msgspec.json.decode(bytes(value))
        except msgspec.DecodeError:
            return
        _collect(decoded, found, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _collect(key, found, depth + 1)
            _collect(item, found, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, found, depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _collect(getattr(value, field.name), found, depth + 1)
    elif isinstance(value, msgspec.Struct):
        for field_name in value.__struct_fields__:
            _collect(getattr(value, field_name), found, depth + 1)


@dataclass(frozen=True)
class IndexedEvent:
    """One event's place in the index."""

    application: str
    aggregate_id: UUID
    version: int
    position: int
    recorded_at: int  # the event's timestamp, microseconds since the epoch
    aggregate_type: str
    topic: str
    refs: frozenset[UUID] = frozenset()

    @property
    def timestamp(self) -> datetime:
        return from_micros(self.recorded_at)


def index_entry(source: str, event: DomainEventProtocol[Any], position: int) -> IndexedEvent:
    topic = get_topic(type(event))
    return IndexedEvent(
        application=source,
        aggregate_id=event.originator_id,
        version=int(event.originator_version),
        position=position,
        recorded_at=micros(timestamp_of(event)),
        aggregate_type=aggregate_type_of(topic),
        topic=topic,
        refs=references(event),
    )


class AuditIndex(ReadModel):
    name = NAME
    sources = SOURCES

    def tables(self) -> Sequence[str]:
        return (EVENTS_TABLE, REFS_TABLE)

    def create(self, tx: Tx) -> None:
        tx.ddl(
            f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
            " application {text} NOT NULL, aggregate_id {text} NOT NULL,"
            " version {int} NOT NULL, position {int} NOT NULL, recorded_at {int} NOT NULL,"
            " aggregate_type {text} NOT NULL, topic {text} NOT NULL,"
            " PRIMARY KEY (application, aggregate_id, version))"
        )
        tx.ddl(
            f"CREATE TABLE IF NOT EXISTS {REFS_TABLE} ("
            " ref_id {text} NOT NULL, application {text} NOT NULL,"
            " aggregate_id {text} NOT NULL, version {int} NOT NULL,"
            " aggregate_type {text} NOT NULL,"
            " PRIMARY KEY (ref_id, application, aggregate_id, version))"
        )

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        self.handle_many(tx, [(event, position)])

    def handle_many(
        self, tx: Tx, events: Sequence[tuple[DomainEventProtocol[Any], Position]]
    ) -> None:
        """Every event of the batch in one statement per table (it indexes every event of
        every log, so per-event statements were a third of the projector's CPU)."""
        entries = [index_entry(position.source, event, position.id) for event, position in events]
        _insert_rows(
            tx,
            f"INSERT INTO {EVENTS_TABLE} (application, aggregate_id, version, position,"
            " recorded_at, aggregate_type, topic) VALUES ",
            [
                (
                    e.application,
                    str(e.aggregate_id),
                    e.version,
                    e.position,
                    e.recorded_at,
                    e.aggregate_type,
                    e.topic,
                )
                for e in entries
            ],
        )
        _insert_rows(
            tx,
            f"INSERT INTO {REFS_TABLE} (ref_id, application, aggregate_id, version,"
            " aggregate_type) VALUES ",
            [
                (str(ref), e.application, str(e.aggregate_id), e.version, e.aggregate_type)
                for e in entries
                for ref in sorted(e.refs)
            ],
        )


#: Rows per INSERT (SQLite allows 32,766 parameters per statement; 7 columns x 500).
ROWS_PER_INSERT = 500


def _insert_rows(tx: Tx, insert: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``insert`` ("INSERT INTO t (...) VALUES ") for ``rows``, a few hundred at a time."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        values = "(" + ", ".join("?" * len(chunk[0])) + ")"
        tx.execute(insert + ", ".join([values] * len(chunk)), tuple(v for r in chunk for v in r))


@dataclass(frozen=True)
class Reference:
    """Event ``(application, aggregate_id, version)`` names ``ref_id``."""

    ref_id: UUID
    application: str
    aggregate_id: UUID
    version: int
    aggregate_type: str


class AuditIndexView:
    """The index as stored, plus every event after its position in each log.

    ``store`` may be None (no read store: everything comes from the logs). Built once per
    question: it reads the tail of each log when created.
    """

    def __init__(
        self,
        store: ReadStore | None,
        sources: Mapping[str, EventSource],
        *,
        tail: bool = True,
    ) -> None:
        self.store = store
        self.sources = {name: sources[name] for name in SOURCES if name in sources}
        self.indexed = store is not None and _tables_exist(store)
        self.positions: dict[str, int] = {}
        if self.indexed and store is not None:
            with store.read() as tx:
                self.positions = projection_positions.all_positions(tx, NAME)
        self.tail: list[IndexedEvent] = self._scan_tail() if tail else []
        self._tail_by_aggregate: dict[tuple[str, UUID], list[IndexedEvent]] = {}
        self._tail_by_ref: dict[UUID, list[Reference]] = {}
        self._events_cache: dict[tuple[str, UUID], list[IndexedEvent]] = {}
        for entry in self.tail:
            self._tail_by_aggregate.setdefault((entry.application, entry.aggregate_id), []).append(
                entry
            )
            for ref in entry.refs:
                self._tail_by_ref.setdefault(ref, []).append(
                    Reference(
                        ref,
                        entry.application,
                        entry.aggregate_id,
                        entry.version,
                        entry.aggregate_type,
                    )
                )

    @property
    def lag(self) -> dict[str, int]:
        """Events per log that the stored index has not reached (read from the tail)."""
        counts = dict.fromkeys(self.sources, 0)
        for entry in self.tail:
            counts[entry.application] += 1
        return counts

    def _scan_tail(self) -> list[IndexedEvent]:
        found: list[IndexedEvent] = []
        for name, source in self.sources.items():
            start = self.positions.get(name, 0)
            while True:
                batch = source.recorder.select_notifications(
                    start=start, limit=_SCAN_BATCH, inclusive_of_start=False
                )
                if not batch:
                    break
                for notification in batch:
                    event = source.mapper.to_domain_event(notification)
                    found.append(index_entry(name, event, notification.id))
                start = batch[-1].id
                if len(batch) < _SCAN_BATCH:
                    break
        return found

    # --- questions -------------------------------------------------------------------------

    def events_of(self, application: str, aggregate_id: UUID) -> list[IndexedEvent]:
        """The indexed events of one aggregate, in version order."""
        key = (application, aggregate_id)
        cached = self._events_cache.get(key)
        if cached is None:
            cached = self._events_cache[key] = self._read_events_of(application, aggregate_id)
        return list(cached)

    def _read_events_of(self, application: str, aggregate_id: UUID) -> list[IndexedEvent]:
        rows: dict[int, IndexedEvent] = {}
        if self.indexed and self.store is not None:
            with self.store.read() as tx:
                for row in tx.all(
                    "SELECT version, position, recorded_at, aggregate_type, topic"
                    f" FROM {EVENTS_TABLE} WHERE application = ? AND aggregate_id = ?"
                    " ORDER BY version",
                    (application, str(aggregate_id)),
                ):
                    version, position, recorded_at, aggregate_type, topic = row
                    rows[int(version)] = IndexedEvent(
                        application,
                        aggregate_id,
                        int(version),
                        int(position),
                        int(recorded_at),
                        str(aggregate_type),
                        str(topic),
                    )
        for entry in self._tail_by_aggregate.get((application, aggregate_id), ()):
            rows.setdefault(entry.version, entry)
        return [rows[version] for version in sorted(rows)]

    def version_at(self, application: str, aggregate_id: UUID, moment: datetime) -> int:
        """The highest version of the aggregate recorded at or before ``moment`` (0: none).

        The stored index answers for the versions it holds; the aggregate's versions above
        those (not indexed yet) come from the tail of the log.
        """
        limit = micros(moment)
        best = 0
        if self.indexed and self.store is not None:
            with self.store.read() as tx:
                found = tx.scalar(
                    f"SELECT max(version) FROM {EVENTS_TABLE}"
                    " WHERE application = ? AND aggregate_id = ? AND recorded_at <= ?",
                    (application, str(aggregate_id), limit),
                )
            best = int(found or 0)
        for entry in self._tail_by_aggregate.get((application, aggregate_id), ()):
            if entry.recorded_at <= limit:
                best = max(best, entry.version)
        return best

    def indexed_head(self, application: str, aggregate_id: UUID) -> int:
        """The highest version of the aggregate in the stored index (0: none)."""
        if not (self.indexed and self.store is not None):
            return 0
        with self.store.read() as tx:
            found = tx.scalar(
                f"SELECT max(version) FROM {EVENTS_TABLE}"
                " WHERE application = ? AND aggregate_id = ?",
                (application, str(aggregate_id)),
            )
        return int(found or 0)

    def referring_to(self, ids: Iterable[UUID]) -> list[Reference]:
        """Every event that names one of ``ids``."""
        wanted = sorted(set(ids))
        found: dict[tuple[UUID, str, UUID, int], Reference] = {}
        if self.indexed and self.store is not None and wanted:
            with self.store.read() as tx:
                for chunk in _chunks(wanted, _IN_CHUNK):
                    marks = ", ".join("?" for _ in chunk)
                    for row in tx.all(
                        "SELECT ref_id, application, aggregate_id, version, aggregate_type"
                        f" FROM {REFS_TABLE} WHERE ref_id IN ({marks})",
                        [str(ref) for ref in chunk],
                    ):
                        ref = Reference(
                            UUID(str(row[0])),
                            str(row[1]),
                            UUID(str(row[2])),
                            int(row[3]),
                            str(row[4]),
                        )
                        found[(ref.ref_id, ref.application, ref.aggregate_id, ref.version)] = ref
        for ref_id in wanted:
            for ref in self._tail_by_ref.get(ref_id, ()):
                found.setdefault((ref.ref_id, ref.application, ref.aggregate_id, ref.version), ref)
        return [found[key] for key in sorted(found, key=_ref_key)]

    def aggregates_with_id(self, aggregate_id: UUID) -> list[tuple[str, str]]:
        """``(application, aggregate type)`` of every aggregate with this id."""
        found: set[tuple[str, str]] = set()
        if self.indexed and self.store is not None:
            with self.store.read() as tx:
                for application, aggregate_type in tx.all(
                    f"SELECT DISTINCT application, aggregate_type FROM {EVENTS_TABLE}"
                    " WHERE aggregate_id = ? AND version = 1",
                    (str(aggregate_id),),
                ):
                    found.add((str(application), str(aggregate_type)))
        for (application, tail_id), entries in self._tail_by_aggregate.items():
            if tail_id == aggregate_id:
                found.update(
                    (application, entry.aggregate_type) for entry in entries if entry.version == 1
                )
        return sorted(found)


def _ref_key(key: tuple[UUID, str, UUID, int]) -> tuple[str, str, str, int]:
    return (str(key[0]), key[1], str(key[2]), key[3])


def _chunks(items: Sequence[UUID], size: int) -> Iterator[Sequence[UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _tables_exist(store: ReadStore) -> bool:
    with store.read() as tx:
        if tx.dialect == "postgres":
            return bool(
                tx.scalar("SELECT to_regclass(?) IS NOT NULL", (EVENTS_TABLE,))
                and tx.scalar("SELECT to_regclass(?) IS NOT NULL", (REFS_TABLE,))
                and tx.scalar("SELECT to_regclass('projection_positions') IS NOT NULL")
            )
        names = {
            str(row[0])
            for row in tx.all(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)",
                (EVENTS_TABLE, REFS_TABLE, "projection_positions"),
            )
        }
        return len(names) == 3
