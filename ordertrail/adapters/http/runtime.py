"""What the HTTP service runs on: the applications, the read side, the process managers,
and the response cache for idempotency keys. Built and started by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from litestar.security.jwt import JWTAuth, Token

from ordertrail.adapters.bootstrap import open_ordertrail, setup_lock
from ordertrail.adapters.demo import seed_catalog
from ordertrail.adapters.http.auth import Principal, jwt_auth
from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.http.idempotency import IdempotencyStore
from ordertrail.adapters.http.key_queue import KeyQueue
from ordertrail.adapters.read_models import ReadSide, read_store
from ordertrail.adapters.writer_lock import AdvisoryWriterLock, placement_writer_lock
from ordertrail.application.batching import DEFAULT_MAX_BATCH, PlacementBatcher
from ordertrail.application.context import Clock, CommandContext, system_clock
from ordertrail.application.followers import FollowerThreads
from ordertrail.application.ordering import PlaceOrder
from ordertrail.application.orders import OrderSnapshot
from ordertrail.application.receipts import Accepted
from ordertrail.application.system import Ordertrail
from ordertrail.domain.orders import Order

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: ApiSettings
    ot: Ordertrail
    read: ReadSide
    idempotency: IdempotencyStore
    auth: JWTAuth[Principal, Token]
    followers: FollowerThreads | None = field(default=None)
    #: Group commit for order placement (None: one transaction per order).
    placer: PlacementBatcher | None = field(default=None)
    #: Makes the placement writers of the service's worker processes take turns.
    writer_lock: AdvisoryWriterLock | None = field(default=None)
    janitor: Janitor | None = field(default=None)
    #: Claims and completions of idempotency keys, batched (set by ``open``).
    keys: KeyQueue = field(init=False)

    @classmethod
    def open(
        cls, settings: ApiSettings, auth: JWTAuth[Principal, Token], clock: Clock = system_clock
    ) -> Runtime:
        ot = open_ordertrail(settings.store, clock=clock)
        with setup_lock(settings.store):  # the read side's tables, one process at a time
            store = read_store(settings.store)
            read = ReadSide.open(ot, store)
            idempotency = IdempotencyStore(store)
        runtime = cls(settings, ot, read, idempotency, auth)
        runtime.keys = KeyQueue(idempotency)
        batch = placement_batch_size()
        if batch > 0:
            runtime.writer_lock = placement_writer_lock(settings.store)
            turns = runtime.writer_lock or contextlib.nullcontext
            runtime.placer = PlacementBatcher(ot.ordering, max_batch=batch, writer_lock=turns)
        with contextlib.suppress(RuntimeError):  # not in an event loop (tests, tools)
            # Blocking handlers (sync_to_thread) run on the loop's default executor:
            # min(32, cores + 4) threads, 6 on a 2-core machine, too few for requests
            # that each wait a commit.
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(io_threads(), thread_name_prefix="ordertrail-io")
            )
        if settings.seed_demo:
            added = seed_catalog(ot)
            log.info("demo catalog: %s products added", added)
        return runtime

    def start(self) -> None:
        if not self.settings.run_workers:
            return
        self.read.start(idle_wait=0.2)
        self.followers = FollowerThreads(self.ot.followers, interval=0.2)
        self.followers.start()
        self.janitor = Janitor(self)
        self.janitor.start()

    def purge_idempotency_keys(self, now: datetime | None = None) -> int:
        """Forget idempotency keys older than the retention (``Janitor`` calls it). Keys
        are stamped with the wall clock when first used, so ``now`` is the wall clock."""
        retention = timedelta(hours=self.settings.idempotency_retention_hours)
        return self.idempotency.purge((now or datetime.now(UTC)) - retention)

    def place_order(
        self, command: PlaceOrder, ctx: CommandContext
    ) -> tuple[Accepted[OrderSnapshot], Order | None]:
        """Place an order (through the batcher when there is one); the recorded order
        comes back when it is at hand, so the reply needs no read."""
        if self.placer is not None:
            return self.placer.place(command, ctx)
        return self.ot.ordering.place_order(command, ctx), None

    def close(self) -> None:
        self.keys.close()
        if self.placer is not None:
            self.placer.close()
        if self.writer_lock is not None:
            self.writer_lock.close()
        if self.followers is not None:
            self.followers.stop()
        if self.janitor is not None:
            self.janitor.stop()
        self.read.close()
        self.ot.close()


def new_auth(settings: ApiSettings) -> JWTAuth[Principal, Token]:
    return jwt_auth(settings.jwt_secret, timedelta(seconds=settings.token_ttl_seconds))


def placement_batch_size() -> int:
    """``ORDERTRAIL_PLACEMENT_BATCH``: the most orders one group commit carries
    (default 256); 0 turns group commit off (one transaction per order)."""
    raw = os.environ.get("ORDERTRAIL_PLACEMENT_BATCH", "")
    try:
        return DEFAULT_MAX_BATCH if raw == "" else max(int(raw), 0)
    except ValueError:
        return DEFAULT_MAX_BATCH


def io_threads() -> int:
    """``ORDERTRAIL_IO_THREADS``: threads for blocking I/O from async code (default 64)."""
    raw = os.environ.get("ORDERTRAIL_IO_THREADS", "")
    try:
        return 64 if raw == "" else max(int(raw), 1)
    except ValueError:
        return 64


class Janitor(threading.Thread):
    """Purges expired idempotency keys now and then (every worker may: it is one DELETE)."""

    def __init__(self, runtime: Runtime, interval: float = 600.0) -> None:
        super().__init__(name="ordertrail-janitor", daemon=True)
        self.runtime = runtime
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                purged = self.runtime.purge_idempotency_keys()
            except Exception:
                log.exception("purging idempotency keys failed; trying again later")
            else:
                if purged:
                    log.info("purged %s idempotency keys", purged)
            if self.stopping.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
