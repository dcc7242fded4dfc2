"""One deployment's bounded contexts, wired together: the composition root of the
application layer (the adapters build the env and the carriers, and call this)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Self

from ordertrail.application.aftersales import AfterSalesApplication
from ordertrail.application.aftersales_flows import DEFAULT_AFTER_SALES_WINDOW, AfterSalesFlows
from ordertrail.application.base import OrdertrailApplication
from ordertrail.application.carriers import CarrierDirectory, CarrierRule
from ordertrail.application.carts import CartsApplication
from ordertrail.application.catalog import CatalogApplication
from ordertrail.application.context import Clock, system_clock
from ordertrail.application.followers import PROCESSES, Follower, tracking_recorder
from ordertrail.application.fulfilment import Fulfilment
from ordertrail.application.fulfilment_processes import (
    CaseRefundRecorder,
    CaseSettlement,
    CodCapture,
    OrderCompletion,
    ParcelBooker,
    ParcelTracker,
)
from ordertrail.application.inventory import InventoryApplication
from ordertrail.application.knowledge import KnowledgeApplication
from ordertrail.application.logistics import LogisticsApplication
from ordertrail.application.ordering import DEFAULT_PAYMENT_WINDOW, Ordering
from ordertrail.application.orders import OrdersApplication
from ordertrail.application.processes import DEFAULT_PLACEMENT_GRACE, order_followers
from ordertrail.application.warehouses import Warehouse, WarehouseDirectory

#: Every store this package writes; each is one event table (or one SQLite file).
APPLICATION_NAMES = (
    "Catalog",
    "Inventory",
    "Orders",
    "Logistics",
    "AfterSales",
    "Knowledge",
    "Carts",
    PROCESSES,
)


@dataclass(frozen=True)
class Config:
    """Business settings of one deployment."""

    payment_window: timedelta = DEFAULT_PAYMENT_WINDOW
    placement_grace: timedelta = DEFAULT_PLACEMENT_GRACE
    after_sales_window: timedelta = DEFAULT_AFTER_SALES_WINDOW
    auto_release: bool = True  # paid orders go straight to fulfilment
    currency: str = "CNY"  # of carrier fees and cash-on-delivery accounts
    warehouses: tuple[Warehouse, ...] = field(default_factory=tuple)


class Ordertrail:
    """All contexts of one deployment.

    ``env`` is the eventsourcing environment (persistence module and its settings) that
    ``ordertrail.adapters.settings`` builds from a database URL; ``carriers`` and
    ``carrier_rules`` come from ``ordertrail.adapters.carriers``.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        config: Config | None = None,
        clock: Clock = system_clock,
        carriers: CarrierDirectory | None = None,
        carrier_rules: tuple[CarrierRule, ...] = (),
    ) -> None:
        self.config = config = config or Config()
        self.clock = clock
        self.catalog = CatalogApplication(env, clock=clock)
        self.inventory = InventoryApplication(
            env, warehouses=WarehouseDirectory(config.warehouses), clock=clock
        )
        self.orders = OrdersApplication(env, auto_release=config.auto_release, clock=clock)
        self.logistics = LogisticsApplication(env, currency=config.currency, clock=clock)
        self.aftersales = AfterSalesApplication(env, clock=clock)
        self.knowledge = KnowledgeApplication(env, clock=clock)
        self.ordering = Ordering(
            self.catalog, self.inventory, self.orders, payment_window=config.payment_window
        )
        self.carts = CartsApplication(env, self.ordering, clock=clock)
        self.fulfilment = Fulfilment(
            self.orders,
            self.logistics,
            self.inventory,
            carriers or CarrierDirectory(),
            carrier_rules,
        )
        self.returns = AfterSalesFlows(
            self.aftersales,
            self.orders,
            self.inventory,
            self.fulfilment,
            window=config.after_sales_window,
        )
        #: Called by ``close`` (resources the adapters attach, such as a lock's connection).
        self.on_close: list[Callable[[], None]] = []
        self.positions = positions = tracking_recorder(env)
        self.followers: tuple[Follower, ...] = (
            *order_followers(
                self.ordering,
                positions,
                config.placement_grace,
                other_holder=lambda holder: self.aftersales.find(holder) is not None,
            ),
            ParcelBooker(self.fulfilment, positions),
            ParcelTracker(self.fulfilment, self.ordering, positions),
            CodCapture(self.fulfilment, positions),
            OrderCompletion(self.ordering, config.after_sales_window, positions),
            CaseSettlement(self.returns, positions),
            CaseRefundRecorder(self.returns, positions),
        )

    def run_processes(self) -> int:
        """Run every process manager until none has anything more to do now."""
        total = 0
        while handled := sum(follower.run_until_idle() for follower in self.followers):
            total += handled
        return total

    @property
    def applications(self) -> tuple[OrdertrailApplication, ...]:
        return (
            self.catalog,
            self.inventory,
            self.orders,
            self.logistics,
            self.aftersales,
            self.knowledge,
            self.carts,
        )

    def close(self) -> None:
        for app in self.applications:
            app.close()
        for close in self.on_close:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
