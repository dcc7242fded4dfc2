"""Helpers for the merchant-dashboard tests: a shop driven through the real Ordertrail at
chosen times, its read store with the dashboard and inventory-levels workers, and an
oracle that computes the dashboard in plain Python straight from the event logs (no SQL,
none of the read model's code)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from uuid import UUID

from ordertrail.adapters.bootstrap import prepare_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import (
    ApproveCase,
    CloseCase,
    InspectReturn,
    ReceiveReturn,
)
from ordertrail.application.aftersales_flows import CaseLineRequest, RequestCase
from ordertrail.application.catalog import RegisterProduct
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.logistics import CancelParcel, ShipmentSnapshot
from ordertrail.application.ordering import CancelOrder, PlaceOrder
from ordertrail.application.orders import (
    CapturePayment,
    ConfirmCashOnDelivery,
    OrderSnapshot,
    RefundPayment,
)
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Discount, Money, PaymentMethod, PlannedPayment
from ordertrail.domain.aftersales import AfterSalesCase, CaseKind, CaseReason, LineInspection
from ordertrail.domain.orders import Order
from ordertrail.domain.shipments import Milestone
from ordertrail.projections.dashboard import (
    Bucket,
    CaseAges,
    DashboardQueries,
    Granularity,
    MerchantDashboard,
    MethodShare,
    SkuSales,
    periods,
)
from ordertrail.projections.inventory_levels import InventoryLevels
from ordertrail.projections.readmodel import EventSource
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.support import GatedSource, empty_store_like, opened
from tests.support.builders import customer, home, provider, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import notify, scan, ship

DAY1 = datetime(2026, 11, 11, tzinfo=UTC)

DASHBOARD_TABLES = tuple(MerchantDashboard().tables())


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the scenario: day 1 is 2026-11-11 (UTC)."""
    return DAY1 + timedelta(days=day - 1, hours=hour, minutes=minute)


@dataclass
class Shop:
    """The real Ordertrail at the test's clock, and the read side of the dashboard."""

    ot: Ordertrail
    clock: FakeClock
    store: ReadStore
    dashboard: ProjectionWorker
    inventory: ProjectionWorker
    shipments: dict[UUID, ShipmentSnapshot] = field(default_factory=dict)

    @property
    def queries(self) -> DashboardQueries:
        return DashboardQueries(self.store)

    def sources(self, gates: Sequence[GatedSource] = ()) -> dict[str, EventSource]:
        chosen: dict[str, EventSource] = {
            "Orders": self.ot.orders,
            "AfterSales": self.ot.aftersales,
        }
        chosen.update({gate.name: gate for gate in gates})
        return chosen

    def worker(self, batch_size: int = 500, gates: Sequence[GatedSource] = ()) -> ProjectionWorker:
        worker = ProjectionWorker(MerchantDashboard(), self.store, self.sources(gates), batch_size)
        worker.setup()
        return worker

    def run(self) -> None:
        """Process managers, then both read models, until there is nothing left to do."""
        self.ot.run_processes()
        self.dashboard.run_until_idle()
        self.inventory.run_until_idle()

    def when(self, moment: datetime | None) -> None:
        if moment is not None:
            self.clock.now = moment

    # --- commands ------------------------------------------------------------------------

    def product(self, sku: str, price: Money, stock: int) -> None:
        self.ot.catalog.register_product(
            RegisterProduct(sku, f"Product {sku}", "tea", price), staff()
        )
        if stock:
            self.ot.inventory.receive_stock(ReceiveStock(sku, stock), staff())

    def place(
        self,
        lines: Sequence[tuple[str, int]],
        plan: Sequence[tuple[PaymentMethod, Money]],
        moment: datetime | None = None,
        *,
        shipping: Money | None = None,
        discount: Money | None = None,
    ) -> OrderSnapshot:
        self.when(moment)
        group = home()
        command = PlaceOrder(
            "cust-1",
            tuple(LineRequest(sku, qty, group.group_id) for sku, qty in lines),
            (group,),
            tuple(PlannedPayment(method, amount) for method, amount in plan),
            shipping_fee=shipping,
            discounts=(Discount.create("WELCOME", discount),) if discount else (),
        )
        return self.ot.ordering.place_order(command, customer()).value

    def capture(
        self, order: OrderSnapshot, payment: int, amount: Money, moment: datetime | None = None
    ) -> OrderSnapshot:
        self.when(moment)
        payment_id = order.payments[payment].payment_id
        ref = f"cap-{payment_id}-{self.clock.now.isoformat()}"
        command = CapturePayment(order.order_id, payment_id, amount, ref)
        return self.ot.orders.capture_payment(command, provider()).value

    def confirm_cod(self, order: OrderSnapshot, moment: datetime | None = None) -> None:
        self.when(moment)
        self.ot.orders.confirm_cash_on_delivery(ConfirmCashOnDelivery(order.order_id), staff())

    def cancel(self, order: OrderSnapshot, moment: datetime | None = None) -> None:
        self.when(moment)
        self.ot.ordering.cancel_order(CancelOrder(order.order_id, "changed mind"), customer())

    def refund(
        self, order: OrderSnapshot, payment: int, amount: Money, moment: datetime | None = None
    ) -> None:
        self.when(moment)
        payment_id = order.payments[payment].payment_id
        command = RefundPayment(
            order.order_id, payment_id, amount, f"rf-{self.clock.now.isoformat()}", "goodwill"
        )
        self.ot.orders.refund_payment(command, staff())

    def ship(
        self, order: OrderSnapshot, *parts: tuple[int, int], moment: datetime | None = None
    ) -> UUID:
        self.when(moment)
        shipment = ship(self.ot, order.order_id, *parts)
        self.shipments[shipment.shipment_id] = shipment
        return shipment.shipment_id

    def carrier(
        self,
        shipment_id: UUID,
        milestone: Milestone,
        moment: datetime | None = None,
        cash: Money | None = None,
    ) -> None:
        """A carrier scan, then the process managers carry it to the order."""
        self.when(moment)
        scanned = scan(milestone, self.clock.now)
        notify(self.ot, self.shipments[shipment_id], scanned, cash=cash, at=self.clock.now)
        self.ot.run_processes()

    def cancel_parcel(self, shipment_id: UUID, moment: datetime | None = None) -> None:
        self.when(moment)
        self.ot.logistics.cancel_parcel(CancelParcel(shipment_id, "customer asked"), staff())
        self.ot.run_processes()

    def open_case(
        self,
        order: OrderSnapshot,
        line_no: int,
        quantity: int,
        kind: CaseKind = CaseKind.RETURN,
        moment: datetime | None = None,
    ) -> UUID:
        self.when(moment)
        command = RequestCase(
            order.order_id, kind, CaseReason.QUALITY_PROBLEM, (CaseLineRequest(line_no, quantity),)
        )
        return self.ot.returns.request_case(command, customer()).value.case_id

    def approve(self, case_id: UUID, moment: datetime | None = None) -> None:
        """Approve the case, and let the process managers settle it (a refund-only case
        is refunded in full)."""
        self.when(moment)
        self.ot.aftersales.approve(ApproveCase(case_id), staff())
        self.ot.run_processes()

    def inspect(self, case_id: UUID, moment: datetime | None = None) -> None:
        """The goods of a return come back and are all accepted; the process managers
        restock and refund them."""
        self.when(moment)
        case = self.ot.aftersales.case(case_id)
        self.ot.aftersales.receive_return(ReceiveReturn(case_id, self.clock.now, "SF1"), staff())
        results = tuple(LineInspection(line.line_no, line.quantity, 0) for line in case.lines)
        self.ot.aftersales.inspect(InspectReturn(case_id, results), staff())
        self.ot.run_processes()

    def close(self, case_id: UUID, moment: datetime | None = None) -> None:
        self.when(moment)
        self.ot.aftersales.close_case(CloseCase(case_id, "settled"), staff())


@contextmanager
def shop_of(ot: Ordertrail, clock: FakeClock, settings: Settings) -> Iterator[Shop]:
    with opened(settings) as store:
        dashboard = ProjectionWorker(
            MerchantDashboard(), store, {"Orders": ot.orders, "AfterSales": ot.aftersales}
        )
        inventory = ProjectionWorker(InventoryLevels(), store, {"Inventory": ot.inventory})
        dashboard.setup()
        inventory.setup()
        yield Shop(ot, clock, store, dashboard, inventory)


# --- the oracle: the dashboard computed in Python from the event logs ------------------------


def events_of(app: Any, *classes: type[Any]) -> list[Any]:
    topics = [cls.TOPIC for cls in classes]
    notifications = app.recorder.select_notifications(1, 1_000_000, topics=topics)
    return [app.mapper.to_domain_event(n) for n in notifications]


def _period(moment: datetime, granularity: Granularity) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H" if granularity == "hour" else "%Y-%m-%d")


@dataclass
class _Cohort:
    orders: int = 0
    gmv: int = 0
    paid: int = 0
    cod: int = 0
    refunded_orders: int = 0
    methods: dict[PaymentMethod, list[Any]] = field(default_factory=dict)
    skus: dict[str, list[int]] = field(default_factory=dict)


def expected_buckets(
    ot: Ordertrail, granularity: Granularity, start: datetime, end: datetime, top: int = 5
) -> tuple[Bucket, ...]:
    """What every bucket should say, from the Orders log alone."""
    orders = ot.orders
    placed = {e.originator_id: e for e in events_of(orders, Order.Placed)}
    settled: dict[UUID, str] = {}
    for e in events_of(orders, Order.Paid, Order.CashOnDeliveryConfirmed):
        settled.setdefault(
            e.originator_id, "cod" if isinstance(e, Order.CashOnDeliveryConfirmed) else "paid"
        )
    refunds = events_of(orders, Order.PaymentRefunded)
    refunded_orders = {e.originator_id for e in refunds}
    cohorts: dict[tuple[str, str], _Cohort] = defaultdict(_Cohort)
    for order_id, e in placed.items():
        cohort = cohorts[_period(e.timestamp, granularity), e.currency]
        cohort.orders += 1
        cohort.gmv += e.total.amount
        cohort.paid += order_id in settled
        cohort.cod += settled.get(order_id) == "cod"
        cohort.refunded_orders += order_id in refunded_orders
        for method in {p.method for p in e.payments}:
            share = cohort.methods.setdefault(method, [0, 0, 0])
            share[0] += 1
        for p in e.payments:
            share = cohort.methods[p.method]
            share[1] += 1
            share[2] += p.amount.amount
        for line in e.lines:
            sold = cohort.skus.setdefault(line.sku, [0, 0])
            sold[0] += line.quantity
            sold[1] += line.unit_price.amount * line.quantity
    ended: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in events_of(orders, Order.Cancelled, Order.Expired):
        key = (_period(e.timestamp, granularity), placed[e.originator_id].currency)
        ended[key][0 if isinstance(e, Order.Cancelled) else 1] += 1
    captured: dict[tuple[str, str], int] = defaultdict(int)
    for e in events_of(orders, Order.PaymentCaptured):
        captured[_period(e.timestamp, granularity), e.amount.currency] += e.amount.amount
    given_back: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in refunds:
        entry = given_back[_period(e.timestamp, granularity), e.amount.currency]
        entry[0] += e.amount.amount
        entry[1] += 1
    currencies = sorted({e.currency for e in placed.values()})
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    buckets = []
    for begins in periods(granularity, start, end):
        for currency in currencies:
            key = (_period(begins, granularity), currency)
            c = cohorts.get(key, _Cohort())
            skus = [SkuSales(s, u, Money(r, currency)) for s, (u, r) in c.skus.items()]
            by_units = sorted(skus, key=lambda s: (-s.units, s.sku))[:top]
            by_revenue = sorted(skus, key=lambda s: (-s.revenue.amount, s.sku))[:top]
            taken = captured.get(key, 0)
            back, count = given_back.get(key, [0, 0])
            buckets.append(
                Bucket(
                    period=key[0],
                    start=begins,
                    end=begins + step,
                    currency=currency,
                    orders_placed=c.orders,
                    gmv=Money(c.gmv, currency),
                    average_order_value=(
                        Money(math.floor(Fraction(c.gmv, c.orders) + Fraction(1, 2)), currency)
                        if c.orders
                        else None
                    ),
                    paid=c.paid,
                    cod_confirmed=c.cod,
                    unpaid=c.orders - c.paid,
                    payment_methods=tuple(
                        MethodShare(
                            m, c.methods[m][0], c.methods[m][1], Money(c.methods[m][2], currency)
                        )
                        for m in PaymentMethod
                        if m in c.methods
                    ),
                    top_skus_by_units=tuple(by_units),
                    top_skus_by_revenue=tuple(by_revenue),
                    orders_refunded=c.refunded_orders,
                    refunded_order_rate=c.refunded_orders / c.orders if c.orders else None,
                    cancelled=ended.get(key, [0, 0])[0],
                    expired=ended.get(key, [0, 0])[1],
                    captured=Money(taken, currency),
                    refunded=Money(back, currency),
                    refunds=count,
                    refund_rate=back / taken if taken else None,
                )
            )
    return tuple(buckets)


def expected_case_ages(ot: Ordertrail, now: datetime) -> CaseAges:
    """Cases open at ``now`` by age, from the AfterSales log alone."""
    requested = {
        e.originator_id: e.timestamp for e in events_of(ot.aftersales, AfterSalesCase.Requested)
    }
    closed = {e.originator_id: e.timestamp for e in events_of(ot.aftersales, AfterSalesCase.Closed)}
    bands = [0, 0, 0, 0]
    for case_id, when in requested.items():
        if when > now or (case_id in closed and closed[case_id] <= now):
            continue
        age = now - when
        bands[sum(age >= timedelta(days=d) for d in (1, 3, 7))] += 1
    return CaseAges(*bands)


def expected_late_parcels(ot: Ordertrail, now: datetime, sla: timedelta) -> list[UUID]:
    """Parcels still planned at ``now`` and planned more than ``sla`` before, oldest first."""
    planned = {e.shipment_id: e.timestamp for e in events_of(ot.orders, Order.ShipmentPlanned)}
    left: dict[UUID, datetime] = {}
    for e in events_of(
        ot.orders,
        Order.ShipmentDispatched,
        Order.ShipmentDelivered,
        Order.ShipmentReturned,
        Order.ShipmentCancelled,
    ):
        left.setdefault(e.shipment_id, e.timestamp)
    late = [
        (when, shipment_id)
        for shipment_id, when in planned.items()
        if now - when > sla and (shipment_id not in left or left[shipment_id] > now)
    ]
    return [shipment_id for _, shipment_id in sorted(late, key=lambda p: (p[0], str(p[1])))]


@contextmanager
def empty_read_store(settings: Settings) -> Iterator[ReadStore]:
    """A read store in a new, empty place of the same kind (its schema or directory made)."""
    with empty_store_like(settings) as fresh:
        prepare_store(fresh)
        if fresh.backend == "sqlite":
            fresh.sqlite_dir().mkdir(parents=True, exist_ok=True)
        with opened(fresh) as store:
            yield store
