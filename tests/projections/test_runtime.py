"""The projection runtime: positions move with the rows, failures are reported and resumed
from, rebuilds equal incremental builds, two workers never double-count."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from eventsourcing.domain import DomainEventProtocol

from ordertrail.adapters.settings import Settings
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.system import Ordertrail
from ordertrail.domain import InventoryItem
from ordertrail.projections.readmodel import Position
from ordertrail.projections.runner import ProjectionFailed, ProjectionWorker, WorkerThread
from ordertrail.projections.store import Tx
from tests.projections.support import EventCounter, opened
from tests.support.builders import staff


def receive_many(ot: Ordertrail, count: int, skus: int = 5) -> None:
    for n in range(count):
        ot.inventory.receive_stock(ReceiveStock(f"SKU-{n % skus}", 1 + n % 3), staff())


def expected_counts(ot: Ordertrail) -> dict[str, int]:
    notes = ot.inventory.recorder.select_notifications(start=None, limit=100_000)
    return dict(Counter(str(n.originator_id) for n in notes))


def test_a_worker_applies_every_event_once_and_stores_its_position(
    ot: Ordertrail, store_settings: Settings
) -> None:
    receive_many(ot, 30)
    with opened(store_settings) as store:
        worker = ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory}, batch_size=7)
        worker.setup()
        assert worker.run_until_idle() == ot.inventory.head()
        assert EventCounter.counts(store) == expected_counts(ot)
        status = worker.status()
        assert status.positions == {"Inventory": ot.inventory.head()}
        assert status.caught_up
        receive_many(ot, 3)
        assert worker.status().lag == {"Inventory": 6}  # 3 events + 3 receipts
        worker.run_until_idle()
        assert EventCounter.counts(store) == expected_counts(ot)


def test_rebuilding_gives_the_same_tables(ot: Ordertrail, store_settings: Settings) -> None:
    receive_many(ot, 20)
    with opened(store_settings) as store:
        worker = ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory})
        worker.setup()
        worker.run_until_idle()
        before = EventCounter.counts(store)
        worker.rebuild()
        assert EventCounter.counts(store) == before
        assert worker.status().health.state == "ok"


class BreaksOnThirdReceipt(EventCounter):
    name = "breaks_on_third_receipt"
    broken = True

    def handle(self, tx: Tx, event: DomainEventProtocol[Any], position: Position) -> None:
        super().handle(tx, event, position)
        if (
            self.broken
            and isinstance(event, InventoryItem.StockReceived)
            and event.reference == "third"
        ):
            raise ValueError("cannot handle the third receipt")


def test_a_failing_event_is_reported_and_the_worker_resumes_after_a_fix(
    ot: Ordertrail, store_settings: Settings
) -> None:
    for reference in ("first", "second", "third", "fourth"):
        ot.inventory.receive_stock(ReceiveStock("TEA-1", 1, reference=reference), staff())
    model = BreaksOnThirdReceipt()
    with opened(store_settings) as store:
        worker = ProjectionWorker(model, store, {"Inventory": ot.inventory})
        worker.setup()
        with pytest.raises(ProjectionFailed) as failed:
            worker.run_until_idle()
        notes = ot.inventory.recorder.select_notifications(start=None, limit=100)
        third = next(n for n in notes if b'"third"' in n.state)
        assert failed.value.position == third.id
        assert failed.value.topic == InventoryItem.StockReceived.TOPIC
        status = worker.status()
        assert status.health.state == "failed"
        assert status.health.failed_position == third.id
        assert "cannot handle the third receipt" in (status.health.error or "")
        assert status.positions == {"Inventory": third.id - 1}  # everything before it applied
        model.broken = False  # the fix is deployed
        worker.run_until_idle()
        assert worker.status().health.state == "ok"
        assert EventCounter.counts(store) == expected_counts(ot)


def test_two_workers_on_one_model_never_apply_a_batch_twice(
    ot: Ordertrail, store_settings: Settings
) -> None:
    receive_many(ot, 120)
    with opened(store_settings) as store:
        workers = [
            ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory}, batch_size=5)
            for _ in range(2)
        ]
        workers[0].setup()
        errors: list[BaseException] = []

        def drain(worker: ProjectionWorker) -> None:
            try:
                while not worker.status().caught_up:
                    worker.run_once()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert EventCounter.counts(store) == expected_counts(ot)


def test_waiting_for_a_position_returns_once_the_model_reflects_it(
    ot: Ordertrail, store_settings: Settings
) -> None:
    with opened(store_settings) as store:
        worker = ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory})
        worker.setup()
        accepted = ot.inventory.receive_stock(ReceiveStock("TEA-1", 1), staff())
        assert not worker.wait_until(accepted.positions, timeout=0.05)
        runner = threading.Timer(0.05, worker.run_until_idle)
        runner.start()
        assert worker.wait_until(accepted.positions, timeout=5)
        runner.join()


def test_rebuilding_a_model_with_nothing_to_apply_leaves_it_healthy(
    ot: Ordertrail, store_settings: Settings
) -> None:
    with opened(store_settings) as store:
        worker = ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory})
        worker.setup()
        assert worker.rebuild() == 0
        assert worker.status().health.state == "ok"


@pytest.mark.postgres
def test_a_worker_thread_survives_losing_its_connections(
    ot: Ordertrail, postgres_schema_url: str
) -> None:
    """As when PostgreSQL restarts: every connection of the read store is terminated under
    a running worker thread, which goes on projecting new events afterwards."""
    settings = Settings(database_url=postgres_schema_url)
    target = settings.postgres()
    with opened(settings) as store:
        worker = ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory})
        worker.setup()
        thread = WorkerThread(worker, idle_wait=0.05, retry_after=0.1)
        thread.start()
        try:
            receive_many(ot, 3)
            assert worker.wait_until({"Inventory": ot.inventory.head()}, timeout=10)
            with psycopg.connect(target.conninfo(), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND query ILIKE 'LISTEN%'"
                )
            time.sleep(0.3)
            receive_many(ot, 4)
            assert worker.wait_until({"Inventory": ot.inventory.head()}, timeout=10)
            assert thread.is_alive()
            assert EventCounter.counts(store) == expected_counts(ot)
        finally:
            thread.stop()


def test_workers_taking_turns_apply_each_event_once_though_each_remembers_its_place(
    ot: Ordertrail, store_settings: Settings
) -> None:
    """Two workers of one model (two processes, say) and a rebuild in between: each
    worker remembers where it left off, which is stale once the other has moved on."""
    with opened(store_settings) as store:
        first, second = (
            ProjectionWorker(EventCounter(), store, {"Inventory": ot.inventory}, batch_size=4)
            for _ in range(2)
        )
        first.setup()
        receive_many(ot, 5)
        assert first.run_until_idle() > 0
        before = ot.inventory.head()
        receive_many(ot, 3)
        # It read the stored position (the first's) and applied only what came since.
        assert second.run_until_idle() == ot.inventory.head() - before
        receive_many(ot, 4)
        # The first remembers where it stopped; the store is past it. Its batch is
        # refused, it reads the position again and goes on from there.
        first.run_until_idle()
        assert EventCounter.counts(store) == expected_counts(ot)
        second.rebuild()  # drops the rows and the positions, applies everything again
        receive_many(ot, 2)
        first.run_until_idle()
        second.run_until_idle()
        assert EventCounter.counts(store) == expected_counts(ot)
        assert first.status().caught_up


class BatchCounter(EventCounter):
    """An event counter that also counts the batches it was given."""

    def __init__(self) -> None:
        self.batches = 0

    def handle_many(
        self, tx: Tx, events: Sequence[tuple[DomainEventProtocol[Any], Position]]
    ) -> None:
        self.batches += 1
        super().handle_many(tx, events)


@pytest.mark.parametrize(("gather", "fewest", "most"), [(0.0, 12, 20), (0.4, 1, 8)])
def test_a_woken_worker_gathers_a_burst_of_commits_into_few_batches(
    ot: Ordertrail, store_settings: Settings, gather: float, fewest: int, most: int
) -> None:
    """Twenty commits 50 ms apart: a worker that reads as soon as it is woken applies
    about one batch each; one that waits ``gather`` seconds first applies a few."""
    with opened(store_settings) as store:
        model = BatchCounter()
        worker = ProjectionWorker(model, store, {"Inventory": ot.inventory})
        worker.setup()
        receive_many(ot, 5)  # the records exist: each commit below is one event + receipt
        worker.run_until_idle()
        model.batches = 0
        thread = WorkerThread(worker, idle_wait=0.01, gather=gather)
        thread.start()
        try:
            for _ in range(20):
                receive_many(ot, 1)
                time.sleep(0.05)
            assert worker.wait_until({"Inventory": ot.inventory.head()}, timeout=10)
        finally:
            thread.stop()
        assert EventCounter.counts(store) == expected_counts(ot)
        assert fewest <= model.batches <= most
