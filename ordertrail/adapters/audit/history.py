"""The history of one order across every context: what happened, when, who asked for it
and why, in one ordered list.

Which events concern an order is found by following references (see
``ordertrail.projections.audit_index``): from the order id to every aggregate that names
it, and on from those. Aggregates that exist *for* an order (its shipments and their
tracking numbers, its after-sales cases, its return ledger, the cart it was checked out
from, an abandoned placement under its id) contribute every event; shared aggregates
(a SKU's stock, a command receipt) contribute only the events that name the order or
one of those aggregates (its reservations, their release, commit and restock).

Entries are ordered by timestamp; ties are broken by the context (in ``SOURCES`` order)
and then by the event's position in that context's log, so the order is deterministic.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic

from ordertrail.adapters.read_models import sources_of
from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.system import Ordertrail
from ordertrail.domain.errors import DomainError, ErrorKind, OrderNotFound
from ordertrail.projections.audit_index import (
    SOURCES,
    AuditIndexView,
    aggregate_type_of,
    event_type_of,
    timestamp_of,
)
from ordertrail.projections.store import ReadStore

#: Aggregates that exist for one order: all their events belong to its history.
ORDER_SCOPED_TYPES = frozenset(
    {
        "Order",
        "AbandonedPlacement",
        "Shipment",
        "TrackingNumber",
        "AfterSalesCase",
        "ReturnLedger",
        "Cart",
    }
)
_APP_RANK = {name: rank for rank, name in enumerate(SOURCES)}
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "meta"})


class UnknownApplication(DomainError):
    code = "audit.unknown_application"
    kind = ErrorKind.NOT_FOUND


# --- JSON-able values -----------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, deterministically: UUIDs and times as text, enums as
    their value, sets sorted, mapping keys as text (sorted), bytes decoded if they are
    JSON (a command receipt's outcome) or else base64."""
    if isinstance(value, Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return jsonable(msgspec.json.decode(raw))
        except msgspec.DecodeError:
            return {"base64": base64.b64encode(raw).decode()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, msgspec.Struct):
        return {name: jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, Mapping):
        items = [(str(jsonable(key)), jsonable(item)) for key, item in value.items()]
        return dict(sorted(items, key=lambda pair: pair[0]))
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item) for item in value), key=_sort_key)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def _sort_key(value: Any) -> str:
    return msgspec.json.encode(value, order="deterministic").decode()


def event_payload(event: DomainEventProtocol[Any]) -> dict[str, Any]:
    """An event's own fields (not its envelope), as plain JSON types."""
    return {
        name: jsonable(value)
        for name, value in sorted(vars(event).items())
        if name not in _ENVELOPE
    }


# --- the history ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One event in an order's history."""

    timestamp: datetime
    application: str
    position: int  # the event's notification id in its application's log
    aggregate_type: str
    aggregate_id: UUID
    version: int
    event_type: str
    topic: str
    actor_kind: str | None
    actor_id: str | None
    correlation_id: UUID | None
    causation_id: UUID | None
    payload: dict[str, Any]

    @property
    def actor(self) -> str:
        return f"{self.actor_kind}:{self.actor_id}" if self.actor_kind else "-"

    def sort_key(self) -> tuple[datetime, int, int, str, int]:
        return (
            self.timestamp,
            _APP_RANK.get(self.application, len(_APP_RANK)),
            self.position,
            str(self.aggregate_id),
            self.version,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp.isoformat(),
            "application": self.application,
            "position": self.position,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "event_type": self.event_type,
            "topic": self.topic,
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_id,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class RelatedAggregate:
    application: str
    aggregate_type: str
    aggregate_id: UUID
    whole: bool  # every event of it belongs to the order (else: only those naming it)
    versions: tuple[int, ...]  # the versions in the history

    def to_json(self) -> dict[str, Any]:
        return {
            "application": self.application,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": str(self.aggregate_id),
            "whole": self.whole,
            "versions": list(self.versions),
        }


@dataclass(frozen=True)
class OrderHistory:
    order_id: UUID
    entries: list[HistoryEntry]
    aggregates: list[RelatedAggregate]
    index_lag: dict[str, int] = field(default_factory=dict)  # events read past the index

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "entries": [entry.to_json() for entry in self.entries],
            "aggregates": [aggregate.to_json() for aggregate in self.aggregates],
            "index_lag": dict(self.index_lag),
        }


@dataclass
class Related:
    """The aggregates of one order's story, and which of their versions belong to it."""

    order_id: UUID
    aggregates: dict[tuple[str, UUID], RelatedAggregate]


def applications_of(ot: Ordertrail) -> dict[str, OrdertrailApplication]:
    return {app.name: app for app in ot.applications}


def application_named(ot: Ordertrail, name: str) -> OrdertrailApplication:
    """An application by its name, case-insensitively (``orders``, ``AfterSales``)."""
    for app in ot.applications:
        if app.name.lower() == name.lower():
            return app
    known = ", ".join(app.name for app in ot.applications)
    raise UnknownApplication(f"no application {name!r}; known: {known}", application=name)


def open_view(ot: Ordertrail, store: ReadStore | None) -> AuditIndexView:
    return AuditIndexView(store, sources_of(ot))


def related_to_order(view: AuditIndexView, order_id: UUID) -> Related:
    """Follow references from the order id to every aggregate of its story."""
    scoped: dict[tuple[str, UUID], str] = {
        (application, order_id): aggregate_type
        for application, aggregate_type in view.aggregates_with_id(order_id)
        if application == "Orders"
    }
    if not scoped:
        raise OrderNotFound(f"no order {order_id}", order_id=str(order_id))
    shared: dict[tuple[str, UUID], tuple[str, set[int]]] = {}
    seen = {order_id}
    frontier = {order_id}
    while frontier:
        found: set[UUID] = set()
        for ref in view.referring_to(frontier):
            key = (ref.application, ref.aggregate_id)
            if ref.aggregate_type in ORDER_SCOPED_TYPES:
                scoped.setdefault(key, ref.aggregate_type)
                if ref.aggregate_id not in seen:
                    seen.add(ref.aggregate_id)
                    found.add(ref.aggregate_id)
            else:
                shared.setdefault(key, (ref.aggregate_type, set()))[1].add(ref.version)
        frontier = found
    aggregates: dict[tuple[str, UUID], RelatedAggregate] = {}
    for (application, aggregate_id), aggregate_type in scoped.items():
        versions = tuple(e.version for e in view.events_of(application, aggregate_id))
        aggregates[(application, aggregate_id)] = RelatedAggregate(
            application, aggregate_type, aggregate_id, True, versions
        )
    for key, (aggregate_type, chosen) in shared.items():
        if key not in aggregates:
            aggregates[key] = RelatedAggregate(
                key[0], aggregate_type, key[1], False, tuple(sorted(chosen))
            )
    return Related(order_id, aggregates)


def order_history(ot: Ordertrail, store: ReadStore | None, order_id: UUID) -> OrderHistory:
    """Every event of the order's story, in every context, in order."""
    view = open_view(ot, store)
    related = related_to_order(view, order_id)
    apps = applications_of(ot)
    entries: list[HistoryEntry] = []
    for aggregate in related.aggregates.values():
        app = apps[aggregate.application]
        positions = {
            e.version: e.position
            for e in view.events_of(aggregate.application, aggregate.aggregate_id)
        }
        for event in _events(app, aggregate):
            entries.append(
                entry_of(aggregate.application, event, positions.get(event.originator_version, 0))
            )
    entries.sort(key=HistoryEntry.sort_key)
    listed = sorted(
        related.aggregates.values(),
        key=lambda a: (_APP_RANK.get(a.application, 99), a.aggregate_type, str(a.aggregate_id)),
    )
    return OrderHistory(order_id, entries, listed, view.lag)


def _events(
    app: OrdertrailApplication, aggregate: RelatedAggregate
) -> list[DomainEventProtocol[Any]]:
    if not aggregate.versions:
        return []
    recorder = app.recorder
    if aggregate.whole:
        stored = recorder.select_events(aggregate.aggregate_id, lte=max(aggregate.versions))
    else:
        stored = []
        for version in aggregate.versions:
            stored.extend(
                recorder.select_events(aggregate.aggregate_id, gt=version - 1, lte=version)
            )
    return [app.mapper.to_domain_event(item) for item in stored]


def entry_of(application: str, event: DomainEventProtocol[Any], position: int) -> HistoryEntry:
    topic = get_topic(type(event))
    meta = getattr(event, "meta", None)
    actor = getattr(meta, "actor", None)
    kind = getattr(actor, "kind", None)
    return HistoryEntry(
        timestamp=timestamp_of(event),
        application=application,
        position=position,
        aggregate_type=aggregate_type_of(topic),
        aggregate_id=event.originator_id,
        version=int(event.originator_version),
        event_type=event_type_of(topic),
        topic=topic,
        actor_kind=str(jsonable(kind)) if kind is not None else None,
        actor_id=getattr(actor, "id", None),
        correlation_id=getattr(meta, "correlation_id", None),
        causation_id=getattr(meta, "causation_id", None),
        payload=event_payload(event),
    )


def format_history(history: OrderHistory) -> str:
    """A plain-text table of the history, one event per line."""
    lines = [f"order {history.order_id}: {len(history.entries)} events"]
    for entry in history.entries:
        lines.append(
            f"{entry.timestamp.isoformat()}  {entry.application:<10} "
            f"{entry.event_type:<36} v{entry.version:<3} {entry.actor:<24} "
            f"corr {entry.correlation_id}  cause {entry.causation_id}  "
            f"{entry.aggregate_type} {entry.aggregate_id}"
        )
    return "\n".join(lines)
