"""Verify the hash chain of a whole log, in batches, from the database.

``verify_log`` first reads the log's stop: the highest position of its events and of its
chain rows, in one statement. Every row at or below it was committed by then and stays
where it is (writers commit in position order: on PostgreSQL they hold the table lock
from before their notification ids are drawn until they commit; SQLite has one writer and
draws ``max(rowid) + 1``), so the events (``select_stored``) and the chain rows
(``select_chain``) are then read in batches of increasing position up to that stop and
merged by position: both sides describe the same rows even while writers go on. What is
written after the stop is for the next run. Memory stays flat: one batch of each side,
plus the verifier's bounded look-ahead and look-behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ordertrail.adapters.audit.chain import GENESIS, Break, Link, verify_links
from ordertrail.adapters.audit.offline import Checkpoint
from ordertrail.adapters.audit.recorders import ChainedRecorder, ChainRow, EventRow

if TYPE_CHECKING:
    from ordertrail.application.system import Ordertrail

BATCH_SIZE = 1_000


@dataclass(frozen=True)
class Report:
    """The verdict on one log, up to ``stop``."""

    application: str
    stop: int  # the highest position that was looked at
    count: int  # events verified (up to the first break, if any)
    head_position: int  # the last verified position (0: none)
    head_hash: bytes  # its hash (GENESIS: none)
    broken: Break | None
    seconds: float
    marks: Mapping[int, tuple[int, bytes]] = field(default_factory=dict)
    start: int = 0  # verified from the position after this one (0: from the first event)
    watched: frozenset[int] = frozenset()  # the positions ``marks`` was asked to keep

    @property
    def ok(self) -> bool:
        return self.broken is None

    def __str__(self) -> str:
        name = self.application or "log"
        since = f" (verified on from the checkpoint at {self.start})" if self.start else ""
        if self.broken is None:
            return (
                f"{name}: OK, {self.count} events{since}, head {self.head_position} "
                f"{self.head_hash.hex()}"
            )
        return f"{name}: BROKEN, {self.broken} ({self.count} events verified before it)"


def chained(recorder: Any) -> ChainedRecorder:
    """``recorder`` as a chained recorder, or a ``TypeError`` saying how to get one."""
    if not callable(getattr(recorder, "select_chain", None)):
        msg = (
            f"{type(recorder).__name__} keeps no hash chain: open the store with "
            "APPLICATION_RECORDER_TOPIC=ordertrail.adapters.audit.recorders:Chained..."
        )
        raise TypeError(msg)
    return recorder  # type: ignore[no-any-return]


def read_links(
    recorder: ChainedRecorder,
    *,
    after: int = 0,
    stop: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> Iterator[Link]:
    """Every position in ``(after, stop]`` that has an event, a chain row or both, in
    position order (see the module docstring for why this is consistent)."""
    last = recorder.log_stop() if stop is None else stop
    events = read_batches(recorder.select_stored, after, last, batch_size)
    chain = read_batches(recorder.select_chain, after, last, batch_size)
    event = next(events, None)
    row = next(chain, None)
    while event is not None or row is not None:
        if row is None or (event is not None and event[0] < row[0]):
            assert event is not None
            yield Link(*event, None, None)
            event = next(events, None)
        elif event is None or row[0] < event[0]:
            yield Link(row[0], None, None, None, None, row[2], row[1])
            row = next(chain, None)
        else:
            yield Link(*event, row[2], row[1])
            event = next(events, None)
            row = next(chain, None)


Row = TypeVar("Row", EventRow, ChainRow)


def read_batches(
    select: Callable[[int, int, int], list[Row]], after: int, stop: int, batch_size: int
) -> Iterator[Row]:
    """The rows ``select(after, stop, limit)`` returns, batch after batch, keyed on the
    position in their first column."""
    while after < stop:
        batch = select(after, stop, batch_size)
        if not batch:
            return
        yield from batch
        after = batch[-1][0]


def verify_log(
    recorder: Any,
    *,
    application: str = "",
    stop: int | None = None,
    batch_size: int = BATCH_SIZE,
    start: Checkpoint | None = None,
    watch: Collection[int] = (),
) -> Report:
    """Verify one log from its first event (or from the head of ``start``, a checkpoint
    checked beforehand) up to ``stop`` (default: its current end). ``watch``: positions
    whose running count and hash to keep in ``Report.marks`` (to check checkpoints)."""
    source = chained(recorder)
    started = time.perf_counter()
    last = source.log_stop() if stop is None else stop
    after, anchor, counted = 0, GENESIS, 0
    if start is not None:
        after, anchor, counted = start.position, bytes.fromhex(start.head_hash), start.count
    outcome = verify_links(
        read_links(source, after=after, stop=last, batch_size=batch_size),
        start_hash=anchor,
        start_position=after,
        start_count=counted,
        watch=watch,
    )
    return Report(
        application=application,
        stop=last,
        count=outcome.count,
        head_position=outcome.head_position,
        head_hash=outcome.head_hash,
        broken=outcome.broken,
        seconds=time.perf_counter() - started,
        marks=outcome.marks,
        start=after,
        watched=frozenset(watch),
    )


def verify_all(ot: Ordertrail, *, batch_size: int = BATCH_SIZE) -> list[Report]:
    """Verify the log of every application of a deployment."""
    return [
        verify_log(app.recorder, application=app.name, batch_size=batch_size)
        for app in ot.applications
    ]
