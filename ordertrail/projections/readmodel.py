"""The shape of a read model: its tables, the stores it reads, how it applies an event."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, Notification

from ordertrail.projections.store import Tx


class EventRecorder(Protocol):
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


class EventSource(Protocol):
    """An application's log as a read model sees it (an eventsourcing Application is one)."""

    @property
    def name(self) -> str: ...

    @property
    def recorder(self) -> Any: ...

    @property
    def mapper(self) -> Mapper[Any]: ...


class FilteredSource:
    """Another source's log seen through ``select_notifications``: subclasses narrow what
    a worker reads (a replay that stops where the live model was; a test's slow store)."""

    def __init__(self, app: EventSource) -> None:
        self.app = app

    @property
    def name(self) -> str:
        return str(self.app.name)

    @property
    def mapper(self) -> Mapper[Any]:
        return self.app.mapper

    @property
    def recorder(self) -> FilteredSource:
        return self

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        found: Sequence[Notification] = self.app.recorder.select_notifications(
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )
        return found

    def max_notification_id(self) -> int | None:
        head: int | None = self.app.recorder.max_notification_id()
        return head


@dataclass(frozen=True)
class Position:
    """Where an event sits: the store it came from and its notification id there."""

    source: str
    id: int


class ReadModel(ABC):
    """A read model: tables built from events, rebuilt (never migrated) when it changes.

    ``sources`` name the applications it reads; ``topics`` (optional) name, per source,
    the event topics it handles, so others are skipped without being decoded. Handlers
    must give the same tables whatever the interleaving between sources, so that a model
    built incrementally equals one rebuilt from scratch: each column is owned by one
    source, or is derived from rows that are.
    """

    name: ClassVar[str]
    sources: ClassVar[tuple[str, ...]]
    topics: ClassVar[Mapping[str, frozenset[str]]] = {}

    @abstractmethod
    def create(self, tx: Tx) -> None:
        """Create the tables (if they do not exist)."""

    @abstractmethod
    def tables(self) -> Sequence[str]:
        """Every table this model owns, for dropping on rebuild."""

    @abstractmethod
    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        """Apply one event, in the transaction that also records its position."""

    def handle_many(
        self, tx: Tx, events: Sequence[tuple[DomainEventProtocol[Any], Position]]
    ) -> None:
        """Apply a batch of events in log order, in one transaction (one ``handle`` each,
        unless a model writes a batch in fewer statements)."""
        for event, position in events:
            self.handle(tx, event, position)

    def wants(self, source: str, topic: str) -> bool:
        wanted = self.topics.get(source)
        return wanted is None or topic in wanted

    def drop(self, tx: Tx) -> None:
        for table in reversed(self.tables()):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
