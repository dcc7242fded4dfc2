"""A busy shop for the history, point-in-time and replay tests: every context, every kind
of link between aggregates (reservations, parcels, tracking numbers, a return, an
exchange with its replacement parcel and held stock, a cart checked out), and time
passing between the steps so that "as of" has something to choose between."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from psycopg import sql

from ordertrail.adapters.settings import Settings
from ordertrail.application.aftersales import (
    ApproveCase,
    InspectReturn,
    LinkArticle,
    ReceiveReturn,
)
from ordertrail.application.aftersales_flows import CaseLineRequest, RequestCase
from ordertrail.application.carts import (
    CheckOut,
    ChoosePayment,
    OpenCart,
    PutItem,
    SetDeliveryAddress,
)
from ordertrail.application.knowledge import DraftArticle, PublishArticle
from ordertrail.application.ordering import CancelOrder
from ordertrail.application.orders import CapturePayment
from ordertrail.application.system import Ordertrail
from ordertrail.domain import PaymentMethod
from ordertrail.domain.aftersales import CaseKind, CaseReason, LineInspection
from ordertrail.domain.cart import PaymentChoice
from ordertrail.projections.readmodel import ReadModel
from ordertrail.projections.store import ReadStore
from tests.support.builders import address, cny, customer, order_of, provider, staff
from tests.support.clock import FakeClock
from tests.support.fulfilment import deliver, ready_order, ship


@dataclass(frozen=True)
class Shop:
    returned: UUID  # paid, two parcels delivered, a return inspected and refunded
    exchanged: UUID  # delivered, an exchange with a replacement parcel
    cod: UUID  # cash on delivery, delivered
    from_cart: UUID  # checked out of a cart, paid
    cart: UUID
    cancelled: UUID
    awaiting: UUID
    return_case: UUID
    exchange_case: UUID
    moments: dict[str, datetime]  # named moments between the steps


def busy_shop(ot: Ordertrail, clock: FakeClock) -> Shop:
    moments: dict[str, datetime] = {}

    def mark(name: str) -> None:
        clock.advance(timedelta(minutes=5))
        moments[name] = clock.now
        clock.advance(timedelta(minutes=5))

    returned = ready_order(ot, ("TEA-1", 3), stock=40)
    mark("returned_paid")
    first = ship(ot, returned.order_id, (1, 2))
    mark("first_parcel_booked")
    deliver(ot, first, clock.now)
    clock.advance(timedelta(days=2))
    second = ship(ot, returned.order_id, (1, 1))
    deliver(ot, second, clock.now)
    clock.advance(timedelta(days=2))
    mark("returned_delivered")
    case = ot.returns.request_case(
        RequestCase(
            returned.order_id,
            CaseKind.RETURN,
            CaseReason.QUALITY_PROBLEM,
            (CaseLineRequest(1, 1),),
            ("https://img.example.com/dent.jpg",),
            "the tin is dented",
        ),
        customer(),
    ).value
    mark("case_requested")
    ot.aftersales.approve(ApproveCase(case.case_id, "send it back"), staff())
    ot.aftersales.receive_return(ReceiveReturn(case.case_id, clock.now, "SF1"), staff())
    ot.aftersales.inspect(
        InspectReturn(case.case_id, (LineInspection(1, accepted=1, rejected=0, note="ok"),)),
        staff(),
    )
    ot.run_processes()
    mark("case_settled")
    article = ot.knowledge.draft_article(
        DraftArticle(
            "Dented tins", "Refund the dented tin.", ("tins",), "tea", (CaseReason.QUALITY_PROBLEM,)
        ),
        staff(),
    ).value
    ot.knowledge.publish_article(PublishArticle(article.article_id), staff())
    ot.aftersales.link_article(LinkArticle(case.case_id, article.article_id), staff())

    exchanged = ready_order(ot, ("CUP-1", 2), price=300, stock=20)
    deliver(ot, ship(ot, exchanged.order_id, (1, 2)), clock.now)
    clock.advance(timedelta(days=1))
    swap = ot.returns.request_case(
        RequestCase(
            exchanged.order_id, CaseKind.EXCHANGE, CaseReason.WRONG_ITEM, (CaseLineRequest(1, 1),)
        ),
        customer("cust-2"),
    ).value
    ot.aftersales.approve(ApproveCase(swap.case_id), staff())
    ot.run_processes()

    cod = ready_order(ot, ("TEA-2", 2), price=2500, method=PaymentMethod.CASH_ON_DELIVERY)
    deliver(ot, ship(ot, cod.order_id, (1, 2)), clock.now, cash=cny(5000))

    cart = ot.carts.open_cart(OpenCart("cust-1"), customer()).value
    ot.carts.put_item(PutItem(cart.cart_id, "TEA-1", 2, "home"), customer())
    ot.carts.set_delivery_address(SetDeliveryAddress(cart.cart_id, "home", address()), customer())
    ot.carts.choose_payment(
        ChoosePayment(cart.cart_id, (PaymentChoice(PaymentMethod.ALIPAY),)), customer()
    )
    mark("cart_ready")
    from_cart = ot.carts.check_out(CheckOut(cart.cart_id), customer()).value
    mark("cart_checked_out")
    ot.orders.capture_payment(
        CapturePayment(from_cart.order_id, from_cart.payments[0].payment_id, cny(2000), "pay-cart"),
        provider(),
    )

    cancelled = ot.ordering.place_order(order_of(("TEA-1", 1), total=1000), customer()).value
    ot.ordering.cancel_order(CancelOrder(cancelled.order_id, "changed my mind"), customer())
    awaiting = ot.ordering.place_order(order_of(("TEA-2", 1), total=2500), customer()).value
    ot.run_processes()
    mark("end")
    return Shop(
        returned=returned.order_id,
        exchanged=exchanged.order_id,
        cod=cod.order_id,
        from_cart=from_cart.order_id,
        cart=cart.cart_id,
        cancelled=cancelled.order_id,
        awaiting=awaiting.order_id,
        return_case=case.case_id,
        exchange_case=swap.case_id,
        moments=moments,
    )


def all_events(ot: Ordertrail) -> int:
    return sum(app.head() for app in ot.applications)


def model_rows(store: ReadStore, model: ReadModel) -> dict[str, list[tuple[object, ...]]]:
    with store.read() as tx:
        return {
            table: sorted(tx.all(f"SELECT * FROM {table}"), key=repr)
            for table in model.tables()
            if table not in ("browse_search", "kb_search") or tx.dialect == "sqlite"
        }


def overwrite_stored_event(
    settings: Settings, application: str, originator_id: UUID, version: int, state: bytes
) -> None:
    """Overwrite one stored event's body behind the library's back (as an intruder, or a
    bad migration, would)."""
    name = application.lower()
    if settings.backend == "postgres":
        target = settings.postgres()
        with psycopg.connect(target.conninfo(), autocommit=True) as conn:
            changed = conn.execute(
                sql.SQL(
                    "UPDATE {} SET state = %s WHERE originator_id = %s AND originator_version = %s"
                ).format(sql.Identifier(target.schema, f"{name}_events")),
                (state, originator_id, version),
            ).rowcount
    else:
        with closing(sqlite3.connect(settings.sqlite_dir() / f"{name}.db")) as lite, lite:
            changed = lite.execute(
                "UPDATE stored_events SET state = ? WHERE originator_id = ?"
                " AND originator_version = ?",
                (state, originator_id.hex, version),
            ).rowcount
    assert changed == 1, f"no {application} event {originator_id} v{version}"
