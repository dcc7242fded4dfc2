"""Shared helpers for the order-tracking and customer-orders read models: a shop that drives
the real ``Ordertrail`` (place, pay, ship, carrier notices, cases, refunds), workers over
the Orders, Logistics and AfterSales logs, and the random histories the incremental-equals-
rebuild properties run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import strategies as st

from ordertrail.adapters.bootstrap import prepare_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import (
    ApproveCase,
    CloseCase,
    InspectReturn,
    ReceiveReturn,
    RejectCase,
)
from ordertrail.application.aftersales_flows import CaseLineRequest, IssueRefund, RequestCase
from ordertrail.application.carriers import TrackingNotice
from ordertrail.application.catalog import RegisterProduct
from ordertrail.application.fulfilment import CreateShipment
from ordertrail.application.inventory import ReceiveStock
from ordertrail.application.logistics import CancelParcel, RecordTrackingNotice, ShipmentSnapshot
from ordertrail.application.ordering import CancelOrder, PlaceOrder
from ordertrail.application.orders import (
    AuthorizePayment,
    CapturePayment,
    ConfirmCashOnDelivery,
    FailPayment,
)
from ordertrail.application.placement import LineRequest
from ordertrail.application.system import Ordertrail
from ordertrail.domain import (
    Address,
    DeliveryGroup,
    Discount,
    DomainError,
    Money,
    PaymentMethod,
    PlannedPayment,
)
from ordertrail.domain.aftersales import CaseKind, CaseReason, CaseStatus, LineInspection
from ordertrail.domain.fulfilment import ParcelQuantity, ParcelState
from ordertrail.domain.order_status import FULFILMENT, OrderStatus
from ordertrail.domain.shipments import Milestone, Scan
from ordertrail.projections.readmodel import EventSource, ReadModel
from ordertrail.projections.runner import ProjectionWorker
from ordertrail.projections.store import ReadStore
from tests.projections.support import GatedSource, empty_store_like, opened, table_rows
from tests.support.builders import cny, customer, provider, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import carrier_ctx

SOURCES = ("Orders", "Logistics", "AfterSales")

#: SKU -> (title, price)
PRODUCTS = {
    "TEA-1": ("Oolong tea, 250 g", 6800),
    "CUP-1": ("Celadon cup", 2500),
    "POT-1": ("Yixing teapot", 12000),
}


def sources_of(ot: Ordertrail, gates: Sequence[GatedSource] = ()) -> dict[str, EventSource]:
    chosen: dict[str, EventSource] = {
        "Orders": ot.orders,
        "Logistics": ot.logistics,
        "AfterSales": ot.aftersales,
    }
    chosen.update({gate.name: gate for gate in gates})
    return chosen


def worker_for(
    model: ReadModel,
    ot: Ordertrail,
    store: ReadStore,
    gates: Sequence[GatedSource] = (),
    batch_size: int = 500,
) -> ProjectionWorker:
    worker = ProjectionWorker(model, store, sources_of(ot, gates), batch_size=batch_size)
    worker.setup()
    return worker


@contextmanager
def empty_read_store(settings: Settings) -> Iterator[ReadStore]:
    """A read store of the same kind as ``settings``', empty (another SQLite directory, or
    another PostgreSQL schema, dropped afterwards)."""
    with empty_store_like(settings) as other:
        prepare_store(other)
        if other.backend != "postgres":
            other.sqlite_dir().mkdir(parents=True, exist_ok=True)
        with opened(other) as store:
            yield store


def rebuilt_rows(
    model: ReadModel, ot: Ordertrail, settings: Settings
) -> dict[str, list[tuple[Any, ...]]]:
    """The model's tables built from scratch, in one go, into an empty store."""
    with empty_read_store(settings) as store:
        worker_for(model, ot, store).run_until_idle()
        return table_rows(store, model.tables())


# --- a shop ------------------------------------------------------------------------------------


def address(recipient: str = "Li Lei", line1: str = "88 Huaihai Road") -> Address:
    return Address.create(
        recipient=recipient,
        phone="+86 139 0000 0000",
        line1=line1,
        city="Shanghai",
        region="SH",
        postal_code="200020",
        country="CN",
    )


HOME = DeliveryGroup("home", address())
OFFICE = DeliveryGroup("office", address("Han Meimei", "1 Century Avenue"))


def price(sku: str, quantity: int = 1) -> int:
    return PRODUCTS[sku][1] * quantity


#: Orders the histories place: lines (sku, qty, group), groups, payment plan, fee, discount.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"lines": (("TEA-1", 2, "home"),), "pay": (PaymentMethod.ALIPAY,)},
    {"lines": (("CUP-1", 2, "home"), ("TEA-1", 1, "home")), "pay": (PaymentMethod.CARD,)},
    {
        "lines": (("TEA-1", 1, "home"), ("POT-1", 1, "home")),
        "pay": (PaymentMethod.CASH_ON_DELIVERY,),
    },
    {
        "lines": (("TEA-1", 2, "home"), ("CUP-1", 1, "office")),
        "pay": (PaymentMethod.ALIPAY, PaymentMethod.CASH_ON_DELIVERY),
        "fee": 1000,
        "discount": 500,
    },
    {
        "lines": (("POT-1", 1, "office"),),
        "pay": (PaymentMethod.WECHAT_PAY, PaymentMethod.CARD),
    },
)


def place_command(variant: int, customer_id: str) -> PlaceOrder:
    spec = VARIANTS[variant]
    groups = {HOME.group_id: HOME, OFFICE.group_id: OFFICE}
    used = dict.fromkeys(group for _, _, group in spec["lines"])
    fee = spec.get("fee", 0)
    discount = spec.get("discount", 0)
    total = sum(price(sku, qty) for sku, qty, _ in spec["lines"]) + fee - discount
    methods = spec["pay"]
    # The first payment takes the larger part; the rest share what is left.
    first = total if len(methods) == 1 else total - total // 3
    amounts = [first] + [total - first] * (len(methods) > 1)
    return PlaceOrder(
        customer_id=customer_id,
        lines=tuple(LineRequest(sku, qty, group) for sku, qty, group in spec["lines"]),
        delivery_groups=tuple(groups[g] for g in used),
        payment_plan=tuple(
            PlannedPayment(m, cny(a)) for m, a in zip(methods, amounts, strict=True)
        ),
        shipping_fee=cny(fee) if fee else None,
        discounts=(Discount.create("WELCOME", cny(discount)),) if discount else (),
    )


T0 = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)


def scan(milestone: Milestone, at: datetime, location: str = "Shanghai hub") -> Scan:
    return Scan(milestone, at, location, "", f"{milestone.value}-{at.isoformat()}")


@dataclass
class Shop:
    """The real Ordertrail, driven the way the shop's people and partners do."""

    ot: Ordertrail
    clock: FakeClock
    orders: list[UUID] = field(default_factory=list)
    parcels: list[ShipmentSnapshot] = field(default_factory=list)
    cases: list[UUID] = field(default_factory=list)
    case_orders: dict[UUID, UUID] = field(default_factory=dict)
    scans: dict[UUID, list[Scan]] = field(default_factory=dict)

    def stock(self, units: int = 500) -> Shop:
        for sku, (title, amount) in PRODUCTS.items():
            self.ot.catalog.register_product(
                RegisterProduct(sku, title, "tea", cny(amount)), staff()
            )
            self.ot.inventory.receive_stock(ReceiveStock(sku, units), staff())
        return self

    # --- orders ----------------------------------------------------------------------------

    def place(self, variant: int = 0, customer_id: str = "li-lei") -> UUID:
        placed = self.ot.ordering.place_order(
            place_command(variant, customer_id), customer(customer_id)
        )
        self.orders.append(placed.value.order_id)
        return placed.value.order_id

    def pay(self, order_id: UUID, mode: int = 0) -> None:
        """0: capture every online payment in full; 1: authorize the first one; 2: the
        first one fails; 3: capture a third of the first one."""
        order = self.ot.orders.order(order_id)
        online = [p for p in order.payments.values() if p.method.is_online]
        orders = self.ot.orders
        for payment in online if mode == 0 else online[:1]:
            pay_id, due = payment.payment_id, payment.uncaptured
            ref = f"{pay_id}-{mode}-{due.amount}"
            if mode == 1:
                orders.authorize_payment(AuthorizePayment(order_id, pay_id, due, ref), provider())
            elif mode == 2:
                orders.fail_payment(FailPayment(order_id, pay_id, "card declined", ref), provider())
            else:
                amount = due if mode == 0 else cny(max(due.amount // 3, 1))
                orders.capture_payment(CapturePayment(order_id, pay_id, amount, ref), provider())

    def confirm_cod(self, order_id: UUID) -> None:
        self.ot.orders.confirm_cash_on_delivery(ConfirmCashOnDelivery(order_id), staff())

    def cancel(self, order_id: UUID, reason: str = "changed my mind") -> None:
        self.ot.ordering.cancel_order(CancelOrder(order_id, reason), customer("li-lei"))

    def ship(self, order_id: UUID, everything: bool = True) -> ShipmentSnapshot | None:
        """A parcel of the first delivery group with units not yet in a parcel: all of
        them, or one unit of its first such line."""
        order = self.ot.orders.order(order_id)
        left = order.unallocated_quantities()
        by_group: dict[str, list[tuple[int, int]]] = {}
        for line in order.lines:
            if line.line_no in left:
                by_group.setdefault(line.delivery_group, []).append(
                    (line.line_no, left[line.line_no])
                )
        if not by_group:
            return None
        group, parts = next(iter(by_group.items()))
        chosen = parts if everything else [(parts[0][0], 1)]
        command = CreateShipment(
            order_id, group, tuple(ParcelQuantity(n, q) for n, q in chosen), 900
        )
        shipment = self.ot.fulfilment.create_shipment(command, staff()).value
        self.parcels.append(shipment)
        return shipment

    def notify(
        self,
        shipment: ShipmentSnapshot,
        *scans: Scan,
        cash: Money | None = None,
        at: datetime | None = None,
    ) -> None:
        notice = TrackingNotice(
            shipment.carrier,
            shipment.tracking_number,
            tuple(scans),
            cash_collected=cash,
            cash_reference=f"R-{shipment.tracking_number}" if cash else "",
            cash_collected_at=at,
        )
        self.ot.logistics.record_notice(RecordTrackingNotice(notice), carrier_ctx())
        self.scans.setdefault(shipment.shipment_id, []).extend(scans)

    def deliver(self, shipment: ShipmentSnapshot, at: datetime = T0) -> None:
        self.notify(
            shipment,
            scan(Milestone.PICKED_UP, at),
            scan(Milestone.IN_TRANSIT, at + timedelta(hours=6)),
            scan(Milestone.DELIVERED, at + timedelta(days=1)),
            cash=shipment.cod_amount,
            at=at + timedelta(days=1) if shipment.cod_amount else None,
        )
        self.ot.run_processes()

    def cancel_parcel(self, shipment: ShipmentSnapshot) -> None:
        self.ot.logistics.cancel_parcel(
            CancelParcel(shipment.shipment_id, "the customer asked to wait"), staff()
        )

    def advance(self, order_id: UUID) -> None:
        """Move the order one stage along: pay (or confirm cash on delivery), ship what is
        left, deliver a parcel on its way, open a case, then take its next step."""
        order = self.ot.orders.order(order_id)
        on_its_way = [
            p.shipment_id
            for p in order.parcels.values()
            if p.state in (ParcelState.PLANNED, ParcelState.DISPATCHED)
        ]
        if order.status is OrderStatus.AWAITING_PAYMENT:
            if order.is_paid:
                self.confirm_cod(order_id)
            else:
                self.pay(order_id)
        elif order.status in FULFILMENT and order.unallocated_quantities():
            self.ship(order_id)
        elif on_its_way:
            self.deliver(ShipmentSnapshot.of(self.ot.logistics.shipment(on_its_way[0])))
        elif order.status is OrderStatus.DELIVERED:
            cases = [c for c, o in self.case_orders.items() if o == order_id]
            if not cases:
                kinds = list(CaseKind)
                self.open_case(order_id, kinds[len(self.case_orders) % len(kinds)])
            else:
                self.next_case_step(cases[-1])

    # --- after-sales ---------------------------------------------------------------------

    def open_case(
        self,
        order_id: UUID,
        kind: CaseKind = CaseKind.RETURN,
        quantity: int = 1,
        reason: CaseReason = CaseReason.QUALITY_PROBLEM,
    ) -> UUID:
        case = self.ot.returns.request_case(
            RequestCase(
                order_id,
                kind,
                reason,
                (CaseLineRequest(1, quantity),),
                ("https://img.example.com/chipped.jpg",),
                "the lid is chipped",
            ),
            customer("li-lei"),
        ).value
        self.cases.append(case.case_id)
        self.case_orders[case.case_id] = order_id
        return case.case_id

    def next_case_step(self, case_id: UUID) -> None:
        case = self.ot.aftersales.case(case_id)
        if case.status is CaseStatus.REQUESTED:
            self.case_step(case_id, 0)
        elif case.status is CaseStatus.APPROVED and case.kind is not CaseKind.REFUND_ONLY:
            self.case_step(case_id, 2)
        elif case.status is CaseStatus.RETURN_RECEIVED:
            self.case_step(case_id, 3)
        elif case.status is not CaseStatus.CLOSED:
            self.case_step(case_id, 5)
        self.ot.run_processes()

    def case_step(self, case_id: UUID, action: int) -> None:
        """0 approve, 1 reject, 2 receive the return, 3 inspect (one unit rejected if
        there are two), 4 refund 1.00, 5 close."""
        aftersales = self.ot.aftersales
        if action == 0:
            aftersales.approve(ApproveCase(case_id, "send it back"), staff())
        elif action == 1:
            aftersales.reject(RejectCase(case_id, "no damage visible"), staff())
        elif action == 2:
            aftersales.receive_return(ReceiveReturn(case_id, self.clock.now, "SF-RET-1"), staff())
        elif action == 3:
            case = aftersales.case(case_id)
            results = tuple(
                LineInspection(
                    line.line_no,
                    accepted=line.quantity - (line.quantity > 1),
                    rejected=int(line.quantity > 1),
                    note="checked",
                )
                for line in case.lines
            )
            aftersales.inspect(InspectReturn(case_id, results), staff())
        elif action == 4:
            self.ot.returns.issue_refund(IssueRefund(case_id, cny(100)), staff())
        else:
            aftersales.close_case(CloseCase(case_id, "settled"), staff())


# --- random histories ----------------------------------------------------------------------

ref = st.integers(0, 3)
place = st.tuples(st.just("place"), st.integers(0, 2), st.integers(0, len(VARIANTS) - 1))
#: move an order one to four stages along its happy path (most steps: histories get deep)
advance = st.tuples(st.just("advance"), ref, st.integers(1, 4))
#: minutes: mostly nothing falls due; sometimes unpaid orders expire, or (8 days) the
#: after-sales window of delivered orders closes and they complete
wait = st.tuples(st.just("wait"), st.sampled_from((5, 5, 60, 12_000)))
#: an order placed by a server whose clock is some minutes behind
skew = st.tuples(st.just("skew"), st.integers(1, 90))
STEP = st.one_of(
    *[advance] * 6,
    place,
    st.tuples(st.just("pay"), ref, st.sampled_from((0, 1, 2, 3))),
    st.tuples(st.just("cod"), ref),
    st.tuples(st.just("cancel"), ref),
    st.tuples(st.just("ship"), ref, st.booleans()),
    # a carrier notice: a scan at T0 + hours, maybe with the one before it again (told
    # twice), maybe with the cash collected
    *[
        st.tuples(
            st.just("scan"),
            ref,
            st.sampled_from(list(Milestone)),
            st.integers(-12, 72),
            st.booleans(),
            st.booleans(),
        )
    ]
    * 2,
    st.tuples(st.just("deliver"), ref),
    st.tuples(st.just("cancel_parcel"), ref),
    st.tuples(st.just("case"), ref, st.sampled_from(list(CaseKind))),
    st.tuples(st.just("case_step"), ref, st.integers(0, 5)),
    wait,
    skew,
)
#: the order-level part of the histories (what the customer list reads)
ORDER_STEP = st.one_of(
    *[advance] * 3,
    *[place] * 3,
    st.tuples(st.just("pay"), ref, st.sampled_from((0, 1, 3))),
    st.tuples(st.just("cancel"), ref),
    st.tuples(st.just("ship"), ref, st.booleans()),
    wait,
    skew,
)
CUSTOMERS = ("li-lei", "han-meimei", "wang-fang")


def _pick(items: Sequence[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


def run_step(shop: Shop, step: tuple[Any, ...]) -> None:
    """Apply one step of a random history; a step the domain refuses records nothing."""
    kind, *args = step
    with suppress(DomainError):
        _run_step(shop, kind, args)


def _run_step(shop: Shop, kind: str, args: list[Any]) -> None:
    order = _pick(shop.orders, args[0]) if kind not in ("place", "wait", "skew") else None
    parcel = _pick(shop.parcels, args[0]) if kind in ("scan", "deliver", "cancel_parcel") else None
    if kind == "place":
        shop.place(args[1], CUSTOMERS[args[0]])
    elif kind == "skew":
        # another server whose clock is behind places an order
        now = shop.clock.now
        shop.clock.now = now - timedelta(minutes=args[0])
        try:
            shop.place(args[0] % len(VARIANTS), CUSTOMERS[args[0] % len(CUSTOMERS)])
        finally:
            shop.clock.now = max(now, shop.clock.now)
    elif kind == "wait":
        shop.clock.advance(timedelta(minutes=args[0]))
        shop.ot.run_processes()
    elif order is not None and kind == "advance":
        for _ in range(args[1]):
            shop.advance(order)
    elif order is not None and kind == "pay":
        shop.pay(order, args[1])
    elif order is not None and kind == "cod":
        shop.confirm_cod(order)
    elif order is not None and kind == "cancel":
        shop.cancel(order)
    elif order is not None and kind == "ship":
        shop.ship(order, args[1])
    elif parcel is not None and kind == "scan":
        milestone, hours, again, cash = args[1:]
        scans = [scan(milestone, T0 + timedelta(hours=hours))]
        seen = shop.scans.get(parcel.shipment_id, [])
        if again and seen:
            scans.insert(0, seen[-1])  # told twice
        amount = parcel.cod_amount if cash else None
        shop.notify(parcel, *scans, cash=amount, at=T0 + timedelta(hours=hours) if cash else None)
        shop.ot.run_processes()
    elif parcel is not None and kind == "deliver":
        shop.deliver(parcel)
    elif parcel is not None and kind == "cancel_parcel":
        shop.cancel_parcel(parcel)
        shop.ot.run_processes()
    elif order is not None and kind == "case":
        shop.open_case(order, args[1])
    elif kind == "case_step" and shop.cases:
        shop.case_step(_pick(shop.cases, args[0]), args[1])
        shop.ot.run_processes()


#: which of (Orders, Logistics, AfterSales) a worker reads after a step: Orders held back
#: while the others run ahead is the hard case (shipments and cases of unknown orders)
OPEN_SOURCES = st.sampled_from(
    [
        (False, True, True),
        (False, True, True),
        (False, True, False),
        (False, False, True),
        (True, True, True),
        (True, False, False),
        (True, False, True),
        (False, False, False),
    ]
)


def gates_of(ot: Ordertrail) -> tuple[GatedSource, GatedSource, GatedSource]:
    return GatedSource(ot.orders), GatedSource(ot.logistics), GatedSource(ot.aftersales)
