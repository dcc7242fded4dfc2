"""Projection workers: read each source log after the model's stored position, apply the
events and move the position in the same transaction, so every event counts exactly once.

The same worker runs on PostgreSQL (woken by the event store's NOTIFY) and on SQLite
(polling), in-process or in a process of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification

from ordertrail.projections import positions
from ordertrail.projections.positions import Health, PositionConflict
from ordertrail.projections.readmodel import EventSource, Position, ReadModel
from ordertrail.projections.store import ReadStore

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
#: After being woken, a worker waits this long for more commits before it reads: a
#: burst of small commits becomes one batch. Over HTTP at 32 connections it cut the read
#: models' CPU per order by about a fifth; it adds up to this much lag.
GATHER_SECONDS = 0.05
#: Seconds a worker trusts its memory of where it left off (see ``_left_at``).
RECHECK_POSITIONS = 5.0


class ProjectionFailed(Exception):
    """A read model could not apply an event; its position stays just before it."""

    def __init__(
        self, projection: str, source: str, position: int, topic: str, error: BaseException
    ) -> None:
        super().__init__(
            f"{projection} failed on {source} event {position} ({topic}): "
            f"{type(error).__name__}: {error}"
        )
        self.projection = projection
        self.source = source
        self.position = position
        self.topic = topic
        self.error = error


@dataclass(frozen=True)
class Status:
    name: str
    positions: dict[str, int]
    heads: dict[str, int]
    health: Health

    @property
    def lag(self) -> dict[str, int]:
        return {s: max(self.heads[s] - self.positions.get(s, 0), 0) for s in self.heads}

    @property
    def caught_up(self) -> bool:
        return not any(self.lag.values())


class ProjectionWorker:
    def __init__(
        self,
        model: ReadModel,
        store: ReadStore,
        sources: Mapping[str, EventSource],
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        missing = set(model.sources) - set(sources)
        if missing:
            raise ValueError(f"{model.name} reads {sorted(missing)}, which are not given")
        self.model = model
        self.store = store
        self.sources = {name: sources[name] for name in model.sources}
        self.batch_size = batch_size
        self._healthy: bool | None = None
        #: Where this worker left each source, so that a poll costs one query (the new
        #: events), not two. Only a hint: ``positions.advance`` moves the stored position
        #: only from this value, so if anyone else moved it (another worker, a rebuild)
        #: the batch is refused and the position read again. It is also forgotten every
        #: ``RECHECK_POSITIONS`` seconds, for a position moved back while this worker had
        #: nothing new to apply (a rebuild elsewhere that stopped half way).
        self._left_at: dict[str, int] = {}
        self._left_at_since = time.monotonic()

    @property
    def name(self) -> str:
        return self.model.name

    def setup(self) -> None:
        with self.store.transaction() as tx:
            positions.create(tx)
            self.model.create(tx)

    # --- processing ----------------------------------------------------------------------

    def run_once(self) -> int:
        """Apply one batch from each source; return how many events were read."""
        return sum(self._run_source(name) for name in self.model.sources)

    def run_until_idle(self) -> int:
        total = 0
        while read := self.run_once():
            total += read
        return total

    def _run_source(self, source_name: str) -> int:
        source = self.sources[source_name]
        if time.monotonic() - self._left_at_since > RECHECK_POSITIONS:
            self._left_at.clear()
            self._left_at_since = time.monotonic()
        start = remembered = self._left_at.get(source_name)
        if start is None:
            with self.store.read() as tx:
                start = positions.get(tx, self.name, source_name)
        batch: Sequence[Notification] = source.recorder.select_notifications(
            start=start, limit=self.batch_size, inclusive_of_start=False
        )
        if not batch:
            self._left_at[source_name] = start
            return 0
        self._left_at.pop(source_name, None)  # until this batch is applied
        try:
            self._apply(source, start, batch)
        except PositionConflict:
            # Another worker applied it. If this worker's memory was stale (someone moved
            # the position since, a rebuild reset it), start again from the stored one.
            return 0 if remembered is None else self._run_source(source_name)
        except Exception:
            self._isolate_failure(source, start, batch)
            raise  # pragma: no cover - _isolate_failure always raises
        self._left_at[source_name] = batch[-1].id
        self._mark_healthy()
        return len(batch)

    def _apply(self, source: EventSource, start: int, batch: Sequence[Notification]) -> None:
        with self.store.batch() as tx:
            # Claim the batch first: a second worker that read the same position stops here
            # (waiting on the first one's row lock, then finding it moved) before applying.
            positions.advance(tx, self.name, source.name, start, batch[-1].id)
            self.model.handle_many(
                tx,
                [
                    (source.mapper.to_domain_event(n), Position(source.name, n.id))
                    for n in batch
                    if self.model.wants(source.name, n.topic)
                ],
            )

    def _isolate_failure(
        self, source: EventSource, start: int, batch: Sequence[Notification]
    ) -> None:
        """Apply the batch one event at a time up to the one that fails; record it."""
        position = start
        for notification in batch:
            try:
                self._apply(source, position, [notification])
            except PositionConflict:
                raise
            except Exception as error:
                failure = ProjectionFailed(
                    self.name, source.name, notification.id, notification.topic, error
                )
                with self.store.transaction() as tx:
                    positions.set_health(
                        tx,
                        self.name,
                        Health(
                            "failed",
                            source.name,
                            notification.id,
                            notification.topic,
                            f"{type(error).__name__}: {error}",
                        ),
                    )
                self._healthy = False
                log.error("%s", failure)
                raise failure from error
            position = notification.id
        raise RuntimeError(f"{self.name}: a batch failed but no single event did")

    def _mark_healthy(self) -> None:
        if self._healthy is None:
            with self.store.read() as tx:
                self._healthy = positions.get_health(tx, self.name).state == "ok"
        if not self._healthy:
            with self.store.transaction() as tx:
                positions.set_health(tx, self.name, Health("ok"))
            self._healthy = True

    # --- rebuilding ----------------------------------------------------------------------

    def rebuild(self) -> int:
        """Drop the tables and the positions, and apply every event again from the start."""
        with self.store.transaction() as tx:
            positions.create(tx)
            self.model.drop(tx)
            positions.reset(tx, self.name)
            positions.set_health(tx, self.name, Health("rebuilding"))
            self.model.create(tx)
        self._healthy = False
        self._left_at.clear()
        applied = self.run_until_idle()
        self._mark_healthy()
        return applied

    # --- observing -----------------------------------------------------------------------

    def status(self) -> Status:
        with self.store.read() as tx:
            stored = positions.all_positions(tx, self.name)
            health = positions.get_health(tx, self.name)
        heads = {
            name: int(src.recorder.max_notification_id() or 0) for name, src in self.sources.items()
        }
        return Status(self.name, stored, heads, health)

    def reached(self, targets: Mapping[str, int]) -> bool:
        with self.store.read() as tx:
            stored = positions.all_positions(tx, self.name)
        return all(
            stored.get(source, 0) >= target
            for source, target in targets.items()
            if source in self.sources
        )

    def wait_until(self, targets: Mapping[str, int], timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the model reflects ``targets``."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not self.reached(targets):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True

    def channels(self) -> list[str]:
        return [
            str(getattr(src.recorder, "channel_name", ""))
            for src in self.sources.values()
            if getattr(src.recorder, "channel_name", "")
        ]


class WorkerThread(threading.Thread):
    """Runs one worker until stopped. After a failure it waits and tries again from the
    stored position (a fix deployed meanwhile resumes the model)."""

    def __init__(
        self,
        worker: ProjectionWorker,
        idle_wait: float = 0.5,
        retry_after: float = 5.0,
        gather: float = GATHER_SECONDS,
    ) -> None:
        super().__init__(name=f"projection-{worker.name}", daemon=True)
        self.worker = worker
        self.idle_wait = idle_wait
        self.gather = gather
        self.retry_after = retry_after
        self.stopping = threading.Event()
        self.last_error: ProjectionFailed | None = None

    def run(self) -> None:
        listener = self.worker.store.listener(self.worker.channels())
        try:
            while not self.stopping.is_set():
                try:
                    read = self.worker.run_once()
                except ProjectionFailed as failure:
                    self.last_error = failure
                    self.stopping.wait(self.retry_after)
                    continue
                except Exception:
                    log.exception("projection %s: store error; retrying", self.worker.name)
                    self.stopping.wait(self.retry_after)
                    continue
                if not read:
                    listener.wait(self.idle_wait)
                    # Woken by a commit: let the next few join it, so that a burst of
                    # small commits is applied as one batch (one transaction), not one
                    # each. It adds at most this much lag.
                    if self.gather:
                        self.stopping.wait(self.gather)
        finally:
            listener.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def start_workers(workers: Sequence[ProjectionWorker], **kwargs: Any) -> list[WorkerThread]:
    threads = [WorkerThread(worker, **kwargs) for worker in workers]
    for thread in threads:
        thread.start()
    return threads
