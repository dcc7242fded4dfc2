"""Placing, reading and cancelling orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath
from msgspec import Meta

from ordertrail.adapters.http.auth import Role, customers_and_staff, principal_of
from ordertrail.adapters.http.routes.common import (
    accepted,
    context,
    etag,
    example,
    not_found,
    runtime_of,
    visible_to,
)
from ordertrail.adapters.http.schemas import (
    AddressBody,
    AddressReply,
    Body,
    Code,
    MoneyBody,
    MoneyReply,
    Quantity,
    Reply,
    Sku,
)
from ordertrail.application.ordering import CancelOrder, PlaceOrder
from ordertrail.application.placement import LineRequest
from ordertrail.domain.errors import OrderNotFound
from ordertrail.domain.order_parts import DeliveryGroup, Discount
from ordertrail.domain.orders import Order
from ordertrail.domain.payments import PaymentMethod, PlannedPayment

ADDRESS_EXAMPLE = {
    "recipient": "Li Lei",
    "phone": "+86 139 0000 0000",
    "line1": "88 Huaihai Road",
    "city": "Shanghai",
    "country": "CN",
}
ORDER_EXAMPLE = {
    "lines": [{"sku": "TEA-OOLONG-100G", "quantity": 2, "delivery_group": "home"}],
    "delivery_groups": [{"group_id": "home", "address": ADDRESS_EXAMPLE}],
    "payments": [{"method": "alipay", "amount": {"amount": 13600, "currency": "CNY"}}],
}


class LineBody(Body):
    sku: Sku
    quantity: Quantity
    delivery_group: Code = "default"


class DeliveryGroupBody(Body):
    group_id: Code
    address: AddressBody


class PaymentBody(Body):
    method: PaymentMethod
    amount: MoneyBody


class DiscountBody(Body):
    code: Code
    amount: MoneyBody


class PlaceOrderBody(Body):
    """Lines name SKUs and quantities only: prices come from the catalog."""

    lines: Annotated[list[LineBody], Meta(min_length=1, max_length=100)]
    delivery_groups: Annotated[list[DeliveryGroupBody], Meta(min_length=1, max_length=10)]
    payments: Annotated[list[PaymentBody], Meta(max_length=5)]
    customer_id: Code | None = None  # staff placing for a customer
    shipping_fee: MoneyBody | None = None  # staff only
    discounts: Annotated[list[DiscountBody], Meta(max_length=10)] = []  # staff only


class CancelBody(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=500, examples=["changed my mind"])]


class LineReply(Reply):
    line_no: int
    sku: str
    title: str
    quantity: int
    unit_price: MoneyReply
    line_total: MoneyReply
    delivery_group: str
    warehouse: str


class GroupReply(Reply):
    group_id: str
    address: AddressReply


class PaymentReply(Reply):
    payment_id: UUID
    method: PaymentMethod
    amount: MoneyReply
    state: str
    captured: MoneyReply
    refunded: MoneyReply


class OrderReply(Reply):
    order_id: UUID
    customer_id: str
    status: str
    lines: list[LineReply]
    delivery_groups: list[GroupReply]
    subtotal: MoneyReply
    shipping_fee: MoneyReply
    total: MoneyReply
    captured: MoneyReply
    refunded: MoneyReply
    payment_due_at: datetime
    payments: list[PaymentReply]
    version: int

    @classmethod
    def of(cls, order: Order) -> OrderReply:
        return cls(
            order_id=order.id,
            customer_id=order.customer_id,
            status=order.status.value,
            lines=[
                LineReply(
                    line_no=line.line_no,
                    sku=line.sku,
                    title=line.title,
                    quantity=line.quantity,
                    unit_price=MoneyReply.of(line.unit_price),
                    line_total=MoneyReply.of(line.line_total),
                    delivery_group=line.delivery_group,
                    warehouse=line.warehouse,
                )
                for line in order.lines
            ],
            delivery_groups=[
                GroupReply(group_id=g.group_id, address=AddressReply.of(g.address))
                for g in order.delivery_groups
            ],
            subtotal=MoneyReply.of(order.subtotal),
            shipping_fee=MoneyReply.of(order.shipping_fee),
            total=MoneyReply.of(order.total),
            captured=MoneyReply.of(order.captured),
            refunded=MoneyReply.of(order.refunded),
            payment_due_at=order.payment_due_at,
            payments=[
                PaymentReply(
                    payment_id=p.payment_id,
                    method=p.method,
                    amount=MoneyReply.of(p.amount),
                    state=p.state.value,
                    captured=MoneyReply.of(p.captured),
                    refunded=MoneyReply.of(p.refunded),
                )
                for p in order.payments.values()
            ],
            version=order.version,
        )


def owned_order(state: State, request: Request[Any, Any, Any], order_id: UUID) -> Order:
    """The order, if the caller may see it (customers: only their own; else 404)."""
    try:
        order = runtime_of(state).ot.orders.order(order_id)
    except OrderNotFound:
        raise not_found("order") from None  # the same answer as for another's order
    visible_to(principal_of(request), order.customer_id, "order")
    return order


@post(
    "/orders",
    summary="Place an order (prices from the catalog; stock reserved)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["orders"],
    status_code=201,
)
def place_order(
    state: State,
    request: Request[Any, Any, Any],
    data: Annotated[PlaceOrderBody, example(ORDER_EXAMPLE)],
) -> Response[OrderReply]:
    principal = principal_of(request)
    if principal.role is Role.CUSTOMER:
        if (
            data.shipping_fee is not None
            or data.discounts
            or data.customer_id not in (None, principal.subject)
        ):
            raise PermissionDeniedException(
                "customers do not set shipping fees, discounts or another customer"
            )
        customer_id = principal.subject
    else:
        if data.customer_id is None:
            raise PermissionDeniedException("staff placing an order name its customer_id")
        customer_id = data.customer_id
    command = PlaceOrder(
        customer_id=customer_id,
        lines=tuple(
            LineRequest(line.sku, line.quantity, line.delivery_group) for line in data.lines
        ),
        delivery_groups=tuple(
            DeliveryGroup(g.group_id, g.address.to_address()) for g in data.delivery_groups
        ),
        payment_plan=tuple(PlannedPayment(p.method, p.amount.to_money()) for p in data.payments),
        shipping_fee=None if data.shipping_fee is None else data.shipping_fee.to_money(),
        discounts=tuple(Discount.create(d.code, d.amount.to_money()) for d in data.discounts),
    )
    runtime = runtime_of(state)
    result, order = runtime.place_order(command, context(request))
    if order is None:  # a replayed outcome: the order as it is now
        order = runtime.ot.orders.order(result.value.order_id)
    return accepted(
        result,
        OrderReply.of(order),
        status=201,
        version=order.version,
        location=f"/orders/{order.id}",
    )


@get(
    "/orders/{order_id:uuid}",
    summary="One order, from its events (with its ETag)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["orders"],
)
def get_order(
    state: State, request: Request[Any, Any, Any], order_id: FromPath[UUID]
) -> Response[OrderReply]:
    order = owned_order(state, request, order_id)
    return Response(OrderReply.of(order), headers={"ETag": etag(order.version)})


@post(
    "/orders/{order_id:uuid}/cancel",
    summary="Cancel an order before it ships (If-Match)",
    guards=[customers_and_staff],
    sync_to_thread=True,
    tags=["orders"],
    status_code=200,
)
def cancel_order(
    state: State,
    request: Request[Any, Any, Any],
    order_id: FromPath[UUID],
    data: Annotated[CancelBody, example({"reason": "changed my mind"})],
) -> Response[OrderReply]:
    owned_order(state, request, order_id)
    runtime = runtime_of(state)
    result = runtime.ot.ordering.cancel_order(
        CancelOrder(order_id, data.reason), context(request, versioned=True)
    )
    order = runtime.ot.orders.order(order_id)
    return accepted(result, OrderReply.of(order), version=order.version)


ROUTES = [place_order, get_order, cancel_order]
