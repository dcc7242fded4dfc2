"""Wiring of the read side: which read models exist, where they are stored, their
workers, and read-your-writes waiting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.projections.aftersales_queue import AfterSalesQueue
from ordertrail.projections.audit_index import AuditIndex
from ordertrail.projections.catalog import CatalogBrowse
from ordertrail.projections.customer_orders import CustomerOrders
from ordertrail.projections.dashboard import MerchantDashboard
from ordertrail.projections.inventory_levels import InventoryLevels
from ordertrail.projections.knowledge import KnowledgeBase
from ordertrail.projections.order_tracking import OrderTracking
from ordertrail.projections.readmodel import EventSource, ReadModel
from ordertrail.projections.runner import (
    GATHER_SECONDS,
    ProjectionWorker,
    Status,
    WorkerThread,
    start_workers,
)
from ordertrail.projections.store import PostgresReadStore, ReadStore, SQLiteReadStore

#: Every read model, by name.
READ_MODELS: dict[str, type[ReadModel]] = {
    InventoryLevels.name: InventoryLevels,
    KnowledgeBase.name: KnowledgeBase,
    MerchantDashboard.name: MerchantDashboard,
    OrderTracking.name: OrderTracking,
    CustomerOrders.name: CustomerOrders,
    AfterSalesQueue.name: AfterSalesQueue,
    CatalogBrowse.name: CatalogBrowse,
    AuditIndex.name: AuditIndex,
}


class UnknownReadModel(ValueError):
    pass


def read_store(settings: Settings) -> ReadStore:
    """The store of every read model: the event store's PostgreSQL schema, or one SQLite
    file next to the embedded stores (shared memory for ``memory:``).

    On PostgreSQL its pool grows to the URL's ``pool_size`` + ``max_overflow`` (as the
    event store's do): queries and the idempotency store use it once or twice per
    request, so a pool smaller than the request concurrency makes requests queue."""
    if settings.backend == "postgres":
        target = settings.postgres()
        return PostgresReadStore(
            target.conninfo(), target.schema, pool_size=target.pool_size + target.max_overflow
        )
    if settings.backend == "memory":
        return SQLiteReadStore(f"file:ordertrail-read-{id(settings)}?mode=memory&cache=shared")
    directory = settings.sqlite_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return SQLiteReadStore(str(directory / "projections.db"))


def sources_of(ot: Ordertrail) -> dict[str, EventSource]:
    return {app.name: app for app in ot.applications}


@dataclass
class ReadSide:
    """The read models of one deployment: their workers (set up), and the queries' store."""

    store: ReadStore
    workers: dict[str, ProjectionWorker]
    threads: list[WorkerThread] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        ot: Ordertrail,
        store: ReadStore,
        names: Iterable[str] | None = None,
        batch_size: int = 500,
    ) -> ReadSide:
        chosen = list(names) if names is not None else list(READ_MODELS)
        unknown = [name for name in chosen if name not in READ_MODELS]
        if unknown:
            raise UnknownReadModel(
                f"no read model {', '.join(unknown)}; known: {', '.join(READ_MODELS)}"
            )
        sources = sources_of(ot)
        workers = {
            name: ProjectionWorker(READ_MODELS[name](), store, sources, batch_size)
            for name in chosen
        }
        for worker in workers.values():
            worker.setup()
        return cls(store, workers)

    def start(self, idle_wait: float = 0.5, gather: float = GATHER_SECONDS) -> None:
        """Run every worker in a background thread until ``stop`` (woken by new events,
        or every ``idle_wait`` seconds; ``gather``: see ``runner.GATHER_SECONDS``)."""
        self.threads = start_workers(
            list(self.workers.values()), idle_wait=idle_wait, gather=gather
        )

    def stop(self) -> None:
        for thread in self.threads:
            thread.stop()
        self.threads = []

    def run_until_idle(self) -> int:
        return sum(worker.run_until_idle() for worker in self.workers.values())

    def status(self) -> list[Status]:
        return [worker.status() for worker in self.workers.values()]

    def wait(self, name: str, positions: Mapping[str, int], timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until ``name`` reflects the given positions."""
        return self.workers[name].wait_until(positions, timeout)

    def worker(self, name: str) -> ProjectionWorker:
        try:
            return self.workers[name]
        except KeyError:
            raise UnknownReadModel(f"no read model {name}") from None

    def close(self) -> None:
        self.stop()
        self.store.close()


def format_status(statuses: Sequence[Status]) -> str:
    """A table of each read model's position, the head of its sources and the lag."""
    rows = [("read model", "source", "position", "head", "lag", "health")]
    for status in statuses:
        for source, head in status.heads.items():
            health = status.health.state
            if status.health.state == "failed":
                health = (
                    f"failed at {status.health.failed_source} "
                    f"{status.health.failed_position}: {status.health.error}"
                )
            rows.append(
                (
                    status.name,
                    source,
                    str(status.positions.get(source, 0)),
                    str(head),
                    str(status.lag[source]),
                    health,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row))
        for row in rows
    )
