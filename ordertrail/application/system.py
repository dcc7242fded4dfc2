"""One deployment's bounded contexts, wired together: the composition root of the
application layer (the adapters build the env and call this)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Self

from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.catalog import CatalogApplication
from ordertrail.application.context import Clock, system_clock
from ordertrail.application.followers import PROCESSES, Follower, tracking_recorder
from ordertrail.application.inventory import InventoryApplication
from ordertrail.application.knowledge import KnowledgeApplication
from ordertrail.application.ordering import DEFAULT_PAYMENT_WINDOW, Ordering
from ordertrail.application.orders import OrdersApplication
from ordertrail.application.processes import DEFAULT_PLACEMENT_GRACE, order_followers
from ordertrail.application.warehouses import Warehouse, WarehouseDirectory

#: Every store this package writes; each is one event table (or one SQLite file).
APPLICATION_NAMES = ("Catalog", "Inventory", "Orders", "Knowledge", PROCESSES)


@dataclass(frozen=True)
class Config:
    """Business settings of one deployment."""

    payment_window: timedelta = DEFAULT_PAYMENT_WINDOW
    placement_grace: timedelta = DEFAULT_PLACEMENT_GRACE
    auto_release: bool = True  # paid orders go straight to fulfilment
    warehouses: tuple[Warehouse, ...] = field(default_factory=tuple)


class Ordertrail:
    """All contexts of one deployment.

    ``env`` is the eventsourcing environment (persistence module and its settings) that
    ``ordertrail.adapters.settings`` builds from a database URL.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        config: Config | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.config = config or Config()
        self.clock = clock
        self.catalog = CatalogApplication(env, clock=clock)
        self.inventory = InventoryApplication(
            env, warehouses=WarehouseDirectory(self.config.warehouses), clock=clock
        )
        self.orders = OrdersApplication(env, auto_release=self.config.auto_release, clock=clock)
        self.ordering = Ordering(
            self.catalog, self.inventory, self.orders, payment_window=self.config.payment_window
        )
        self.knowledge = KnowledgeApplication(env, clock=clock)
        self.positions = tracking_recorder(env)
        self.followers: tuple[Follower, ...] = tuple(
            order_followers(self.ordering, self.positions, self.config.placement_grace)
        )

    def run_processes(self) -> int:
        """Run every process manager until it has nothing more to do now."""
        return sum(follower.run_until_idle() for follower in self.followers)

    def close(self) -> None:
        for app in self.applications:
            app.close()

    @property
    def applications(self) -> tuple[OrdertrailApplication, ...]:
        return (self.catalog, self.inventory, self.orders, self.knowledge)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
