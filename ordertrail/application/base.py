"""The base of every bounded-context application: typed settings in, commands that are
idempotent and retried on optimistic-concurrency conflicts, library errors translated."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, Mapper, PersistenceError, Recording
from eventsourcing.utils import Environment

from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    StoreUnavailable,
    VersionMismatch,
)
from ordertrail.application.receipts import (
    Accepted,
    CommandReceipt,
    fingerprint,
    receipt_id,
)
from ordertrail.application.serialization import MsgspecMapper, decode_json_as, encode_json

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)

DEFAULT_MAX_ATTEMPTS = 30
#: Aggregates read per query by ``OrdertrailApplication.catch_up_many`` (two parameters
#: each: SQLite builds older than 3.32 allow 999).
MANY_PER_QUERY = 400


@dataclass
class Decision(Generic[T]):
    """What a command decided: the aggregates holding its new events, and its result.

    Deciding and saving are separate so that one save can carry many decisions.
    """

    result: T
    changed: Sequence[Aggregate] = field(default_factory=list)

    @property
    def has_events(self) -> bool:
        return any(agg.pending_events for agg in self.changed)


class OrdertrailApplication(Application[UUID]):
    """An eventsourcing ``Application`` configured only by the env it is given.

    The process environment is deliberately not read here: settings are read once, by
    the adapters, and passed in.
    """

    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "5000"}

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        clock: Clock = system_clock,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.clock = clock
        self.max_attempts = max_attempts
        super().__init__(dict(env))

    def construct_env(self, name: str, env: Mapping[str, str] | None = None) -> Environment:
        merged = dict(type(self).env)
        merged.update(env or {})
        return Environment(name, merged)

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=MsgspecMapper
        )

    # --- reading -------------------------------------------------------------------------

    def find(self, aggregate_id: UUID) -> Aggregate | None:
        """The current state of an aggregate, or None if it does not exist."""
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        except PersistenceError as error:
            raise StoreUnavailable(f"{self.name} store unavailable: {error}") from error

    def find_as(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        found = self.find(aggregate_id)
        return found if isinstance(found, kind) else None

    def find_many_as(self, aggregate_ids: Iterable[UUID], kind: type[A]) -> dict[UUID, A]:
        """The current state of many aggregates of one kind (those that exist), read in
        one query per ``MANY_PER_QUERY`` where the recorder can (``select_events_of_many``:
        the chained SQLite and PostgreSQL recorders), else one by one. Meant for
        aggregates with short histories (orders), read by process managers that handle a
        page of events at a time: one round trip instead of one per aggregate. It does not
        go through the aggregate cache (a cached aggregate would cost a round trip each to
        fast-forward); what it returns is the caller's own copy to change and save."""
        known: dict[UUID, Aggregate] = {}
        ids = list(dict.fromkeys(aggregate_ids))
        found = self.catch_up_many(known, ids, copies=False)
        return {i: a for i, a in zip(ids, found, strict=True) if isinstance(a, kind)}

    def catch_up_many(
        self, known: dict[UUID, Aggregate], aggregate_ids: Sequence[UUID], *, copies: bool = True
    ) -> list[Aggregate | None]:
        """Bring the caller's own copies of some aggregates (``known``, updated in place;
        missing ones are read whole) up to date with the store in one query per
        ``MANY_PER_QUERY``, and return a copy of each to change (None where it does not
        exist). A process manager that keeps ``known`` between pages reads only what
        others wrote since: one round trip for a page, however many records it touches.
        ``known`` belongs to one thread. Without bulk reads in the recorder, each
        aggregate is read on its own (through the cache)."""
        select = getattr(self.recorder, "select_events_of_many", None)
        if select is None or self.repository.snapshot_store is not None:
            return [self.find(i) for i in aggregate_ids]
        for start in range(0, len(aggregate_ids), MANY_PER_QUERY):
            chunk = aggregate_ids[start : start + MANY_PER_QUERY]
            after = [known[i].version if i in known else 0 for i in chunk]
            try:
                stored = select(chunk, after)
            except PersistenceError as error:
                raise StoreUnavailable(f"{self.name} store unavailable: {error}") from error
            for aggregate_id, records in groupby(stored, key=lambda r: r.originator_id):
                events = [self.mapper.to_domain_event(r) for r in records]
                aggregate: object = project_aggregate(known.get(aggregate_id), events)
                if isinstance(aggregate, Aggregate):
                    known[aggregate_id] = aggregate
        if not copies:
            return [known.get(i) for i in aggregate_ids]
        return [deepcopy(known[i]) if i in known else None for i in aggregate_ids]

    def head(self) -> int:
        """The notification id of the newest event in this application's log."""
        try:
            return self.recorder.max_notification_id() or 0
        except PersistenceError as error:
            raise StoreUnavailable(f"{self.name} store unavailable: {error}") from error

    # --- writing -------------------------------------------------------------------------

    def execute(
        self,
        command: object,
        ctx: CommandContext,
        decide: Callable[[datetime], Decision[T]],
        result_type: type[T],
    ) -> Accepted[T]:
        """Run one command idempotently.

        ``decide`` loads aggregates, calls their command methods (which raise domain
        errors on bad transitions) and returns the changed aggregates and the result. The
        events are saved with a receipt for ``ctx.command_id`` in one transaction. A
        version conflict re-decides on fresh state; a receipt that already exists returns
        the recorded outcome.
        """
        name = type(command).__name__
        digest = fingerprint(name, command)
        for attempt in range(self.max_attempts):
            replay = self.replay(ctx.command_id, name, digest, result_type)
            if replay is not None:
                return replay
            now = self.clock()
            decision = decide(now)
            check_expected_version(decision, ctx.expected_version)
            if not decision.has_events:
                return Accepted(decision.result, {self.name: self.head()})
            receipt = CommandReceipt.record(
                ctx.command_id,
                command_name=name,
                fingerprint=digest,
                outcome=encode_json(decision.result),
                meta=ctx.meta,
                now=now,
            )
            try:
                position = self.save_all([*decision.changed, receipt])
            except IntegrityError:
                backoff(attempt)
                continue
            return Accepted(decision.result, {self.name: position})
        raise ConcurrencyConflict(
            f"{name} kept conflicting with concurrent changes; retry later",
            attempts=self.max_attempts,
        )

    def replay(
        self, command_id: UUID, name: str, digest: str, result_type: type[T]
    ) -> Accepted[T] | None:
        """The recorded outcome of a command id handled before, if it was."""
        receipt = self.find_as(receipt_id(command_id), CommandReceipt)
        if receipt is None:
            return None
        if receipt.command_name != name or receipt.fingerprint != digest:
            raise CommandIdReused(
                f"command id {command_id} was already used for another "
                f"{receipt.command_name} command",
                command_id=str(command_id),
            )
        value = decode_json_as(receipt.outcome, result_type)
        return Accepted(value, {self.name: self.head()}, replayed=True)

    def update(
        self,
        aggregate_id: UUID,
        kind: type[A],
        change: Callable[[A, datetime], object],
        what: str,
    ) -> int | None:
        """Load one aggregate, apply an idempotent change, save; decide again on a version
        conflict. For process managers, whose changes are idempotent by construction.
        Returns the position, or None if the change recorded nothing."""
        for attempt in range(self.max_attempts):
            found = self.find_as(aggregate_id, kind)
            if found is None:
                raise LookupError(f"cannot {what}: no {kind.__name__} {aggregate_id}")
            change(found, self.clock())
            if not found.pending_events:
                return None
            try:
                return self.save_all([found])
            except IntegrityError:
                backoff(attempt)
        raise ConcurrencyConflict(f"could not {what}: it kept changing", what=what)

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """As the library's ``save``, for aggregates without the two runtime-protocol
        ``isinstance`` checks it makes per object (Python 3.11 looks up every member of
        the protocol each time): 12 % of a placement writer's CPU. Anything else goes
        through the library's own."""
        if kwargs or not all(obj is None or isinstance(obj, Aggregate) for obj in objs):
            return super().save(*objs, **kwargs)
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in objs:
            if isinstance(aggregate, Aggregate):
                processing.events.extend(aggregate.collect_events())
                processing.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)
        return recordings

    def save_all(self, aggregates: Sequence[Aggregate | None]) -> int:
        """Save the pending events of ``aggregates`` in one transaction; return the last
        notification id. Raises ``IntegrityError`` on a version conflict."""
        try:
            recordings = self.save(*aggregates)
        except IntegrityError:
            raise
        except PersistenceError as error:
            raise StoreUnavailable(f"{self.name} store unavailable: {error}") from error
        ids = [r.notification.id for r in recordings]
        return max(ids) if ids else self.head()


def check_expected_version(decision: Decision[Any], expected: int | None) -> None:
    """Refuse a decision taken on a newer version of its aggregate than the sender saw."""
    if expected is None or not decision.changed:
        return
    target = decision.changed[0]
    seen = target.version - len(target.pending_events)
    if seen != expected:
        raise VersionMismatch(
            f"it is at version {seen}, not {expected}: reload it and try again",
            expected=expected,
            actual=seen,
        )


def backoff(attempt: int) -> None:
    """Sleep a little, more after each failed attempt, with jitter to break lockstep."""
    time.sleep(random.uniform(0, min(0.002 * (2 ** min(attempt, 6)), 0.1)))
