"""A runtime for process managers that follow one application's event log.

A follower reads the events after its stored position, hands each to its handler, and
stores the new position. Handlers are idempotent (they issue commands whose ids derive
from the event), so a crash between acting and storing the position only repeats work.
A handler may decline an event that is not due yet; the follower then stops there and
tries again on the next run, so nothing is ever skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.utils import Environment, get_topic

from ordertrail.application.base import OrdertrailApplication
from ordertrail.domain.ids import NAMESPACE
from ordertrail.domain.meta import Actor, EventMeta

log = logging.getLogger(__name__)

_EVENT = uuid5(NAMESPACE, "application.event")

#: The name under which process managers keep their positions.
PROCESSES = "Processes"


def event_ref(event: DomainEventProtocol[Any]) -> UUID:
    """A stable id for one stored event (its aggregate id and version)."""
    return uuid5(_EVENT, f"{event.originator_id}/{event.originator_version}")


def follow_up_meta(event: DomainEventProtocol[Any], process: str) -> EventMeta:
    """Who and why for what a process manager does because of ``event``."""
    correlation = getattr(getattr(event, "meta", None), "correlation_id", None)
    ref = event_ref(event)
    return EventMeta(
        actor=Actor.system(process), correlation_id=correlation or ref, causation_id=ref
    )


def tracking_recorder(env: Mapping[str, str]) -> TrackingRecorder:
    """Where the process managers store their positions (one table for all of them)."""
    factory = InfrastructureFactory.construct(Environment(PROCESSES, dict(env)))
    return factory.tracking_recorder()


class Follower:
    """A process manager that reacts to events of one application."""

    name: str = ""
    topics: Sequence[type[Any]] = ()
    #: A batched follower acts on a whole page of events at once (``handle_many``).
    batched: bool = False

    def __init__(
        self, source: OrdertrailApplication, positions: TrackingRecorder, batch_size: int = 200
    ) -> None:
        self.source = source
        self.positions = positions
        self.batch_size = batch_size
        self._topics = [get_topic(t) for t in self.topics]

    @property
    def tracking_name(self) -> str:
        return f"{self.name}<-{self.source.name}"

    def handle(self, event: DomainEventProtocol[Any]) -> bool:
        """Act on ``event``; return False if it is not due yet (stop here for now).
        Every follower implements this, or sets ``batched`` and implements
        ``handle_many`` instead."""
        raise NotImplementedError

    def handle_many(self, events: Sequence[DomainEventProtocol[Any]]) -> int:
        """Act on a prefix of ``events`` at once (the ones that are due) and return its
        length. Only called on followers that set ``batched``; an error handles none of
        the page (handlers are idempotent: the next run repeats it)."""
        raise NotImplementedError

    def position(self) -> int:
        return self.positions.max_tracking_id(self.tracking_name) or 0

    def run_once(self) -> int:
        """Handle the events after the stored position, one batch; return how many.

        A follower of a few topics reads up to the log's head as it was when the batch
        was asked for; when the batch held every wanted event up to there and all were
        handled, its position moves to that head. Otherwise a follower whose topics are
        rare (shipments planned, refunds) stayed at its last match and scanned every
        event since on each poll: during a sale, a scan of the whole sale, growing, twice
        a second. Notification ids are in commit order (the store locks the table for each
        insert), so nothing committed at or below the head can appear later."""
        start = self.position()
        head = self.source.head() if self._topics else None
        if head is not None and head <= start:
            return 0
        notifications = self.source.recorder.select_notifications(
            start=start,
            limit=self.batch_size,
            stop=head,
            topics=self._topics,
            inclusive_of_start=False,
        )
        read_all = head is not None and len(notifications) < self.batch_size
        if self.batched:
            events = [self.source.mapper.to_domain_event(n) for n in notifications]
            count = self.handle_many(events) if events else 0
            last = notifications[count - 1].id if count else start
            if read_all and count == len(notifications):
                last = max(last, head or 0)
            if last > start:
                self.positions.insert_tracking(Tracking(self.tracking_name, last))
            return count
        last = start
        handled = 0
        try:
            for notification in notifications:
                event = self.source.mapper.to_domain_event(notification)
                if not self.handle(event):
                    break
                last = notification.id
                handled += 1
            else:
                if read_all:
                    last = max(last, head or 0)
        finally:
            if last > start:
                self.positions.insert_tracking(Tracking(self.tracking_name, last))
        return handled

    def run_until_idle(self) -> int:
        total = 0
        while handled := self.run_once():
            total += handled
        return total


class FollowerThread(threading.Thread):
    """Runs followers in a loop until stopped; logs and retries after a failure."""

    def __init__(self, followers: Sequence[Follower], interval: float = 0.5) -> None:
        names = ",".join(follower.name for follower in followers)
        super().__init__(name=f"ordertrail-followers[{names}]", daemon=True)
        self.followers = followers
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            busy = False
            for follower in self.followers:
                try:
                    busy = follower.run_once() > 0 or busy
                except Exception:
                    log.exception("process manager %s failed; retrying", follower.name)
            if not busy:
                self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class FollowerThreads:
    """One ``FollowerThread`` per follower. Most of a follower's time is round trips to
    the store; in one thread they queue behind each other (under a flash sale the
    placement reaper's check of every reservation delayed the expiry of unpaid orders),
    in a thread each they overlap. Followers are idempotent and keep their own
    positions, so running them side by side is safe; a conflict between two of them on
    one aggregate is retried like any other."""

    def __init__(self, followers: Sequence[Follower], interval: float = 0.5) -> None:
        self.threads = [FollowerThread([follower], interval) for follower in followers]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for thread in self.threads:
            thread.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)


def format_followers(followers: Sequence[Follower]) -> str:
    """One line per process manager: its position in its source's log and the head."""
    rows = [("PROCESS", "SOURCE", "POSITION", "HEAD")]
    for follower in followers:
        rows.append(
            (
                follower.name,
                follower.source.name,
                str(follower.position()),
                str(follower.source.head()),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
