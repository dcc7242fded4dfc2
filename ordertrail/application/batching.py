"""Group commit for order placement: many concurrent ``PlaceOrder`` commands decided by
one writer, their reservations saved in one inventory transaction and their orders (with
their receipts) in one orders transaction.

Why: the event store serialises every writer of one application's table (a table lock
per insert), and a hot SKU's stock record is one aggregate that every buyer updates, so
one transaction per order caps placement at the store's transaction rate and turns a
flash sale into a storm of version conflicts. One writer per process decides a whole
batch on in-memory stock records (each reservation sees the ones before it), then writes
the batch in two transactions, so the cost of a commit is shared by every order in it.

What does not change (``Ordering.place_order`` is the reference):

- a command's result is acknowledged only after its order and receipt are committed;
- all SKUs of an order are reserved in the same inventory transaction, or none is;
- reservations are saved before the order; a crash in between leaves reservations that
  the placement reaper abandons (an ``AbandonedPlacement`` under the order id) — the
  batch adds nothing new to recover from;
- a command id already handled returns its recorded outcome (its receipt);
- a domain error (insufficient stock, unlisted product, bad order) goes to its own
  command only; the rest of the batch goes ahead;
- if a batch transaction fails (store unavailable), every command in it fails, none is
  acknowledged; the reservations of orders that were not recorded are released.

The work that does not need the writer — validation of the order's own rules, and a read
of any stock record the writer does not hold — runs in the caller's thread, before the
command joins a batch. What is read per order otherwise is read per batch by the writer:
whether each order exists already (a retried command: it gets its recorded outcome), and
the catalog's products (``ProductCache``: current as of after the batch's last command
arrived, read only when they changed).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ordertrail.application.base import backoff
from ordertrail.application.context import CommandContext
from ordertrail.application.errors import ConcurrencyConflict, StoreUnavailable
from ordertrail.application.ordering import (
    Ordering,
    PlaceOrder,
    ensure_listed,
)
from ordertrail.application.orders import OrderSnapshot
from ordertrail.application.placement import allocate
from ordertrail.application.product_cache import ProductCache
from ordertrail.application.receipts import Accepted, CommandReceipt, fingerprint
from ordertrail.application.serialization import encode_json
from ordertrail.domain import ids
from ordertrail.domain.catalog import Product
from ordertrail.domain.errors import (
    DomainError,
    PlacementAbandoned,
    ProductNotFound,
    ReservationConflict,
)
from ordertrail.domain.inventory import InventoryItem, ReleaseReason
from ordertrail.domain.order_parts import DeliveryGroup
from ordertrail.domain.orders import AbandonedPlacement, Order

DEFAULT_MAX_BATCH = 256
#: Stock records kept in memory between batches (beyond it, the least used are dropped).
MAX_ITEMS_IN_MEMORY = 20_000
#: Locks that keep two threads of one batcher from reading the same stock record at once
#: (a record's key picks one of them).
LOAD_STRIPES = 64

Key = tuple[str, str]  # (sku, warehouse)

#: Held by a writer while it decides and saves one batch (see ``PlacementBatcher``).
WriterLock = Callable[[], AbstractContextManager[object]]


class BatcherClosed(RuntimeError):
    """The batcher was closed: the command was not run."""


@dataclass
class _Job:
    command: PlaceOrder
    ctx: CommandContext
    order_id: UUID
    digest: str
    products: dict[str, Product]
    groups: tuple[DeliveryGroup, ...]
    candidates: dict[str, list[str]]
    future: Future[Accepted[OrderSnapshot]] = field(default_factory=Future)
    #: Stock records the writer did not hold when the job was prepared, read by the
    #: caller (so that the writer does not read a long tail one record at a time).
    prefetched: dict[Key, InventoryItem] = field(default_factory=dict)
    # Decided in the writer:
    chosen: dict[int, str] = field(default_factory=dict)
    order: Order | None = None
    error: BaseException | None = None

    def stock_keys(self) -> set[Key]:
        return {
            (line.sku, warehouse)
            for line in self.command.lines
            for warehouse in self.candidates.get(line.delivery_group, [])
        }


@dataclass
class BatchStats:
    """Counters for benchmarks and logs (read without a lock: approximate)."""

    batches: int = 0
    commands: int = 0
    inventory_conflicts: int = 0
    largest_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.commands / self.batches if self.batches else 0.0


class PlacementBatcher:
    """Places orders in batches: ``place_order`` has the contract of
    ``Ordering.place_order`` and may be called from many threads at once.

    One writer thread per batcher decides and saves; stock records it has saved stay in
    its memory (no reload, no copy of a hot SKU's thousands of reservations) and are
    brought up to date from the store (events after their version) before each batch, so
    a change made by anyone else (a cancellation, a restock, another process) is seen.
    Should another writer commit in between, the inventory save fails on the version and
    the batch is decided again on fresh stock.

    ``writer_lock`` makes the writers of several processes take turns: held from the
    catch-up to the end of the inventory transaction, it means a batch is decided on
    stock that no other batcher can change before it is saved, so their batches stop
    invalidating each other (each conflict drops a hot SKU's record and reads it again,
    thousands of reservations). It is an optimisation only: without it, or when it cannot
    be had, the version check still keeps every decision correct.
    """

    def __init__(
        self,
        ordering: Ordering,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "placement-batcher",
        start: bool = True,
        writer_lock: WriterLock = nullcontext,
    ) -> None:
        self.ordering = ordering
        self.max_batch = max_batch
        self._writer_lock = writer_lock
        self.stats = BatchStats()
        self._queue: deque[_Job] = deque()
        self._wakeup = threading.Condition()
        self._items: dict[UUID, InventoryItem] = {}
        #: The inventory log has been read up to here into the items in memory.
        self._seen: int | None = None
        self._placed: dict[UUID, Order] = {}  # recorded, until ``place`` takes them
        self._products = ProductCache(ordering.catalog)
        self._loading = [threading.Lock() for _ in range(LOAD_STRIPES)]
        self._closed = False
        #: Called between the two transactions of a batch; tests make it raise.
        self.crashpoint: Callable[[str], None] = lambda _: None
        # Batches whose reservations are saved, waiting for their orders to be recorded:
        # the writer decides the next batch while the recorder commits the last one.
        self._recording: queue.Queue[tuple[list[_Job], int | None] | None] = queue.Queue(2)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._recorder = threading.Thread(
            target=self._run_recorder, name=f"{name}-recorder", daemon=True
        )
        if start:
            self.start()

    def start(self) -> None:
        """Start the writer (of a batcher made with ``start=False``)."""
        self._recorder.start()
        self._thread.start()

    # --- callers -------------------------------------------------------------------------

    def place_order(self, command: PlaceOrder, ctx: CommandContext) -> Accepted[OrderSnapshot]:
        """Place one order through the next batch; blocks until it is committed."""
        return self.place(command, ctx)[0]

    def place(
        self, command: PlaceOrder, ctx: CommandContext
    ) -> tuple[Accepted[OrderSnapshot], Order | None]:
        """Like ``place_order``, with the order as recorded (None for a replayed
        outcome), so that a caller need not read it back from the store."""
        submitted = self.submit(command, ctx)
        if isinstance(submitted, Accepted):
            return submitted, None
        accepted = submitted.result()
        placed = self._placed.pop(accepted.value.order_id, None)
        return accepted, None if accepted.replayed else placed

    def submit(
        self, command: PlaceOrder, ctx: CommandContext
    ) -> Accepted[OrderSnapshot] | Future[Accepted[OrderSnapshot]]:
        """Check and prepare a command here, then queue it; a command handled before
        returns its recorded outcome at once. Domain errors are raised here."""
        ordering = self.ordering
        order_id = ids.order_id(ctx.command_id)
        digest = fingerprint("PlaceOrder", command)
        # Whether this command ran before is asked by the writer, for the whole batch.
        # The products are the cache's when it has them all (the writer checks them
        # again, current, before deciding), else read here.
        cached = {
            line.sku: product
            for line in command.lines
            if (product := self._products.peek(line.sku)) is not None
        }
        products, groups, candidates = ordering._prepared(command, order_id, cached)
        job = _Job(command, ctx, order_id, digest, products, groups, candidates)
        for sku, warehouse in job.stock_keys():
            if ids.inventory_item_id(sku, warehouse) not in self._items:
                # A record another caller is reading already (a hot SKU the writer has
                # just dropped after a conflict: every caller would read it, each a
                # round trip and a copy of its thousands of reservations) is left to
                # that caller's job or to the writer: this command joins the queue now.
                lock = self._load_lock(sku, warehouse)
                if not lock.acquire(blocking=False):
                    continue
                try:
                    item = self._read(sku, warehouse)
                finally:
                    lock.release()
                if item is not None:
                    job.prefetched[(sku, warehouse)] = item
        with self._wakeup:
            if self._closed:
                raise BatcherClosed("the placement batcher is closed")
            self._queue.append(job)
            self._wakeup.notify()
        return job.future

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking commands, finish the queued ones, stop the writer."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._recorder.is_alive():
            self._recording.put(None)
            self._recorder.join(timeout)

    # --- the writer ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._closed:
                    self._wakeup.wait()
                if not self._queue:
                    return
                batch = self._take()
            try:
                self._place(batch)
            except BaseException as error:
                # A crash of the writer (or a test's simulated one): nothing more of this
                # batch is acknowledged; memory may not match the store any more.
                self._items.clear()
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
                if not isinstance(error, Exception):
                    # Simulated (or real) crash: stop like a dead process would.
                    self._fail_queued(error)
                    self._recording.put(None)
                    return

    def _run_recorder(self) -> None:
        while (work := self._recording.get()) is not None:
            jobs, inventory_position = work
            try:
                self._record(jobs, inventory_position)
            except BaseException as error:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                if not isinstance(error, Exception):
                    return

    def _take(self) -> list[_Job]:
        """Up to ``max_batch`` queued jobs, one per command id (a second job with the same
        id waits for the next batch, where it finds the first one's receipt)."""
        batch: list[_Job] = []
        seen: set[UUID] = set()
        later: list[_Job] = []
        while self._queue and len(batch) < self.max_batch:
            job = self._queue.popleft()
            if job.order_id in seen:
                later.append(job)
            else:
                seen.add(job.order_id)
                batch.append(job)
        self._queue.extendleft(reversed(later))
        return batch

    def _fail_queued(self, error: BaseException) -> None:
        with self._wakeup:
            self._closed = True
            while self._queue:
                self._queue.popleft().future.set_exception(error)

    def _place(self, batch: list[_Job]) -> None:
        self.stats.batches += 1
        self.stats.commands += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        batch = self._with_current_products(self._not_placed(batch))
        if not batch:
            return
        reserved, inventory_position = self._reserve(batch)
        if not reserved:
            return
        self.crashpoint("reserved")
        self._recording.put(([job for job in batch if job.order is not None], inventory_position))

    # --- step 0: per batch, what each command would otherwise read on its own ------------

    def _not_placed(self, batch: list[_Job]) -> list[_Job]:
        """The jobs whose order does not exist yet (one query for the batch); each of the
        others gets its recorded outcome, or its error (an abandoned placement)."""
        try:
            existing = self.ordering.orders.find_many_as([job.order_id for job in batch], Aggregate)
        except Exception as error:
            self._fail_all(batch, StoreUnavailable(f"orders store unavailable: {error}"))
            return []
        if not existing:
            return batch
        fresh: list[_Job] = []
        for job in batch:
            if job.order_id not in existing:
                fresh.append(job)
                continue
            try:
                replay = self.ordering._placed_before(job.order_id, job.ctx.command_id, job.digest)
            except Exception as error:
                job.future.set_exception(error)
                continue
            if replay is None:  # pragma: no cover - it was there a moment ago
                fresh.append(job)
            else:
                job.future.set_result(replay)
        return fresh

    def _with_current_products(self, batch: list[_Job]) -> list[_Job]:
        """Give each job its products as they are now (the caller's may be a batch old):
        a product delisted since fails its order alone."""
        if not batch:
            return batch
        try:
            self._products.refresh()
            current = self._products.products(
                line.sku for job in batch for line in job.command.lines
            )
        except Exception as error:
            self._fail_all(batch, StoreUnavailable(f"catalog store unavailable: {error}"))
            return []
        kept: list[_Job] = []
        for job in batch:
            try:
                products = {}
                for sku in job.products:
                    if sku not in current:  # pragma: no cover - products are never removed
                        raise ProductNotFound(f"no product with SKU {sku}", sku=sku)
                    products[sku] = current[sku]
                ensure_listed(products.values())
            except DomainError as error:
                job.future.set_exception(error)
                continue
            job.products = products
            kept.append(job)
        return kept

    # --- step 1: decide every order on in-memory stock and save the reservations ---------

    def _reserve(self, batch: list[_Job]) -> tuple[bool, int | None]:
        """Decide each job; save all reservations in one transaction. Returns whether it
        went ahead (if not, every job has its error) and the inventory position (None
        when nothing new was reserved)."""
        inventory = self.ordering.inventory
        for attempt in range(inventory.max_attempts):
            with self._writer_lock():
                outcome = self._reserve_once(batch)
            if outcome is not None:
                return outcome
            backoff(attempt)
        return self._fail_all(
            batch,
            ConcurrencyConflict(
                "stock kept changing under this batch of orders; retry with the same command id"
            ),
        )

    def _reserve_once(self, batch: list[_Job]) -> tuple[bool, int | None] | None:
        """One attempt of ``_reserve``; None when another writer got in first."""
        inventory = self.ordering.inventory
        now = inventory.clock()
        try:
            items = self._items_for(batch)
        except DomainError as error:
            return self._fail_all(batch, error)
        for job in batch:
            job.order, job.error = None, None
            try:
                self._decide(job, items, now)
            except DomainError as error:
                job.error = error
        changed = [item for item in items.values() if item.pending_events]
        if not changed:
            return self._settle_refusals(batch, None)
        try:
            position = inventory.save_all(changed)
        except IntegrityError:
            # Someone else wrote one of these records: decide again on fresh state.
            self.stats.inventory_conflicts += 1
            for item in changed:
                self._items.pop(item.id, None)
            for job in batch:
                job.prefetched.clear()
            return None
        except Exception as error:
            self._items.clear()  # their unsaved events are gone: reload next time
            return self._fail_all(batch, error)
        return self._settle_refusals(batch, position)

    def _settle_refusals(self, batch: list[_Job], position: int | None) -> tuple[bool, int | None]:
        """Refused jobs get their error now: they were decided on the state just saved."""
        for job in batch:
            if job.error is not None:
                job.future.set_exception(job.error)
        return True, position

    def _decide(self, job: _Job, items: dict[Key, InventoryItem], now: datetime) -> None:
        """Allocate and reserve one order on the batch's in-memory stock records."""
        order_id = job.order_id
        mine = {key: items[key] for key in job.stock_keys() if key in items}
        available = {key: item.available + item.held_for(order_id) for key, item in mine.items()}
        job.chosen = allocate(job.command.lines, job.candidates, available)
        order = self._order_of(job, now)
        quantities = order.reserved_quantities()
        for key, quantity in quantities.items():
            held = mine[key].reservations.get(order_id)
            if held is not None and held.quantity + held.shipped != quantity:
                raise ReservationConflict(
                    f"order {order_id} already holds {held.quantity} of {key[0]}",
                    order_id=str(order_id),
                    sku=key[0],
                )
        reserved = 0
        try:
            for key, quantity in quantities.items():
                mine[key].reserve(
                    order_id,
                    quantity,
                    expires_at=order.payment_due_at,
                    meta=job.ctx.meta,
                    now=now,
                )
                reserved += 1
        except DomainError:
            if reserved:  # cannot happen after the checks above; never leave half an order
                raise RuntimeError("a reservation failed half way through an order") from None
            raise
        job.order = order

    def _order_of(self, job: _Job, now: datetime) -> Order:
        return self.ordering.decide_order(
            job.command,
            job.ctx,
            order_id=job.order_id,
            products=job.products,
            groups=job.groups,
            chosen=job.chosen,
            now=now,
        )

    def _items_for(self, batch: Sequence[_Job]) -> dict[Key, InventoryItem]:
        """The stock records the batch needs, as they are in the store now."""
        try:
            self._catch_up()
        except Exception as error:
            raise StoreUnavailable(f"Inventory store unavailable: {error}") from error
        keys = sorted({key for job in batch for key in job.stock_keys()})
        prefetched = {key: item for job in batch for key, item in job.prefetched.items()}
        items: dict[Key, InventoryItem] = {}
        for sku, warehouse in keys:
            item_id = ids.inventory_item_id(sku, warehouse)
            item = self._items.get(item_id)
            if item is None:
                # Read by the caller moments ago; if it has changed since, the save
                # fails on its version and the batch is decided again on a fresh read.
                item = prefetched.pop((sku, warehouse), None) or self._load(sku, warehouse)
                if item is None:
                    continue
            self._items[item_id] = item
            items[(sku, warehouse)] = item
        if len(self._items) > MAX_ITEMS_IN_MEMORY:
            wanted = {item.id for item in items.values()}
            self._items = {k: v for k, v in self._items.items() if k in wanted}
        return items

    def _load_lock(self, sku: str, warehouse: str) -> threading.Lock:
        return self._loading[hash((sku, warehouse)) % LOAD_STRIPES]

    def _load(self, sku: str, warehouse: str) -> InventoryItem | None:
        """Read a stock record for the writer (waiting for a caller reading it)."""
        with self._load_lock(sku, warehouse):
            return self._read(sku, warehouse)

    def _read(self, sku: str, warehouse: str, attempts: int = 10) -> InventoryItem | None:
        """Read a stock record. The library's aggregate cache copies a cached record
        outside the lock under which another thread brings it up to date, which fails
        with "dictionary changed size during iteration": the batcher's own threads read a
        record one at a time (``_load_lock``); anyone else's read may still race: read
        again."""
        for _ in range(attempts - 1):
            try:
                return self.ordering.inventory.item(sku, warehouse)
            except RuntimeError:
                time.sleep(0.001)
        return self.ordering.inventory.item(sku, warehouse)

    def _catch_up(self, page: int = 1000) -> None:
        """Bring the stock records in memory up to date with one read of the inventory
        log since the last batch: whatever anyone else wrote (a cancellation, a restock,
        another process's batch) is applied to them. Notification ids are in commit order
        (the store locks the table for each insert), so nothing committed is skipped."""
        inventory = self.ordering.inventory
        if self._seen is None or not self._items:
            self._items.clear()
            self._seen = inventory.recorder.max_notification_id() or 0
            return  # what is loaded from now on is at least this new
        while True:
            notes = inventory.recorder.select_notifications(
                start=self._seen, limit=page, inclusive_of_start=False
            )
            for note in notes:
                self._seen = max(self._seen, note.id)
                originator = note.originator_id
                item = self._items.get(
                    originator if isinstance(originator, UUID) else UUID(originator)
                )
                if item is None or note.originator_version <= item.version:
                    continue  # not in memory, or already applied (the writer's own)
                if note.originator_version != item.version + 1:
                    self._items.pop(item.id)  # missed one: load it afresh when needed
                    continue
                updated = project_aggregate(item, [inventory.mapper.to_domain_event(note)])
                if isinstance(updated, InventoryItem):
                    self._items[item.id] = updated
            if len(notes) < page:
                return

    # --- step 2: record the orders and their receipts ------------------------------------

    def _record(self, jobs: list[_Job], inventory_position: int | None) -> None:
        orders = self.ordering.orders
        pending = list(jobs)
        for _attempt in range(orders.max_attempts):
            if not pending:
                return
            records: list[Aggregate] = []
            snapshots: dict[UUID, OrderSnapshot] = {}
            for job in pending:
                assert job.order is not None
                # A failed save took the events out of the aggregates: rebuild them
                # (same decision, same time).
                if not job.order.pending_events:
                    job.order = self._order_of(job, job.order.created_on)
                snapshots[job.order_id] = snapshot = OrderSnapshot.of(job.order)
                records += [job.order, self._receipt(job, snapshot, job.order.created_on)]
            try:
                position = orders.save_all(records)
            except IntegrityError:
                # One of these orders exists already: a duplicate of its command placed
                # it, or the reaper abandoned it. Settle those alone; save the rest.
                resolved = [job for job in pending if self._settle_existing(job)]
                if not resolved:
                    self._compensate(pending, ConcurrencyConflict("orders kept conflicting"))
                    return
                pending = [job for job in pending if job not in resolved]
                continue
            except Exception as error:
                self._compensate(pending, error)
                return
            positions = {orders.name: position}
            if inventory_position is not None:
                positions[self.ordering.inventory.name] = inventory_position
            for job in pending:
                assert job.order is not None
                if len(self._placed) < MAX_ITEMS_IN_MEMORY:  # bounded if nobody takes them
                    self._placed[job.order_id] = job.order
                job.future.set_result(Accepted(snapshots[job.order_id], dict(positions)))
            return
        self._compensate(pending, ConcurrencyConflict("orders kept conflicting"))

    def _receipt(self, job: _Job, snapshot: OrderSnapshot, now: datetime) -> CommandReceipt:
        return CommandReceipt.record(
            job.ctx.command_id,
            command_name="PlaceOrder",
            fingerprint=job.digest,
            outcome=encode_json(snapshot),
            meta=job.ctx.meta,
            now=now,
        )

    def _settle_existing(self, job: _Job) -> bool:
        """If the job's order id is taken, give the job its answer and return True."""
        existing = self.ordering.orders.find(job.order_id)
        if existing is None:
            return False
        if isinstance(existing, AbandonedPlacement):
            self._release([job])
            job.future.set_exception(
                PlacementAbandoned(
                    "this order's placement took too long and was abandoned; its stock "
                    "was released; place it again with a new command id",
                    order_id=str(job.order_id),
                )
            )
            return True
        try:
            replay = self.ordering._placed_before(job.order_id, job.ctx.command_id, job.digest)
        except DomainError as error:
            job.future.set_exception(error)
            return True
        if replay is None:  # pragma: no cover - found above
            return False
        job.future.set_result(replay)
        return True

    def _compensate(self, jobs: list[_Job], error: BaseException) -> None:
        """The orders were not recorded: release what they reserved, fail every job."""
        # If the store is down, the placement reaper releases it later.
        with contextlib.suppress(Exception):
            self._release([job for job in jobs if self.ordering.orders.find(job.order_id) is None])
        for job in jobs:
            job.future.set_exception(error)

    def _release(self, jobs: Iterable[_Job]) -> None:
        for job in jobs:
            assert job.order is not None
            item_ids = [
                ids.inventory_item_id(sku, wh) for sku, wh in job.order.reserved_quantities()
            ]
            self.ordering.inventory.release_for_order(
                job.order_id, item_ids, ReleaseReason.PLACEMENT_FAILED, job.ctx.meta
            )
            # The writer's copies of these records are now behind: its next batch reads
            # the release from the log (or its save conflicts and decides again).

    def _fail_all(self, batch: Iterable[_Job], error: BaseException) -> tuple[bool, None]:
        for job in batch:
            if not job.future.done():
                job.future.set_exception(error)
        return False, None


def drain(futures: Iterable[Future[Accepted[OrderSnapshot]]]) -> list[object]:
    """Results or errors of many submitted commands, in order (for tests and tools)."""
    out: list[object] = []
    for future in futures:
        try:
            out.append(future.result())
        except Exception as error:
            out.append(error)
    return out
